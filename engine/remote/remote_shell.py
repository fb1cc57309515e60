"""A long-lived /bin/sh on the target that runs one command after another.

Opening an SSH channel per command costs a login-shell start on the server
(tens of milliseconds, more with a heavy .bashrc); a task needs only a fork.
So each build keeps one shell per user it runs as (the login user, and
`sudo -u X /bin/sh` for become), writes each command to it framed by markers,
and reads stdout and stderr up to the markers. Every command runs in its own
`/bin/sh -c`, so a syntax error, an `exit` or a `cd` cannot disturb the shell.
"""
from __future__ import annotations

import asyncio
import base64
import secrets
import shlex
from typing import Any

import asyncssh

from engine.errors import BuildError
from engine.remote.connection import Become, CommandResult, OutputCallback

READ_SIZE = 65536


class RemoteShell:
    def __init__(self, conn: asyncssh.SSHClientConnection, become: Become | None, where: str):
        self._conn = conn
        self._become = become
        self._where = where
        self._process: Any = None
        self._token = secrets.token_hex(8)
        self._serial = 0
        self._lock = asyncio.Lock()
        self._pid: int | None = None          # the shell's pid: sshd makes it a process group leader
        self._in_flight = False                # a command was sent and its end not yet read

    def _start_command(self) -> str:
        if self._become is None:
            return "exec /bin/sh"
        prompt = "-S -p ''" if self._become.password else "-n"
        return f"exec sudo -H {prompt} -u {shlex.quote(self._become.user)} -- /bin/sh"

    async def _ensure_started(self) -> None:
        if self._process is not None:
            return
        self._process = await self._conn.create_process(self._start_command(), encoding=None)
        if self._become and self._become.password:
            self._process.stdin.write(self._become.password.encode() + b"\n")
        self._process.stdin.write(b"echo $$\n")
        try:
            self._pid = int((await self._process.stdout.readline()).strip() or 0) or None
        except ValueError:
            self._pid = None

    @property
    def busy(self) -> bool:
        """A command may still run: it was sent and its end never read (cancelled, timed out)."""
        return self._in_flight

    async def terminate(self) -> None:
        """Stop what the shell is running, children included, then the shell (on Ctrl-C, say)."""
        if self._process is None or self._pid is None:
            return
        # The group sshd made for the session: under sudo it is sudo's, not the shell's (sudo without a
        # pty keeps its command in its own group), and every child of the shell is in it.
        # One kill per target and no "--": dash's kill (sh under sudo) rejects "--" and stops at a bad pid.
        pid = self._pid
        kill = (f"g=$(cut -d' ' -f5 /proc/{pid}/stat 2>/dev/null); kill -TERM -${{g:-{pid}}} 2>/dev/null; "
                f"kill -TERM -{pid} 2>/dev/null; kill -TERM {pid} 2>/dev/null; true")
        if self._become:
            kill = f"sudo -n -- sh -c {shlex.quote(kill)}"
        try:
            await asyncio.wait_for(self._conn.run(kill, check=False), 10)
        except (asyncio.TimeoutError, asyncssh.Error, OSError):
            pass  # the connection is going away anyway
        self.close()

    def _frame(self, script: str, stdin: bytes, marker: str) -> bytes:
        command = "/bin/sh -c " + shlex.quote(script)
        if stdin:
            data_end = f"__RECIPE_DATA_{marker}"
            encoded = base64.encodebytes(stdin).decode("ascii")
            lines = f"base64 -d <<'{data_end}' | {command}\n{encoded}{data_end}\n"
        else:
            lines = f"{command} </dev/null\n"
        lines += f"printf '\\n%s %d\\n' {marker} $?\nprintf '\\n%s\\n' {marker} >&2\n"
        return lines.encode()

    async def run(self, script: str, stdin: bytes, timeout: float | None,
                  on_output: OutputCallback | None) -> CommandResult:
        async with self._lock:
            await self._ensure_started()
            self._serial += 1
            marker = f"__RECIPE_END_{self._token}_{self._serial}"
            seen_stderr: list[bytes] = []
            try:
                self._in_flight = True
                self._process.stdin.write(self._frame(script, stdin, marker))
                readers = [asyncio.ensure_future(_read_until(self._process.stdout, marker, "stdout", on_output, [])),
                           asyncio.ensure_future(_read_until(self._process.stderr, marker, "stderr", on_output,
                                                             seen_stderr))]
                (stdout, rc), (stderr, _) = await _both(readers, timeout)
                self._in_flight = False
            except asyncio.TimeoutError:
                await self.terminate()
                raise BuildError(f"command timed out after {timeout:g}s on {self._where}",
                                 hint="raise the task's timeout:, or check what the command waits for") from None
            except _ShellEnded:
                self.close()
                if self._conn.is_closed():
                    raise self._lost("the connection closed") from None
                tail = b"\n".join(seen_stderr).decode(errors="replace")
                raise BuildError(self._ended_message(tail), hint=self._ended_hint(tail)) from None
            except (asyncssh.Error, OSError) as exc:
                self.close()
                raise self._lost(str(exc) or type(exc).__name__) from None
        return CommandResult(rc, stdout, stderr)

    def _lost(self, why: str) -> BuildError:
        return BuildError(f"connection to {self._where} lost while the command ran ({why})",
                          hint="the network dropped, sshd restarted or the machine went down; with retries: "
                               "the task reconnects and runs again")

    def _ended_message(self, stderr_tail: str) -> str:
        who = f"as {self._become.user} (sudo)" if self._become else "as the login user"
        return f"the shell on {self._where} {who} ended unexpectedly: {stderr_tail.strip()[-300:] or 'no message'}"

    def _ended_hint(self, stderr_tail: str) -> str:
        if "password is required" in stderr_tail or "sudo" in stderr_tail:
            return "become needs passwordless sudo for the login user (or become_password)"
        return "the connection dropped or the machine rebooted; use the reboot module to reboot"

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None
        self._in_flight = False


class _ShellEnded(Exception):
    """The stream ended before the marker: the shell died or the connection dropped."""


async def _both(readers: list[asyncio.Future], timeout: float | None) -> list[Any]:
    """Both readers' results; if one fails, the other gets a moment to collect what it can."""
    try:
        done, _ = await asyncio.wait(readers, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
        if len(done) < len(readers) and not any(r.done() and r.exception() for r in readers):
            raise asyncio.TimeoutError
        failed = [r for r in readers if r.done() and r.exception()]
        if failed:
            await asyncio.wait(readers, timeout=1.0)
            raise failed[0].exception()  # type: ignore[misc]
        return [r.result() for r in readers]
    finally:
        for reader in readers:
            reader.cancel()


async def _read_until(stream: Any, marker: str, name: str, on_output: OutputCallback | None,
                      lines: list[bytes]) -> tuple[str, int]:
    """Lines up to the marker line; the text before it is exactly what the command wrote."""
    marker_bytes = marker.encode()
    pending = b""
    while True:
        chunk = await stream.read(READ_SIZE)
        if not chunk:
            lines.append(pending)
            raise _ShellEnded()
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line == marker_bytes or line.startswith(marker_bytes + b" "):
                rc = int(line.split()[1]) if b" " in line else 0
                if on_output is not None and lines and lines[-1]:
                    on_output(name, lines[-1].decode(errors="replace"))   # a last line without newline
                return b"\n".join(lines).decode(errors="replace"), rc
            if on_output is not None and lines:
                on_output(name, lines[-1].decode(errors="replace"))
            lines.append(line)

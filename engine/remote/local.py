"""The build host as a Connection: what `delegate_to: localhost` runs on.

Each command is its own `/bin/sh -c`, as on a target; become runs it through
sudo unless the build already runs as that user.
"""
from __future__ import annotations

import asyncio
import getpass
import os

from engine.errors import BuildError
from engine.remote.connection import Become, CommandResult, OutputCallback


class LocalConnection:
    async def run(self, command: str, *, stdin: bytes | str | None = None, become: Become | None = None,
                  timeout: float | None = None, on_output: OutputCallback | None = None) -> CommandResult:
        argv = ["/bin/sh", "-c", command]
        if become is not None and become.user != getpass.getuser():
            argv = ["sudo", "-H", "-n", "-u", become.user, "--", *argv]
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
        try:
            out, err = await asyncio.wait_for(process.communicate(data), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            _kill_group(process.pid)
            await process.wait()
            raise
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if on_output:
            for stream, text in (("stdout", stdout), ("stderr", stderr)):
                for line in text.splitlines():
                    on_output(stream, line)
        return CommandResult(process.returncode if process.returncode is not None else -1, stdout, stderr)

    async def upload(self, data: bytes, remote_path: str) -> None:
        try:
            fd = os.open(remote_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise BuildError(f"cannot write {remote_path} on this host: {exc.strerror}") from None

    async def reconnect(self, timeout: float) -> None:
        """Nothing to reconnect to: the build host does not reboot under a build."""

    async def close(self) -> None:
        """Nothing stays open between commands."""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except ProcessLookupError:
        pass


__all__ = ["LocalConnection"]

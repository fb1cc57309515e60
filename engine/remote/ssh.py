"""One asyncssh connection per build, reused by every task.

Connecting retries with backoff until the deadline, because a machine that is
booting refuses, resets, or rejects keys for a while before it is ready. The
host key is verified whenever it is known (given, or in a known_hosts file);
otherwise the fingerprint is reported so a user can pin it.
"""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import asyncssh

from engine.errors import BuildError
from engine.recipe.model import SshSettings
from engine.remote.connection import Become, CommandResult, OutputCallback
from engine.remote.remote_shell import RemoteShell

# The comment of the temporary login key every platform injects for a build (recipe-build-<id>-<boot>):
# sysprep removes keys carrying it, so an image never keeps the key it was built with.
BUILD_KEY_MARK = "recipe-build-"
BANNER_TIMEOUT = 3.0
FIRST_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 2.0
RECONNECT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and how to authenticate, once a platform has filled in the blanks."""

    host: str
    port: int
    user: str
    private_key_file: str | None = None
    password: str | None = None
    host_key: str | None = None
    known_hosts: str | None = None

    @classmethod
    def from_settings(cls, ssh: SshSettings, **overrides: Any) -> "Endpoint":
        values = {"host": ssh.host, "port": ssh.port, "user": ssh.user, "private_key_file": ssh.private_key_file,
                  "password": ssh.password, "host_key": ssh.host_key, "known_hosts": ssh.known_hosts}
        values.update(overrides)
        if not values["host"]:
            raise BuildError("no host to connect to", hint="set ssh.host in the source")
        return cls(**values)

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _known_hosts(endpoint: Endpoint) -> Any:
    if endpoint.host_key:
        try:
            return ([asyncssh.import_public_key(endpoint.host_key)], [], [])
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise BuildError(f"ssh.host_key is not a public key: {exc}",
                             hint='give it as "ssh-ed25519 AAAA...", as in a .pub file') from None
    if endpoint.known_hosts:
        return os.path.expanduser(endpoint.known_hosts)
    return None


class SshSession:
    """A live connection: run commands, upload files, reconnect after a reboot."""

    def __init__(self, endpoint: Endpoint, warn: Callable[[str], None] | None = None):
        self.endpoint = endpoint
        self._warn = warn or (lambda _msg: None)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._shells: dict[tuple[str, str | None] | None, RemoteShell] = {}
        self.host_key_verified = False

    async def connect(self, timeout: float) -> None:
        key = self.endpoint.private_key_file
        if key and not os.path.isfile(os.path.expanduser(key)):   # no point retrying for minutes
            raise BuildError(f"private key file not found: {key}", hint="check ssh.private_key_file")
        deadline = time.monotonic() + timeout
        delay = FIRST_RETRY_DELAY
        last_error = "no attempt made"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BuildError(f"could not connect to {self.endpoint} within {timeout:.0f}s: {last_error}",
                                 hint=_connect_hint(last_error))
            try:
                await _wait_for_banner(self.endpoint.host, self.endpoint.port, min(remaining, BANNER_TIMEOUT))
                self._conn = await asyncio.wait_for(self._open(), timeout=min(remaining, 30))
                break
            except asyncssh.HostKeyNotVerifiable as exc:
                last_error = f"host key not verifiable: {exc}"
            except asyncssh.PermissionDenied as exc:
                last_error = f"authentication failed: {exc}"
            except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
                last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, MAX_RETRY_DELAY)
        self.host_key_verified = _known_hosts(self.endpoint) is not None
        if not self.host_key_verified:
            key = self._conn.get_server_host_key()
            fingerprint = key.get_fingerprint() if key else "unknown"
            self._warn(f"host key of {self.endpoint.host}:{self.endpoint.port} not verified ({fingerprint}); "
                       "pin it with ssh.host_key or ssh.known_hosts")

    async def _open(self) -> asyncssh.SSHClientConnection:
        e = self.endpoint
        options: dict[str, Any] = {"known_hosts": _known_hosts(e), "username": e.user, "port": e.port,
                                   "keepalive_interval": 15, "agent_path": None, "config": None}
        if e.private_key_file:
            options["client_keys"] = [os.path.expanduser(e.private_key_file)]
        if e.password:
            options["password"] = e.password
        return await asyncssh.connect(e.host, **options)

    def server_host_key(self) -> str:
        """The host key of the machine this session is connected to, as a known_hosts/.pub line ("ssh-ed25519
        AAAA..."): verified against the pinned one when a key was pinned. Another client of the same machine
        (ansible-playbook) is told to accept this key and no other, so it never trusts on first use."""
        key = self._require().get_server_host_key()
        if key is None:
            raise BuildError(f"{self.endpoint} presented no host key")
        return key.export_public_key("openssh").decode().strip()

    async def reconnect(self, timeout: float) -> None:
        await self.close()
        await self.connect(timeout)

    def _require(self) -> asyncssh.SSHClientConnection:
        if self._conn is None:
            raise BuildError(f"not connected to {self.endpoint}")
        return self._conn

    async def run(self, command: str, *, stdin: bytes | str | None = None, become: Become | None = None,
                  timeout: float | None = None, on_output: OutputCallback | None = None) -> CommandResult:
        if self._conn is not None and self._conn.is_closed():
            # the connection dropped (network, sshd restart): the command that was running failed with
            # "connection lost"; this one, a retry or the next task, gets a fresh connection
            self._warn(f"connection to {self.endpoint} was lost; reconnecting")
            await self.reconnect(RECONNECT_TIMEOUT)
        conn = self._require()
        key = (become.user, become.password) if become else None
        shell = self._shells.get(key)
        if shell is None:
            shell = self._shells[key] = RemoteShell(conn, become, str(self.endpoint))
        data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
        return await shell.run(command, data, timeout, on_output)

    async def upload(self, data: bytes, remote_path: str) -> None:
        conn = self._require()
        try:
            if self._sftp is None:
                self._sftp = await conn.start_sftp_client()
            attrs = asyncssh.SFTPAttrs(permissions=0o600)
            async with self._sftp.open(remote_path, "wb", attrs) as remote:
                await remote.write(data)
        except (asyncssh.Error, OSError) as exc:
            raise BuildError(f"upload to {self.endpoint}:{remote_path} failed: {exc}",
                             hint="is the sftp subsystem enabled on the host?") from None

    async def close(self) -> None:
        for shell in self._shells.values():
            if shell.busy:           # interrupted mid-command: leave nothing running on the host
                await shell.terminate()
            shell.close()
        self._shells.clear()
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
        if self._conn is not None:
            self._conn.close()
            try:
                await asyncio.wait_for(self._conn.wait_closed(), 5)
            except (asyncio.TimeoutError, OSError, asyncssh.Error):
                pass
            self._conn = None


async def _wait_for_banner(host: str, port: int, timeout: float) -> None:
    """Raise unless an SSH server greets within timeout.

    A forwarded port (QEMU user networking, a bastion) accepts the TCP
    connection long before the guest's sshd can answer, and would hold a full
    SSH handshake for its whole timeout; a short look for "SSH-" does not.
    """
    async def greet() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            return await reader.readexactly(4)
        finally:
            writer.close()

    try:
        banner = await asyncio.wait_for(greet(), timeout)
    except asyncio.IncompleteReadError:
        raise ConnectionResetError("the connection closed before an SSH greeting") from None
    except asyncio.TimeoutError:
        raise TimeoutError(f"no SSH greeting within {timeout:g}s") from None
    if banner != b"SSH-":
        raise ConnectionError(f"not an SSH server (it said {banner!r})")


def _connect_hint(last_error: str) -> str:
    if "host key" in last_error:
        return "the host presented a key other than the one pinned in ssh.host_key or ssh.known_hosts"
    if "authentication" in last_error:
        return "check ssh.user and ssh.private_key_file (or ssh.password)"
    if "refused" in last_error.lower():
        return "is sshd running and listening on that port?"
    return "check ssh.host, ssh.port and that the machine is reachable"

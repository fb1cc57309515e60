"""What a task module needs from the machine it configures, whatever carries it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

OutputCallback = Callable[[str, str], None]   # (stream name, one line)


@dataclass(frozen=True)
class Become:
    """Run as another user through sudo."""

    user: str = "root"
    password: str | None = None


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class Connection(Protocol):
    async def run(self, command: str, *, stdin: bytes | str | None = None, become: Become | None = None,
                  timeout: float | None = None, on_output: OutputCallback | None = None) -> CommandResult:
        ...

    async def upload(self, data: bytes, remote_path: str) -> None:
        """Write data to remote_path as the login user (modules move it into place)."""
        ...

    async def reconnect(self, timeout: float) -> None:
        """Connect again (after a reboot), verifying the same host key."""
        ...

    async def close(self) -> None:
        ...

"""QEMU's machine protocol (QMP), through qemu.qmp, on one end of a socket pair whose other end QEMU inherits.

A socket pair leaves no socket file behind (a killed run has nothing to sweep), has no path-length limit
(a build's work dir can be deep), and no other local user can reach it: a QMP socket reads guest memory.
"""
from __future__ import annotations

import asyncio
import socket
from typing import Any

from qemu.qmp import QMPClient, QMPError

from engine.errors import BuildError


class Monitor:
    def __init__(self, name: str):
        self._ours, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._client = QMPClient(name)

    @property
    def qemu_fd(self) -> int:
        """The descriptor QEMU must inherit (pass_fds)."""
        return self._theirs.fileno()

    def qemu_args(self) -> list[str]:
        return ["-chardev", f"socket,id=qmp,fd={self.qemu_fd},server=off", "-mon", "chardev=qmp,mode=control"]

    async def open(self) -> None:
        """Once QEMU runs: QEMU holds its end now, so ours is the only one left here."""
        self._theirs.close()
        await self._client.connect(self._ours)

    async def execute(self, command: str, **arguments: Any) -> Any:
        try:
            return await self._client.execute(command, arguments or None)
        except (QMPError, EOFError, OSError) as error:
            raise BuildError(f"QEMU refused {command}: {error}",
                             hint="see qemu.log in the build's work dir (--on-error abort keeps it)") from None

    async def wait_migration(self, timeout: float) -> None:
        """Until the running migration (a save to file, or a restore from one) completes."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            info = await self.execute("query-migrate")
            status = info.get("status") if isinstance(info, dict) else None
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise BuildError(f"QEMU's migration {status}: {info.get('error-desc', 'no reason given')}")
            if asyncio.get_running_loop().time() > deadline:
                await self.execute("migrate_cancel")
                raise BuildError(f"QEMU's migration did not complete in {timeout:g} s")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        """After QEMU quit too: its end of the stream is gone, which qemu.qmp reports as EOF."""
        try:
            await self._client.disconnect()
        except (QMPError, EOFError, OSError):
            pass
        self._ours.close()
        self._theirs.close()

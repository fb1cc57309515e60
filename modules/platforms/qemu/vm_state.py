"""A running VM's disk and memory, frozen through its monitor: what a cache layer and a warm boot are made of.

QEMU 7.2 (Debian 12) has no file: migration URI yet; exec: runs `cat` through /bin/sh, so paths are quoted.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from modules.platforms.qemu.monitor import Monitor

DISK = "disk0"                       # the -drive id of the build's disk (machine.command)
SAVE_TIMEOUT = 600.0
# QEMU throttles a migration to 128 MiB/s by default (for a live one over a network); a stopped VM saved to a
# local file goes as fast as the disk takes it
UNTHROTTLED = 1 << 40                # bytes per second


async def freeze_disk(monitor: Monitor, new_top: Path) -> None:
    """The disk file QEMU writes becomes read-only, and a new overlay on it, new_top, takes the writes."""
    await monitor.execute("blockdev-snapshot-sync", device=DISK, format="qcow2", mode="absolute-paths",
                          **{"snapshot-file": str(new_top)})


async def save_state(monitor: Monitor, path: Path, timeout: float = SAVE_TIMEOUT) -> None:
    """The VM's memory and devices into path; the VM must be stopped, so that the disk frozen beside it
    matches. It stays stopped: the caller continues it."""
    await monitor.execute("migrate-set-parameters", **{"max-bandwidth": UNTHROTTLED})
    await monitor.execute("migrate", uri=f"exec:cat > {shlex.quote(str(path))}")
    await monitor.wait_migration(timeout)


async def resume_state(monitor: Monitor, path: Path, timeout: float = SAVE_TIMEOUT) -> None:
    """Load a state saved by save_state into a QEMU started with -incoming defer, and run it."""
    await monitor.execute("migrate-incoming", uri=f"exec:cat {shlex.quote(str(path))}")
    await monitor.wait_migration(timeout)
    status = await monitor.execute("query-status")
    if not status.get("running"):         # saved while stopped: the state says so, and QEMU keeps it stopped
        await monitor.execute("cont")

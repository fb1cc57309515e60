"""A bootstrap's work directories: removed whatever an interrupted debootstrap left mounted in them, and
those of bootstraps whose process died swept at the next build."""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from pathlib import Path

from modules.platforms.qemu.bootstrap_steps import SYSTEM_PATH, Log


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first."""
    real = os.path.realpath(path)
    found = []
    with contextlib.suppress(OSError):
        with open("/proc/self/mountinfo") as mountinfo:
            for line in mountinfo:
                fields = line.split()
                if len(fields) > 4:
                    point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
                    if point == real or point.startswith(real + "/"):
                        found.append(point)
    return sorted(found, key=len, reverse=True)


async def remove_work_dir(path: Path, log: Log | None = None) -> None:
    """Remove a work directory, first unmounting whatever an interrupted debootstrap left mounted in it."""
    if not path.exists():
        return
    for point in mounts_under(path):
        process = await asyncio.create_subprocess_exec("umount", "-l", point, env={"PATH": SYSTEM_PATH},
                                                       stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
        await process.wait()
    left = mounts_under(path)
    if left:
        if log:
            log(f"bootstrap: {path} was left in place: {', '.join(left)} could not be unmounted")
        return
    await asyncio.to_thread(shutil.rmtree, path, True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def sweep_stale(cache_dir: Path, log: Log | None = None) -> None:
    """Work directories and temporary images of bootstraps and installs whose process died (a SIGKILL, a
    crash)."""
    images = cache_dir / "images"
    for path in [*(cache_dir / "tmp").glob("bootstrap-*-*"), *images.glob(".bootstrap-*.tmp"),
                 *images.glob(".installed-*.tmp")]:
        match = re.search(r"-(\d+)-", path.name) if path.is_dir() else re.search(r"\.(\d+)\.tmp$", path.name)
        if match and not _pid_alive(int(match.group(1))):
            if log:
                log(f"bootstrap: removing {path}, left by an interrupted build")
            if path.is_dir():
                await remove_work_dir(path, log)
            else:
                path.unlink(missing_ok=True)

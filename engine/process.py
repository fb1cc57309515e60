"""Running local tools (qemu-img, xorriso, ...) with errors people can act on."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from engine.errors import BuildError


async def run_tool(*args: str | Path, what: str, hint: str = "") -> str:
    """Run a command to completion; its output, or a BuildError quoting its tail. Killed if cancelled."""
    process = await asyncio.create_subprocess_exec(*map(str, args), stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await process.communicate()
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    text = output.decode(errors="replace")
    if process.returncode != 0:
        if "No space left on device" in text:
            hint = "free space on the filesystem it writes to, or give --output-dir on a larger one"
        raise BuildError(f"{what} failed (exit {process.returncode}): {text.strip()[-400:]}", hint=hint)
    return text


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A temporary name beside final; renamed to final only if the block completes.

    A file (or a folder: the block makes it) with the final name is therefore always whole; the temporary
    one is removed on failure and cancellation alike. A folder replaces an earlier run's folder of that name.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.part-{os.getpid()}")
    try:
        yield temporary
        if temporary.is_dir() and final.is_dir():
            shutil.rmtree(final)
        os.replace(temporary, final)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()

"""Where recipe keeps what it reuses between runs on this host (base images, tool installs), and the lock that
keeps two builds, in this process or another, from making the same thing at once."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from pathlib import Path
from typing import AsyncIterator, Callable

from engine.units import parse_size_option

Log = Callable[[str], None]
DEFAULT_LAYERS_MAX_SIZE = "20G"


def default_cache_dir() -> Path:
    """$RECIPE_CACHE_DIR, else $XDG_CACHE_HOME/recipe, else ~/.cache/recipe."""
    if os.environ.get("RECIPE_CACHE_DIR"):
        return Path(os.environ["RECIPE_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "recipe"
    return Path.home() / ".cache" / "recipe"


def layers_dir() -> Path:
    """Where build layers are kept: $RECIPE_LAYERS_DIR, else <cache>/layers (engine.cache.layer_store)."""
    if os.environ.get("RECIPE_LAYERS_DIR"):
        return Path(os.environ["RECIPE_LAYERS_DIR"]).expanduser()
    return default_cache_dir() / "layers"


def layers_max_size() -> int | None:
    """What the layers may take on disk in all ($RECIPE_CACHE_MAX_SIZE, 20G unless set; `none`: no limit; 0:
    no layers at all): after each build, the least recently used go until they fit (layer_store.prune)."""
    text = os.environ.get("RECIPE_CACHE_MAX_SIZE", "").strip() or DEFAULT_LAYERS_MAX_SIZE
    if text.lower() == "none":
        return None
    return parse_size_option(text, "RECIPE_CACHE_MAX_SIZE")


@contextlib.asynccontextmanager
async def file_lock(path: Path, what: str, log: Log | None = None, poll: float = 0.5) -> AsyncIterator[None]:
    """An exclusive flock on path, waited for without blocking the event loop (and cancellable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and log:
                    log(f"waiting for another build {what}")
                told = True
                await asyncio.sleep(poll)
        yield
    finally:
        os.close(fd)   # releases the lock

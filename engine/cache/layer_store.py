"""The layer cache on disk: one folder per layer under <cache>/layers (mode 0700), and the locks that make it
safe for builds sharing it at once.

  layers/<key>/layer.json   what the layer is (LayerRecord); written last, by a rename: a folder without it
                            is a layer being written, or one a killed build left (`recipe sweep --local`)
  layers/<key>/lock         flock'd: exclusively while the layer is written, shared while a build uses it
                            (its VM reads the layer's disk); `recipe cache prune` passes over a locked layer
  layers/<key>/used         its mtime: when a build last used the layer (least recently used goes first)
  layers/<key>/writer       the id of the build writing it (what `recipe sweep --local` names)
  layers/<key>/...          what the platform keeps in it (the qemu platform: disk.qcow2, state, keys)
  layers/hmac.key           this user's key for the HMAC of secret values in layer keys (0600)

A layer is never changed once written; a key names the same content in every build that computes it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

RECORD = "layer.json"


@dataclass(frozen=True)
class LayerRecord:
    key: str
    parent: str | None               # the layer under it; None for a build's first layer (on the base image)
    recipe: str
    step: str                        # "boot" for a build's first layer, else the label of the task it holds
    index: int                       # 0: booted and connected; k: after the recipe's k-th top-level task
    seconds: float                   # what making it took, so what resuming from it saves beyond its parent
    created: float
    has_state: bool = False          # memory and devices saved with it: a build can resume without booting
    extra: dict[str, Any] = field(default_factory=dict)   # the platform's and the play's own (JSON)


@dataclass(frozen=True)
class Layer:
    record: LayerRecord
    path: Path
    size: int                        # bytes on disk
    last_used: float

    @property
    def age(self) -> float:
        return time.time() - self.record.created


class LayerLock:
    """A flock on a layer's lock file; shared (using) or exclusive (writing, removing)."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def share(self) -> None:
        """Writing is over: keep using the layer, and let other builds use it too."""
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LayerStore:
    def __init__(self, root: Path):
        self.root = root

    def _ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)

    def hmac_key(self) -> bytes:
        """Made once per cache, readable only by its user: a secret's HMAC in a key tells nothing elsewhere."""
        self._ensure()
        path = self.root / "hmac.key"
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
        return path.read_bytes()

    def folder(self, key: str) -> Path:
        return self.root / key

    def find(self, key: str) -> Layer | None:
        folder = self.folder(key)
        try:
            record = LayerRecord(**json.loads((folder / RECORD).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        used = folder / "used"
        return Layer(record, folder, _size(folder), used.stat().st_mtime if used.exists() else record.created)

    def use(self, key: str) -> LayerLock | None:
        """A shared lock on a whole layer (None if it is not one, or is being removed), and the use noted on it
        and on the layers under it, which its disk reads: the least recently used go first, leaves before
        their roots. (Those under it need no lock of their own: removing one removes this one too, which the
        lock forbids.)"""
        lock = _lock(self.folder(key), fcntl.LOCK_SH | fcntl.LOCK_NB)
        layer = self.find(key) if lock else None
        if lock is None or layer is None:
            if lock:
                lock.release()
            return None
        now = time.time()
        while layer is not None:
            with contextlib.suppress(OSError):
                (layer.path / "used").touch()
                os.utime(layer.path / "used", (now, now))
            layer = self.find(layer.record.parent) if layer.record.parent else None
        return lock

    def begin(self, key: str, writer: str) -> LayerLock | None:
        """The exclusive lock to write a new layer into its (empty) folder; None if the layer exists, or
        another build is writing it now. What a killed build left half-written is cleared first."""
        self._ensure()
        folder = self.folder(key)
        folder.mkdir(mode=0o700, exist_ok=True)
        lock = _lock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if lock is None:
            return None
        if (folder / RECORD).exists():
            lock.release()
            return None
        for entry in folder.iterdir():          # a dead writer's files: nothing refers to an unrecorded layer
            if entry.name != "lock":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        (folder / "writer").write_text(writer)
        return lock

    def commit(self, record: LayerRecord) -> None:
        """The layer's files are whole and synced: record it, by a rename, so it is a layer all at once."""
        folder = self.folder(record.key)
        for entry in folder.iterdir():
            if entry.is_file():
                _fsync(entry)
        temporary = folder / f".{RECORD}.part"
        temporary.write_text(json.dumps(asdict(record), indent=1))
        _fsync(temporary)
        os.replace(temporary, folder / RECORD)
        _fsync(folder)

    def layers(self) -> list[Layer]:
        found = [self.find(entry.name) for entry in self._folders()]
        return sorted((layer for layer in found if layer), key=lambda layer: layer.record.created)

    def unfinished(self) -> list[tuple[Path, str]]:
        """Folders without a record whose lock nobody holds: what killed builds were writing, and their ids."""
        left = []
        for folder in self._folders():
            if (folder / RECORD).exists():
                continue
            lock = _lock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if lock:
                lock.release()
                writer = folder / "writer"
                left.append((folder, writer.read_text().strip() if writer.exists() else ""))
        return left

    def remove_unfinished(self, folder: Path) -> None:
        """Unless a build has taken it up again meanwhile."""
        lock = _lock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if lock is None:
            return
        try:
            if not (folder / RECORD).exists():
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            lock.release()

    def remove(self, key: str) -> bool:
        """Remove a layer nobody uses, with every layer built on it (their disks read it). False if one of
        them is in use."""
        doomed = [key, *self._descendants(key)]
        locks = []
        try:
            for each in doomed:
                lock = _lock(self.folder(each), fcntl.LOCK_EX | fcntl.LOCK_NB)
                if lock is None:
                    return False
                locks.append(lock)
            for each in reversed(doomed):       # the record first: a half-removed layer is no layer
                (self.folder(each) / RECORD).unlink(missing_ok=True)
                shutil.rmtree(self.folder(each), ignore_errors=True)
            return True
        finally:
            for lock in locks:
                lock.release()

    def _descendants(self, key: str) -> list[str]:
        children: dict[str, list[str]] = {}
        for layer in self.layers():
            if layer.record.parent:
                children.setdefault(layer.record.parent, []).append(layer.record.key)
        found, todo = [], list(children.get(key, ()))
        while todo:
            child = todo.pop()
            found.append(child)
            todo += children.get(child, ())
        return found

    def _folders(self) -> Iterator[Path]:
        if self.root.is_dir():
            yield from (entry for entry in self.root.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def _lock(folder: Path, mode: int) -> LayerLock | None:
    try:
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        return None                             # removed meanwhile
    try:
        fcntl.flock(fd, mode)
    except BlockingIOError:
        os.close(fd)
        return None
    return LayerLock(folder / "lock", fd)


def _size(folder: Path) -> int:
    total = 0
    for entry in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if entry.is_file():
                total += entry.stat().st_blocks * 512
    return total


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(store: LayerStore, older_than: float | None = None, max_size: int | None = None) -> list[Layer]:
    """Remove layers unused for older_than seconds, then the least recently used until the cache holds
    max_size bytes at most; a layer goes with those built on it. Layers in use stay. What was removed."""
    removed: list[Layer] = []
    now = time.time()
    for layer in sorted(store.layers(), key=lambda layer: layer.last_used):
        if not store.find(layer.record.key):
            continue                            # gone with a parent
        total = sum(each.size for each in store.layers())
        stale = older_than is not None and now - layer.last_used > older_than
        if not stale and (max_size is None or total <= max_size):
            continue
        gone = [layer, *(store.find(key) for key in store._descendants(layer.record.key))]
        if store.remove(layer.record.key):
            removed += [each for each in gone if each]
    return removed

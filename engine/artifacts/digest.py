"""SHA-256 of artifacts: computed once per file, in a thread, and stoppable."""
from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from engine.errors import BuildError

if TYPE_CHECKING:
    from engine.artifacts.export import Artifact

CHUNK = 1 << 20

# (path, size, mtime_ns) -> hex: the manifest and the checksum file of a build read each artifact once
_known: dict[tuple[str, int, int], str] = {}


def _key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def sha256_file(path: Path, cancel: threading.Event | None = None) -> str:
    key = _key(path)
    if key in _known:
        return _known[key]
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            if cancel is not None and cancel.is_set():
                raise BuildError(f"hashing {path.name} was cancelled")
            digest.update(chunk)
    _known[key] = digest.hexdigest()
    return _known[key]


async def sha256_of(path: Path, cancel: threading.Event | None = None) -> str:
    return await asyncio.to_thread(sha256_file, path, cancel)


async def artifact_sha256(artifact: "Artifact", cancel: threading.Event | None = None) -> str:
    """The digest its export computed while writing it, or one read now."""
    return artifact.sha256 or await sha256_of(artifact.path, cancel)


class HashingReader:
    """Wraps a binary stream: hashes what is read through it (if asked) and stops when cancel is set."""

    def __init__(self, stream: BinaryIO, cancel: threading.Event | None = None, digest: bool = True):
        self._stream = stream
        self._cancel = cancel
        self._digest = hashlib.sha256() if digest else None

    def read(self, size: int = -1) -> bytes:
        if self._cancel is not None and self._cancel.is_set():
            raise BuildError("the export was cancelled")
        data = self._stream.read(size)
        if self._digest is not None:
            self._digest.update(data)
        return data

    def hexdigest(self) -> str:
        assert self._digest is not None, "read with digest=False"
        return self._digest.hexdigest()

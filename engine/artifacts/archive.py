"""Tar archives (OVA, Vagrant boxes) that come out byte-identical for the same inputs.

Every member gets the same owner, mode and mtime (the export's epoch), in the
order it is added. Headers come from tarfile.TarInfo; the data is written
here, so a file can go in by the kernel's copy_file_range (no pass through
Python) when its hash is not needed, or be hashed on the way when it is.
Either way a disk is read once and never copied whole. A member can be
reserved and filled in later (an OVA's manifest comes before the disk whose
hash it holds).
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from engine.artifacts.digest import CHUNK, HashingReader
from engine.errors import BuildError

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE                # GNU and BSD tar pad the archive to whole records too
USTAR_MAX = 8 * 1024 ** 3 - 1              # a ustar header holds sizes below 8 GiB; bigger members use GNU's


@dataclass(frozen=True)
class Reserved:
    name: str
    offset: int          # where the member's data starts in the stream
    size: int


class DeterministicTar:
    def __init__(self, stream: BinaryIO, epoch: int, cancel: threading.Event | None = None):
        self._stream = stream
        self._epoch = epoch
        self._cancel = cancel
        self._written = 0

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self._written += len(data)

    def _header(self, name: str, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uid, info.gid = size, self._epoch, 0o644, 0, 0
        info.uname = info.gname = ""
        member_format = tarfile.USTAR_FORMAT if size <= USTAR_MAX else tarfile.GNU_FORMAT
        self._write(info.tobuf(member_format, "utf-8", "surrogateescape"))

    def _pad(self, size: int) -> None:
        self._write(bytes(-size % BLOCK))

    def add_bytes(self, name: str, data: bytes) -> str:
        self._header(name, len(data))
        self._write(data)
        self._pad(len(data))
        return hashlib.sha256(data).hexdigest()

    def add_file(self, name: str, path: Path, digest: bool = True) -> str | None:
        """Stream a file in; its SHA-256 computed on the way, or None if not asked for."""
        size = path.stat().st_size
        self._header(name, size)
        with path.open("rb") as source:
            if digest or not self._copy_in_kernel(source, size):
                reader = HashingReader(source, self._cancel, digest)
                copied = 0
                while chunk := reader.read(CHUNK):
                    self._write(chunk)
                    copied += len(chunk)
                if copied != size:
                    raise BuildError(f"{path.name} changed size while it was archived")
        self._pad(size)
        return reader.hexdigest() if digest else None

    def _copy_in_kernel(self, source: BinaryIO, size: int) -> bool:
        """copy_file_range from file to file; False where the stream is not a plain file (gzip)."""
        if not isinstance(self._stream, io.FileIO) or not hasattr(os, "copy_file_range"):
            return False
        remaining = size
        while remaining:
            if self._cancel is not None and self._cancel.is_set():
                raise BuildError("the export was cancelled")
            copied = os.copy_file_range(source.fileno(), self._stream.fileno(), min(remaining, 1 << 28))
            if copied == 0:
                raise BuildError(f"{source.name} shrank while it was archived")
            remaining -= copied
        self._written += size
        return True

    def reserve(self, name: str, size: int) -> Reserved:
        """A member of NULs to be filled in later with fill(); the stream must be seekable."""
        self._header(name, size)
        offset = self._written
        self._write(bytes(size))
        self._pad(size)
        return Reserved(name, offset, size)

    def fill(self, reserved: Reserved, data: bytes) -> None:
        if len(data) != reserved.size:
            raise ValueError(f"{reserved.name}: reserved {reserved.size} bytes, got {len(data)}")
        self._stream.seek(reserved.offset)
        self._stream.write(data)
        self._stream.seek(self._written)

    def close(self) -> None:
        """Two zero blocks end the archive; then zeros to a whole record, as tar(1) writes it."""
        self._write(bytes(2 * BLOCK))
        self._write(bytes(-self._written % RECORD))


@contextlib.contextmanager
def writing_tar(path: Path, epoch: int, cancel: threading.Event | None = None,
                gzip_level: int | None = None) -> Iterator[DeterministicTar]:
    """A DeterministicTar writing to path; gzip-compressed if a level is given (with a fixed gzip mtime)."""
    with open(path, "wb", buffering=0) as raw:      # unbuffered: kernel copies and seeks see every write
        if gzip_level is None:
            tar = DeterministicTar(raw, epoch, cancel)
            yield tar
            tar.close()
            return
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=gzip_level, mtime=epoch) as packed:
            tar = DeterministicTar(packed, epoch, cancel)
            yield tar
            tar.close()

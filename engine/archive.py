"""Tar archives (OVA, Vagrant boxes) that come out byte-identical for the same inputs.

Every member gets the same owner, mode and mtime (the export's epoch), in the
order it is added. Files are streamed into the archive and hashed on the way,
so a disk is read once and never copied whole. A member can be reserved and
filled in later (an OVA's manifest comes before the disk whose hash it holds).
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from engine.digest import CHUNK, HashingReader

USTAR_MAX = 8 * 1024 ** 3 - 1     # a ustar header holds sizes below 8 GiB; bigger members use GNU's encoding


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
        self._tar = tarfile.open(fileobj=stream, mode="w", format=tarfile.USTAR_FORMAT, copybufsize=CHUNK)

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, self._epoch, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.format = tarfile.USTAR_FORMAT if size <= USTAR_MAX else tarfile.GNU_FORMAT
        return info

    def add_bytes(self, name: str, data: bytes) -> str:
        self._tar.addfile(self._info(name, len(data)), io.BytesIO(data))
        return hashlib.sha256(data).hexdigest()

    def add_file(self, name: str, path: Path) -> str:
        """Stream a file in; its SHA-256, computed on the way."""
        with path.open("rb") as source:
            reader = HashingReader(source, self._cancel)
            self._tar.addfile(self._info(name, path.stat().st_size), reader)
        return reader.hexdigest()

    def reserve(self, name: str, size: int) -> Reserved:
        """A member of NULs to be filled in later with fill(); the stream must be seekable."""
        self._tar.addfile(self._info(name, size), io.BytesIO(bytes(size)))
        padded = -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        return Reserved(name, self._stream.tell() - padded, size)

    def fill(self, reserved: Reserved, data: bytes) -> None:
        if len(data) != reserved.size:
            raise ValueError(f"{reserved.name}: reserved {reserved.size} bytes, got {len(data)}")
        end = self._stream.tell()
        self._stream.seek(reserved.offset)
        self._stream.write(data)
        self._stream.seek(end)

    def close(self) -> None:
        self._tar.close()


@contextlib.contextmanager
def writing_tar(path: Path, epoch: int, cancel: threading.Event | None = None,
                gzip_level: int | None = None) -> Iterator[DeterministicTar]:
    """A DeterministicTar writing to path; gzip-compressed if a level is given (with a fixed gzip mtime)."""
    with path.open("wb") as raw:
        if gzip_level is None:
            tar = DeterministicTar(raw, epoch, cancel)
            yield tar
            tar.close()
            return
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=gzip_level, mtime=epoch) as packed:
            tar = DeterministicTar(packed, epoch, cancel)
            yield tar
            tar.close()

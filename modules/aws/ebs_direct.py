"""Upload a raw disk straight into an EBS snapshot with the EBS direct APIs.

StartSnapshot, then PutSnapshotBlock for every 512 KiB block that holds data,
in parallel, each with its SHA-256, then CompleteSnapshot with the linear
aggregate of those checksums. Holes of the sparse raw file are never read
(SEEK_DATA/SEEK_HOLE), and blocks that read as all zeros are never sent: EBS
reads an unwritten block as zeros. No S3 bucket and no vmimport role are needed.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import os
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from engine.errors import BuildError

BLOCK = 512 * 1024          # the only block size PutSnapshotBlock takes (moto reports another; it is not used)
ZEROS = bytes(BLOCK)


@dataclass(frozen=True)
class Uploaded:
    snapshot_id: str
    blocks_sent: int
    blocks_total: int            # blocks of the whole volume
    bytes_sent: int


def data_blocks(path: Path) -> Iterator[int]:
    """Indexes of the blocks that overlap data in a sparse file (holes are skipped without reading)."""
    size = path.stat().st_size
    with path.open("rb") as disk:
        fd, offset, last = disk.fileno(), 0, -1
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as error:
                if error.errno == errno.ENXIO:      # no data after offset; anything else is a real error
                    return
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            for index in range(max(start // BLOCK, last + 1), (end - 1) // BLOCK + 1):
                yield index
                last = index
            offset = end


def checksum(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def fill(client: Any, snapshot_id: str, path: Path, *, volume_gib: int, concurrency: int = 16,
         cancel: threading.Event | None = None, progress: Callable[[int, int], None] | None = None) -> Uploaded:
    """Every data block of path into a started snapshot, then CompleteSnapshot."""
    sums = _put_blocks(client, snapshot_id, path, concurrency, cancel, progress)
    aggregate = base64.b64encode(hashlib.sha256(b"".join(sums[i] for i in sorted(sums))).digest()).decode()
    client.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=len(sums), Checksum=aggregate,
                             ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
    total = -(-volume_gib * 1024 ** 3 // BLOCK)
    return Uploaded(snapshot_id, len(sums), total, len(sums) * BLOCK)


def _put_blocks(client: Any, snapshot_id: str, path: Path, concurrency: int, cancel: threading.Event | None,
                progress: Callable[[int, int], None] | None) -> dict[int, bytes]:
    sums: dict[int, bytes] = {}
    size = path.stat().st_size
    done = 0

    def put(index: int, data: bytes) -> None:
        digest = checksum(data)
        client.put_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockData=data, DataLength=len(data),
                                  Checksum=base64.b64encode(digest).decode(), ChecksumAlgorithm="SHA256")
        sums[index] = digest

    with ThreadPoolExecutor(max_workers=concurrency) as pool, path.open("rb") as disk:
        pending: set[Future] = set()
        for index in data_blocks(path):
            if cancel is not None and cancel.is_set():
                raise BuildError("the upload was cancelled")
            disk.seek(index * BLOCK)
            data = disk.read(BLOCK).ljust(BLOCK, b"\0")
            done = min(size, (index + 1) * BLOCK)
            if data == ZEROS:
                continue
            pending.add(pool.submit(put, index, data))
            if len(pending) >= 2 * concurrency:        # bounded memory: at most 2 x concurrency blocks in flight
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    future.result()
                if progress:
                    progress(done, size)
        finished, _ = wait(pending, return_when=FIRST_EXCEPTION)
        for future in finished:
            future.result()
    if progress:
        progress(size, size)
    return sums

"""The classic way into an EBS snapshot: the raw disk to S3 by multipart upload, then EC2 ImportSnapshot.

S3 needs the whole object, zeros included, so nothing is skipped on the wire;
but holes of the sparse raw file are never read (SEEK_DATA/SEEK_HOLE), they
are zero-filled in memory. Parts go up in parallel, each with its SHA-256
(S3 checks it), and any failure or cancel aborts the multipart upload, so no
invisible parts are left to pay for. ImportSnapshot then needs the vmimport
service role with read access to the bucket, in the bucket's region.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import os
import threading
import time
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.errors import BuildError

MIB = 2 ** 20
PART = 16 * MIB              # S3 takes 5 MiB to 5 GiB per part, and at most 10000 parts
MAX_PARTS = 10_000
IN_FLIGHT = 512 * MIB        # memory held by parts being hashed and sent at once
FIRST_DELAY = 5.0            # seconds between DescribeImportSnapshotTasks calls, growing to MAX_DELAY
MAX_DELAY = 30.0
IN_PROGRESS = ("active", "pending")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Uploaded:
    bucket: str
    key: str
    size: int                # bytes of the object: the whole disk
    parts: int
    bytes_read: int          # bytes read from the file; the rest were holes, never read


def read_part(fd: int, offset: int, length: int) -> tuple[bytearray, int]:
    """length bytes of the file at offset, holes zero-filled without reading them; also how many were read."""
    buffer = bytearray(length)           # zeros already: only data extents are read into it
    view = memoryview(buffer)
    position, end, read = offset, offset + length, 0
    while position < end:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)   # the fd's offset is shared: only pread below
        except OSError as error:         # ENXIO: no data after position; anything else is a real error
            if error.errno != errno.ENXIO:
                raise
            break
        if start >= end:
            break
        stop = min(os.lseek(fd, start, os.SEEK_HOLE), end)
        while start < stop:
            got = os.preadv(fd, [view[start - offset:stop - offset]], start)
            if got == 0:
                raise BuildError(f"the raw disk ended early, at byte {start}")
            start += got
            read += got
        position = stop
    return buffer, read


def upload(s3: Any, bucket: str, key: str, raw_path: Path, *, part_size: int = PART, concurrency: int = 8,
           tags: dict[str, str] | None = None, cancel: threading.Event | None = None,
           progress: Progress | None = None) -> Uploaded:
    """raw_path as the object s3://bucket/key; the multipart upload is aborted if anything fails."""
    size = raw_path.stat().st_size
    part_size = max(part_size, -(-size // MAX_PARTS // MIB) * MIB)     # big disks: bigger parts, not more
    count = max(1, -(-size // part_size))
    workers = max(1, min(concurrency, IN_FLIGHT // part_size, count))
    extra = {"Tagging": urllib.parse.urlencode(tags)} if tags else {}
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256",
                                           **extra)["UploadId"]
    try:
        parts, read = _send_parts(s3, bucket, key, upload_id, raw_path, size, part_size, count, workers,
                                  cancel, progress)
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:                # the error that failed the upload is the one to report
            pass
        raise
    return Uploaded(bucket, key, size, count, read)


def _send_parts(s3: Any, bucket: str, key: str, upload_id: str, raw_path: Path, size: int, part_size: int,
                count: int, workers: int, cancel: threading.Event | None,
                progress: Progress | None) -> tuple[list[dict[str, Any]], int]:
    def send(number: int, fd: int) -> tuple[dict[str, Any], int, int]:
        if cancel is not None and cancel.is_set():
            raise BuildError("the upload was cancelled")
        offset = (number - 1) * part_size
        data, read = read_part(fd, offset, min(part_size, size - offset))
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        # with a checksum given, botocore adds no CRC32 of its own: the part is hashed once
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data,
                              ChecksumSHA256=digest)["ETag"]
        return {"PartNumber": number, "ETag": etag, "ChecksumSHA256": digest}, len(data), read

    parts: list[dict[str, Any]] = []
    done = read = 0
    with raw_path.open("rb") as disk, ThreadPoolExecutor(max_workers=workers) as pool:
        # parts read their own data in the workers, so queued parts hold no memory
        futures: list[Future] = [pool.submit(send, number, disk.fileno()) for number in range(1, count + 1)]
        try:
            for future in as_completed(futures):
                part, length, got = future.result()
                parts.append(part)
                done, read = done + length, read + got
                if progress:
                    progress(done, size)
        except BaseException:
            for future in futures:       # the pool's exit still waits for the parts being sent
                future.cancel()
            raise
    return sorted(parts, key=lambda p: p["PartNumber"]), read


def import_snapshot(ec2: Any, bucket: str, key: str, *, description: str, tags: list[dict[str, str]],
                    timeout: float, cancel: threading.Event | None = None, progress: Progress | None = None,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> str:
    """ImportSnapshot of a RAW object, polled with backoff until it completes; the new snapshot's id.

    A task that ends otherwise is an error with AWS's StatusMessage; one that runs past timeout, or
    whose wait fails or is cancelled, is cancelled (CancelImportTask) before the error goes on.
    """
    task = ec2.import_snapshot(
        Description=description,
        DiskContainer={"Description": description, "Format": "RAW", "UserBucket": {"S3Bucket": bucket, "S3Key": key}},
        TagSpecifications=[{"ResourceType": "import-snapshot-task", "Tags": tags}])["ImportTaskId"]
    deadline, delay, over = clock() + timeout, FIRST_DELAY, False
    try:
        while True:
            (found,) = ec2.describe_import_snapshot_tasks(ImportTaskIds=[task])["ImportSnapshotTasks"]
            detail = found.get("SnapshotTaskDetail", {})
            status = detail.get("Status", "")
            if status == "completed":
                over = True
                return detail["SnapshotId"]
            if status not in IN_PROGRESS:          # deleting, deleted, or an error: the task is over
                over = True
                raise BuildError(f"ImportSnapshot {task} of s3://{bucket}/{key} ended {status or 'without a status'}: "
                                 f"{detail.get('StatusMessage') or 'no reason given'}",
                                 hint="ImportSnapshot needs the vmimport service role, allowed to read the bucket, "
                                      "and the bucket in the export's region")
            if progress:
                progress(int(detail.get("Progress") or 0), 100)
            if cancel is not None and cancel.is_set():
                raise BuildError("the snapshot import was cancelled")
            left = deadline - clock()
            if left <= 0:
                raise BuildError(f"ImportSnapshot {task} did not complete within {timeout:g} s "
                                 f"(last status: {detail.get('StatusMessage') or status})",
                                 hint="raise import_timeout; large disks can take an hour or more")
            sleep(min(delay, left))
            delay = min(delay * 1.5, MAX_DELAY)
    except BaseException:
        if not over:
            try:
                ec2.cancel_import_task(ImportTaskId=task, CancelReason="recipe: the export failed or timed out")
            except Exception:            # best effort: the task carries the recipe tags
                pass
        raise

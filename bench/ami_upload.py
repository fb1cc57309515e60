"""Upload a raw disk to moto's server by both ami upload paths, in one run; MiB/s and what zero skipping saved.

A 2 GiB raw disk with 600 MiB used (spread over the disk, half random bytes,
half a repeating pattern; 64 MiB of it written as explicit zeros, which the
uploader reads and does not send) goes into a snapshot through the ami
export's uploader (modules/aws/ebs_direct.py) against moto_server on
127.0.0.1. moto keeps blocks in memory, so the figures measure the client
side (reading, hashing, HTTP) and moto's, not EBS.

The same disk then takes the S3 path (upload: s3, modules/aws/s3_import.py):
a multipart upload of the whole 2 GiB to moto's S3, zeros included, holes
zero-filled without being read. Only the upload is timed: ImportSnapshot, the
second half of that path, cannot run on moto (it does not implement it), and
on AWS it adds minutes of server-side conversion that no client can speed up.
Over plain HTTP botocore also hashes every S3 request body for the SigV4
signature (over HTTPS to AWS it does not), so the S3 figure is pessimistic.

    .venv/bin/python bench/ami_upload.py [--used-mib 600] [--concurrency 16]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3  # noqa: E402

from modules.aws import ebs_direct, s3_import  # noqa: E402
from tests.moto_server import moto_server, set_credentials  # noqa: E402

MIB = 2 ** 20


def make_disk(path: Path, size: int, used_mib: int, zero_mib: int) -> None:
    noise = os.urandom(8 * MIB)
    with path.open("wb") as disk:
        disk.truncate(size)
        stride = size // (used_mib // 8 + zero_mib // 8)
        offset = 0
        for index in range(used_mib // 8):
            disk.seek(offset)
            disk.write(noise if index % 2 else bytes([index % 251 + 1]) * (8 * MIB))
            offset += stride
        for _ in range(zero_mib // 8):
            disk.seek(offset)
            disk.write(bytes(8 * MIB))
            offset += stride


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--used-mib", type=int, default=600)
    parser.add_argument("--zero-mib", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    set_credentials()
    size = 2 * 1024 * MIB
    with tempfile.TemporaryDirectory(prefix="recipe-bench-ami-", dir="/var/tmp") as folder, moto_server() as url:
        raw = Path(folder) / "disk.raw"
        make_disk(raw, size, args.used_mib, args.zero_mib)
        allocated = raw.stat().st_blocks * 512
        ebs = boto3.client("ebs", endpoint_url=url, region_name="eu-west-1")
        snapshot = ebs.start_snapshot(VolumeSize=2)["SnapshotId"]
        started = time.perf_counter()
        uploaded = ebs_direct.fill(ebs, snapshot, raw, volume_gib=2, concurrency=args.concurrency)
        took = time.perf_counter() - started
        print(f"disk: 2 GiB raw, {args.used_mib} MiB of data, {args.zero_mib} MiB written as zeros, "
              f"{allocated / MIB:.0f} MiB allocated")
        print(f"EBS direct: {uploaded.bytes_sent / MIB:.0f} MiB in {uploaded.blocks_sent} blocks, {took:.2f} s, "
              f"{uploaded.bytes_sent / MIB / took:.0f} MiB/s sent, {size / MIB / took:.0f} MiB/s of disk")
        skipped = uploaded.blocks_total - uploaded.blocks_sent
        print(f"zero skipping: {skipped} of {uploaded.blocks_total} blocks not sent "
              f"({skipped * ebs_direct.BLOCK / MIB:.0f} MiB, {100 * skipped / uploaded.blocks_total:.0f}%)")

        s3 = boto3.client("s3", endpoint_url=url, region_name="eu-west-1")
        s3.create_bucket(Bucket="recipe-bench", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        started = time.perf_counter()
        put = s3_import.upload(s3, "recipe-bench", "recipe/disk.raw", raw, concurrency=args.concurrency)
        took_s3 = time.perf_counter() - started
        assert s3.head_object(Bucket="recipe-bench", Key="recipe/disk.raw")["ContentLength"] == size
        print(f"S3 multipart (upload only: ImportSnapshot cannot run on moto, not timed): {put.size / MIB:.0f} MiB "
              f"in {put.parts} parts of {s3_import.PART // MIB} MiB, {took_s3:.2f} s, "
              f"{put.size / MIB / took_s3:.0f} MiB/s sent and of disk; {put.bytes_read / MIB:.0f} MiB read "
              f"from the file (holes zero-filled, not read)")
        print(f"zero skipping saved: EBS direct sent {uploaded.bytes_sent / MIB:.0f} MiB where S3 must take "
              f"{put.size / MIB:.0f} MiB ({(put.size - uploaded.bytes_sent) / MIB:.0f} MiB less, "
              f"{100 * (put.size - uploaded.bytes_sent) / put.size:.0f}%); the S3 upload alone took "
              f"{took_s3 / took:.1f}x as long as the whole EBS direct path")


if __name__ == "__main__":
    main()

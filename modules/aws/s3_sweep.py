"""The S3 sweeper: what killed ami exports (`upload: s3`) left in the buckets given with `--bucket`.

The export uploads the raw disk to `<key_prefix><build id>-<8 hex>.raw` and
deletes it once EC2 has imported it. A run killed mid-upload leaves an
unfinished multipart upload: its parts are stored and billed, yet the
bucket's listing does not show them. A run killed during the import leaves
the whole object, tagged `recipe:build-id`. Both are found by that key shape
(S3 cannot filter by tag), and an object must also carry the tag. Unfinished
uploads have no tags until they complete, so the key shape alone marks them.
"""
from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from engine.leftovers.sweep import BUILD_ID_TAG, Leftover, Sweeper, SweepOptions, build_age, old_enough
from modules.aws import clients

UPLOAD_KEY = re.compile(r"(?:^|/)(\d{8}-\d{6}-[0-9a-f]{4})-[0-9a-f]{8}\.raw$")
OBJECT, UNFINISHED = "object", "unfinished upload"


class S3Sweeper(Sweeper, name="s3"):
    def __init__(self) -> None:
        self._upload_ids: dict[tuple[str, str], list[str]] = {}    # (bucket, key) -> its unfinished uploads

    def applies(self, options: SweepOptions) -> bool:
        return bool(options.buckets)

    def _s3(self, options: SweepOptions) -> Any:
        region = options.regions[0] if options.regions else None
        return clients.client("s3", region, options.profile, options.endpoint_url)  # type: ignore[arg-type]

    def find(self, options: SweepOptions) -> list[Leftover]:
        s3 = self._s3(options)
        found = []
        for bucket in options.buckets:
            for upload in _pages(s3, "list_multipart_uploads", "Uploads", Bucket=bucket):
                key = upload["Key"]
                build_id = _build_id_in(key)
                if build_id:
                    self._upload_ids.setdefault((bucket, key), []).append(upload["UploadId"])
                    found.append(Leftover(UNFINISHED, key, f"s3://{bucket}", build_id, build_age(build_id)))
            for item in _pages(s3, "list_objects_v2", "Contents", Bucket=bucket):
                build_id = _build_id_in(item["Key"])
                if build_id and _tagged(s3, bucket, item["Key"]) == build_id:
                    found.append(Leftover(OBJECT, item["Key"], f"s3://{bucket}", build_id, build_age(build_id)))
        # an upload with several unfinished attempts is one leftover
        unique = {(l.kind, l.where, l.id): l for l in found if old_enough(l, options)}
        return sorted(unique.values(), key=lambda l: (l.where, l.kind, l.id))

    def remove(self, options: SweepOptions, leftovers: list[Leftover]) -> list[tuple[Leftover, str]]:
        s3 = self._s3(options)
        failed = []
        for leftover in leftovers:
            bucket = leftover.where.removeprefix("s3://")
            try:
                if leftover.kind == UNFINISHED:
                    for upload_id in self._upload_ids.get((bucket, leftover.id), []):
                        s3.abort_multipart_upload(Bucket=bucket, Key=leftover.id, UploadId=upload_id)
                else:
                    s3.delete_object(Bucket=bucket, Key=leftover.id)
            except (BotoCoreError, ClientError) as error:
                failed.append((leftover, str(error)))
        return failed


def _build_id_in(key: str) -> str:
    match = UPLOAD_KEY.search(key)
    return match.group(1) if match else ""


def _tagged(s3: Any, bucket: str, key: str) -> str:
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return next((t["Value"] for t in tags if t["Key"] == BUILD_ID_TAG), "")


def _pages(s3: Any, operation: str, field: str, **params: Any) -> list[dict[str, Any]]:
    return [item for page in s3.get_paginator(operation).paginate(**params) for item in page.get(field, [])]

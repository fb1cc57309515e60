"""`recipe sweep --bucket` against moto's S3 over HTTP: what killed `upload: s3` exports left goes (unfinished
multipart uploads, tagged objects); young builds' uploads, untagged objects and other keys stay."""
from __future__ import annotations

import re
import time
import urllib.parse

from engine.cli.main import main

BUCKET = "recipe-imports"
OLD = "20200101-000000-dead"


def unfinished(s3, key: str) -> str:
    """A multipart upload with one part sent and never completed, as a SIGKILL mid-upload leaves it."""
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1024)
    return upload_id


def uploads(s3) -> set[str]:
    return {u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])}


def objects(s3) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_sweep_removes_old_unfinished_uploads_and_tagged_objects_only(aws, moto_endpoint, capsys):
    s3 = aws("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    young = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-beef"
    tagging = urllib.parse.urlencode({"recipe:build-id": OLD, "recipe:recipe": "web"})
    old_upload, retried_upload = f"recipe/{OLD}-0a0b0c0d.raw", f"images/{OLD}-11223344.raw"
    unfinished(s3, old_upload)
    unfinished(s3, retried_upload)
    unfinished(s3, retried_upload)                                  # two attempts at one key: both go
    young_upload = f"recipe/{young}-deadbeef.raw"
    unfinished(s3, young_upload)
    old_object = f"recipe/{OLD}-feedf00d.raw"
    s3.put_object(Bucket=BUCKET, Key=old_object, Body=b"disk", Tagging=tagging)
    untagged = f"recipe/{OLD}-00000000.raw"                          # recipe's shape, but not recipe's tag
    s3.put_object(Bucket=BUCKET, Key=untagged, Body=b"someone else's")
    s3.put_object(Bucket=BUCKET, Key="recipe/notes.txt", Body=b"kept", Tagging=tagging)
    args = ["sweep", "--bucket", BUCKET, "--region", "eu-west-1", "--endpoint-url", moto_endpoint]

    assert main(args + ["--dry-run"]) == 0
    listed = [re.sub(r", [\d.]+ h old\)$", ")", line) for line in capsys.readouterr().out.splitlines()
              if line.startswith("s3:")]
    assert listed == [f"s3: would remove object {old_object} in s3://{BUCKET} (build {OLD})",
                      f"s3: would remove unfinished upload {retried_upload} in s3://{BUCKET} (build {OLD})",
                      f"s3: would remove unfinished upload {old_upload} in s3://{BUCKET} (build {OLD})"], listed
    assert uploads(s3) == {old_upload, retried_upload, young_upload}          # a dry run removes nothing

    assert main(args) == 0
    assert uploads(s3) == {young_upload}
    assert objects(s3) == {untagged, "recipe/notes.txt"}

    assert main(args + ["--older-than", "0"]) == 0                  # now the young build's too
    assert not uploads(s3)


def test_without_bucket_s3_is_not_swept_or_mentioned(aws, moto_endpoint, capsys):
    assert main(["sweep", "--region", "eu-west-1", "--endpoint-url", moto_endpoint, "--dry-run"]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("s3:")]

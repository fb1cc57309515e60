"""The ami export's S3 path (upload: s3): multipart upload to moto's real S3 over HTTP, ImportSnapshot, and
the whole export.

moto does not implement ImportSnapshot, DescribeImportSnapshotTasks or CancelImportTask, so those three
are answered without a server: by botocore's Stubber on a real ec2 client for import_snapshot() alone,
and for the whole export by before-call handlers on the export's own ec2 client (FakeVmImport below).
Stubber cannot be used there: once active it answers every call of its client, and that client must
also reach moto for DescribeSnapshots, RegisterImage and CreateTags. A before-call handler is the hook
Stubber itself answers through, registered for those two operations only; every other call is real.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
from pathlib import Path

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from engine.cli.main import main
from engine.errors import BuildError
from modules.aws import clients, ebs_direct, s3_import
from modules.exports.ami import Ami, AmiConfig

MIB = 2 ** 20
BUCKET = "recipe-imports"


@pytest.fixture
def s3(aws):
    client = aws("s3")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return client


@pytest.fixture
def sparse(tmp_path) -> Path:
    """A 23 MiB sparse file: data at 0, 7 MiB and the very end, holes everywhere else."""
    path = tmp_path / "disk.raw"
    with path.open("wb") as disk:
        disk.truncate(23 * MIB)
        disk.write(os.urandom(MIB))
        disk.seek(7 * MIB + 12345)
        disk.write(b"\xab" * 300_000)
        disk.seek(23 * MIB - 5)
        disk.write(b"tail!")
    return path


def uploads_left(s3) -> list:
    return s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def objects(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


# -- the multipart upload, against moto's S3 -----------------------------------------------------

def test_read_part_zero_fills_holes_without_reading_them(sparse):
    data = sparse.read_bytes()
    with sparse.open("rb") as disk:
        part, read = s3_import.read_part(disk.fileno(), 5 * MIB, 5 * MIB)
    assert part == data[5 * MIB:10 * MIB]
    assert 300_000 <= read < MIB                  # only the 300 KB extent (rounded to fs blocks) was read


def test_upload_sends_the_whole_disk_in_checksummed_parts(s3, sparse):
    sent: list[dict] = []
    s3.meta.events.register("before-send.s3.UploadPart", lambda request, **_: sent.append(dict(request.headers)))
    seen: list[tuple[int, int]] = []
    uploaded = s3_import.upload(s3, BUCKET, "recipe/disk.raw", sparse, part_size=5 * MIB, concurrency=3,
                                 tags={"recipe:build-id": "web-local-1", "recipe:recipe": "web"},
                                 progress=lambda done, total: seen.append((done, total)))
    body = s3.get_object(Bucket=BUCKET, Key="recipe/disk.raw")["Body"].read()
    assert body == sparse.read_bytes()            # every byte, zeros included: S3 needs the whole object
    assert uploaded.parts == 5 and len(sent) == 5
    assert s3.head_object(Bucket=BUCKET, Key="recipe/disk.raw")["ETag"].endswith('-5"')
    assert all("x-amz-checksum-sha256" in h and "x-amz-checksum-crc32" not in h for h in sent)
    assert uploaded.bytes_read < 2 * MIB          # of 23 MiB: holes were never read
    assert seen[-1] == (23 * MIB, 23 * MIB)
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=BUCKET, Key="recipe/disk.raw")["TagSet"]}
    assert tags == {"recipe:build-id": "web-local-1", "recipe:recipe": "web"}
    assert uploads_left(s3) == []


@pytest.mark.parametrize("failure", ["part 3", "complete", "cancel"])
def test_a_failure_aborts_the_multipart_upload(s3, sparse, failure):
    cancel = threading.Event()

    def fail_part(params, **_):
        if params["PartNumber"] == 3:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected at part 3"}}, "UploadPart")

    def fail_complete(**_):
        raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, "CompleteMultipartUpload")

    if failure == "part 3":
        s3.meta.events.register("before-parameter-build.s3.UploadPart", fail_part)
    elif failure == "complete":
        s3.meta.events.register("before-call.s3.CompleteMultipartUpload", fail_complete)
    aborted: list[str] = []
    s3.meta.events.register("before-call.s3.AbortMultipartUpload", lambda **_: aborted.append("abort"))
    with pytest.raises((ClientError, BuildError), match="injected|cancelled"):
        s3_import.upload(s3, BUCKET, "recipe/disk.raw", sparse, part_size=5 * MIB, concurrency=2, cancel=cancel,
                          progress=lambda done, total: failure == "cancel" and cancel.set())
    assert aborted == ["abort"]
    assert uploads_left(s3) == [] and objects(s3) == []


# -- ImportSnapshot, answered by Stubber (moto has no VM import) ---------------------------------------

TAGS = [{"Key": "recipe:build-id", "Value": "web-local-1"}]


def stubbed(ec2) -> Stubber:
    stubber = Stubber(ec2)
    stubber.add_response("import_snapshot", {"ImportTaskId": "import-snap-1"}, {
        "Description": "recipe web-local",
        "DiskContainer": {"Description": "recipe web-local", "Format": "RAW",
                          "UserBucket": {"S3Bucket": BUCKET, "S3Key": "recipe/disk.raw"}},
        "TagSpecifications": [{"ResourceType": "import-snapshot-task", "Tags": TAGS}]})
    return stubber


def task(status: str, **detail) -> dict:
    return {"ImportSnapshotTasks": [{"ImportTaskId": "import-snap-1",
                                     "SnapshotTaskDetail": {"Status": status, **detail}}]}


class Clock:
    """time.monotonic and time.sleep for the polling loop, without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run_import(ec2, clock: Clock, timeout: float = 3600) -> str:
    return s3_import.import_snapshot(ec2, BUCKET, "recipe/disk.raw", description="recipe web-local", tags=TAGS,
                                      timeout=timeout, sleep=clock.sleep, clock=clock)


def test_import_snapshot_polls_with_backoff_until_completed(aws):
    ec2, clock = aws("ec2"), Clock()
    stubber = stubbed(ec2)
    describe = {"ImportTaskIds": ["import-snap-1"]}
    stubber.add_response("describe_import_snapshot_tasks", task("active", Progress="3", StatusMessage="pending"),
                         describe)
    stubber.add_response("describe_import_snapshot_tasks", task("active", Progress="50",
                                                                StatusMessage="converting"), describe)
    stubber.add_response("describe_import_snapshot_tasks", task("completed", SnapshotId="snap-0123"), describe)
    with stubber:
        assert run_import(ec2, clock) == "snap-0123"
    stubber.assert_no_pending_responses()
    assert clock.slept == [s3_import.FIRST_DELAY, s3_import.FIRST_DELAY * 1.5]


@pytest.mark.parametrize("status", ["deleted", "deleting", "error"])
def test_an_import_that_ends_otherwise_is_an_error_with_its_status_message(aws, status):
    ec2 = aws("ec2")
    stubber = stubbed(ec2)
    stubber.add_response("describe_import_snapshot_tasks", task("active", StatusMessage="validating"))
    stubber.add_response("describe_import_snapshot_tasks",
                         task(status, StatusMessage="ClientError: Disk validation failed [Unsupported format]"))
    with stubber, pytest.raises(BuildError, match=f"ended {status}: ClientError: Disk validation failed") as error:
        run_import(ec2, Clock())
    assert "vmimport" in error.value.hint
    stubber.assert_no_pending_responses()          # and the task, over already, was not cancelled


def test_an_import_past_its_timeout_is_cancelled(aws):
    ec2, clock = aws("ec2"), Clock()
    stubber = stubbed(ec2)
    for _ in range(2):              # at 0 s, then at the 1 s deadline (the first wait is cut to the time left)
        stubber.add_response("describe_import_snapshot_tasks", task("active", StatusMessage="converting"))
    stubber.add_response("cancel_import_task", {"ImportTaskId": "import-snap-1", "State": "deleting"},
                         {"ImportTaskId": "import-snap-1", "CancelReason": "recipe: the export failed or timed out"})
    with stubber, pytest.raises(BuildError, match="did not complete within 1 s"):
        run_import(ec2, clock, timeout=1)
    stubber.assert_no_pending_responses()
    assert clock.slept == [1]


# -- the whole export with upload: s3 -----------------------------------------------------------------

class FakeVmImport:
    """AWS's VM import service for an export's ec2 client (see the module docstring): ImportSnapshot reads
    the object from moto's S3 and writes its non-zero blocks into a real moto snapshot by EBS direct, so the
    registered image holds whatever the object held; the task is active once, then `outcome`."""

    def __init__(self, aws, scratch: Path, outcome: str = "completed") -> None:
        self.s3, self.ebs, self.scratch, self.outcome = aws("s3"), aws("ebs"), scratch, outcome
        self.imported: list[dict] = []
        self.snapshot_id = ""
        self.polls = itertools.count()

    def hooks(self) -> list[tuple[str, object]]:
        return [("before-call.ec2.ImportSnapshot", self.import_snapshot),
                ("before-call.ec2.DescribeImportSnapshotTasks", self.describe)]

    @staticmethod
    def answer(model, parsed: dict) -> tuple[AWSResponse, dict]:
        validate_parameters(parsed, model.output_shape)      # as Stubber checks its responses
        return AWSResponse(None, 200, {}, None), parsed

    def import_snapshot(self, model, params, **_):
        body = params["body"]
        self.imported.append(body)
        data = self.s3.get_object(Bucket=body["DiskContainer.UserBucket.S3Bucket"],
                                  Key=body["DiskContainer.UserBucket.S3Key"])["Body"].read()
        if self.outcome == "completed":
            raw = self.scratch / "imported.raw"
            raw.write_bytes(data)
            try:
                gib = -(-len(data) // 2 ** 30)
                self.snapshot_id = self.ebs.start_snapshot(VolumeSize=gib)["SnapshotId"]
                ebs_direct.fill(self.ebs, self.snapshot_id, raw, volume_gib=gib, concurrency=4)
            finally:
                raw.unlink()
        return self.answer(model, {"ImportTaskId": "import-snap-1"})

    def describe(self, model, params, **_):
        status = "active" if next(self.polls) == 0 else self.outcome
        detail = {"Status": status, "StatusMessage": "ClientError: Disk validation failed", "Progress": "50"}
        if status == "completed":
            detail = {"Status": "completed", "SnapshotId": self.snapshot_id}
        return self.answer(model, {"ImportSnapshotTasks": [{"ImportTaskId": "import-snap-1",
                                                            "SnapshotTaskDetail": detail}]})


@pytest.fixture
def vm_import(aws, monkeypatch, tmp_path_factory):
    monkeypatch.setattr(s3_import, "FIRST_DELAY", 0.01)
    fake = FakeVmImport(aws, tmp_path_factory.mktemp("vm-import"))
    clients.EVENT_HOOKS.extend(fake.hooks())
    yield fake
    clients.EVENT_HOOKS.clear()


def own_snapshots(ec2) -> set[str]:
    # moto also makes a snapshot for every image it registers (EC2 does not): those are not the export's
    return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
            if not s.get("Description", "").startswith("Auto-created snapshot for AMI")}


def s3_config(endpoint: str, **changes) -> AmiConfig:
    return AmiConfig(**{"name": "web-s3", "region": "eu-west-1", "endpoint_url": endpoint, "upload": "s3",
                        "bucket": BUCKET, "key_prefix": "imports/", **changes})


def test_ami_export_by_s3_registers_the_imported_snapshot_and_deletes_the_object(
        aws, s3, moto_endpoint, vm_import, make_context):
    (artifact,) = asyncio.run(Ami().run(s3_config(moto_endpoint, tags={"team": "web"}), make_context()))
    record = json.loads(artifact.path.read_text())
    assert record["upload"] == "s3" and record["bucket"] == BUCKET and record["key"].startswith("imports/web-local-")
    assert record["snapshot_id"] == vm_import.snapshot_id and record["parts"] == 4      # 64 MiB in 16 MiB parts
    (sent,) = vm_import.imported
    assert sent["DiskContainer.Format"] == "RAW" and sent["DiskContainer.UserBucket.S3Key"] == record["key"]
    assert sent["TagSpecification.1.ResourceType"] == "import-snapshot-task"
    assert objects(s3) == [] and uploads_left(s3) == []                   # the object is gone afterwards

    ec2, ebs = aws("ec2"), aws("ebs")
    (image,) = ec2.describe_images(ImageIds=[record["image_id"]])["Images"]
    assert image["Name"] == "web-s3" and {"recipe:build-id", "team"} <= {t["Key"] for t in image["Tags"]}
    (snapshot,) = ec2.describe_snapshots(SnapshotIds=[record["snapshot_id"]])["Snapshots"]
    assert {"recipe:build-id", "recipe:recipe", "team"} <= {t["Key"] for t in snapshot["Tags"]}
    # what the object held, imported: the test disk's 2 MiB at 1 MiB and 1 MiB at 40 MiB
    assert sorted(b["BlockIndex"] for b in ebs.list_snapshot_blocks(SnapshotId=record["snapshot_id"])["Blocks"]) \
        == [2, 3, 4, 5, 80, 81]


@pytest.mark.parametrize("step", ["UploadPart", "import ends deleted", "RegisterImage"])
def test_a_failure_on_the_s3_path_leaves_no_object_snapshot_or_image(aws, s3, moto_endpoint, vm_import,
                                                                     make_context, step):
    def fail(**_):
        raise ClientError({"Error": {"Code": "InternalError", "Message": f"injected at {step}"}}, step)

    ec2 = aws("ec2")
    before = own_snapshots(ec2)
    if step == "import ends deleted":
        vm_import.outcome = "deleted"
    else:
        clients.EVENT_HOOKS.append((f"before-call.{'s3' if step == 'UploadPart' else 'ec2'}.{step}", fail))
    with pytest.raises((ClientError, BuildError), match="injected|Disk validation failed"):
        asyncio.run(Ami().run(s3_config(moto_endpoint, name="web-fails"), make_context()))
    assert objects(s3) == [] and uploads_left(s3) == []
    assert own_snapshots(ec2) == before
    assert ec2.describe_images(Filters=[{"Name": "name", "Values": ["web-fails"]}])["Images"] == []
    assert len(vm_import.imported) == (0 if step == "UploadPart" else 1)
    output = make_context().output_dir
    assert not output.exists() or list(output.iterdir()) == []


# -- validation: offline, at `recipe validate` ----------------------------------------------------

RECIPE = """\
name: web
sources:
  box:
    platform: ssh
    ssh: {host: 127.0.0.1}
exports:
  - ami: {name: web, region: eu-west-1, OPTIONS}
"""


def test_upload_s3_without_a_bucket_is_an_invalid_recipe(tmp_path, capsys):
    recipe = tmp_path / "web.yml"
    recipe.write_text(RECIPE.replace("OPTIONS", "upload: s3"))
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # a rule across two options (Ami.check), reported at the option that asks for the bucket
    assert f"{recipe}:7:49: exports[0].ami.upload: bucket is required when upload is s3 (hint: add bucket:" in err


@pytest.mark.parametrize("options, where, words", [
    ("upload: s3, bucket: My_Bucket", "7:61", "S3 bucket name"),
    ("upload: ftp", "7:49", "'ebs-direct', 's3'"),
    ("upload: s3, bucket: b-ok, import_timeout: 0", "7:83", "at least 1"),
])
def test_bad_s3_options_are_reported_at_their_position(tmp_path, capsys, options, where, words):
    recipe = tmp_path / "web.yml"
    recipe.write_text(RECIPE.replace("OPTIONS", options))
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f":{where}: " in err and words in err, err


def test_upload_s3_with_a_bucket_validates_without_aws(tmp_path, capsys, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    recipe = tmp_path / "web.yml"
    recipe.write_text(RECIPE.replace("OPTIONS", "upload: s3, bucket: my-imports, import_timeout: 600"))
    assert main(["validate", str(recipe)]) == 0, capsys.readouterr().err

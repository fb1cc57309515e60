"""The ami export against moto's server over HTTP: the snapshot's blocks read back, what RegisterImage
was sent (moto's own recorder: moto ignores block devices), tags, and cleanup when a step fails."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

from modules.aws import clients, ebs_direct
from modules.exports.ami import Ami, AmiConfig

BLOCK = ebs_direct.BLOCK


@pytest.fixture
def endpoint(moto_endpoint):
    return moto_endpoint


def recorded(endpoint: str, action: str) -> list[dict]:
    """The query parameters of each recorded request for an EC2 action."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/recorder/download-recording") as answer:
        text = answer.read().decode()
    decoder, position, found = json.JSONDecoder(), 0, []
    while position < len(text):          # JSON documents one after another, not always a line each
        if text[position].isspace():
            position += 1
            continue
        entry, position = decoder.raw_decode(text, position)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        params = dict(urllib.parse.parse_qsl(body))
        if params.get("Action") == action:
            found.append(params)
    return found


def recording(endpoint: str, what: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/recorder/{what}", method="POST"))


def read_back(ebs, snapshot_id: str) -> dict[int, bytes]:
    blocks = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]
    return {b["BlockIndex"]: ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=b["BlockIndex"],
                                                    BlockToken=b["BlockToken"])["BlockData"].read()
            for b in blocks}


def test_data_blocks_skips_holes_and_fill_skips_zero_blocks(aws, tmp_path):
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as disk:
        disk.truncate(64 * BLOCK)
        disk.seek(2 * BLOCK + 100)
        disk.write(b"x" * 10)                     # block 2
        disk.seek(5 * BLOCK)
        disk.write(bytes(BLOCK))                  # block 5: written, but zeros
        disk.seek(9 * BLOCK - 3)
        disk.write(os.urandom(6))                 # blocks 8 and 9
        disk.seek(63 * BLOCK)
        disk.write(b"end")                        # the last block
    assert set(ebs_direct.data_blocks(raw)) >= {2, 8, 9, 63}
    assert not set(ebs_direct.data_blocks(raw)) & set(range(10, 63))   # holes are never read
    ebs = aws("ebs")
    snapshot = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    uploaded = ebs_direct.fill(ebs, snapshot, raw, volume_gib=1, concurrency=4)
    assert uploaded.blocks_sent == 4 and uploaded.blocks_total == 2048
    data = raw.read_bytes()
    assert read_back(ebs, snapshot) == {i: data[i * BLOCK:(i + 1) * BLOCK] for i in (2, 8, 9, 63)}


def test_ami_export_registers_a_tagged_image_from_the_disk(aws, endpoint, make_context, disk):
    recording(endpoint, "reset-recording")
    recording(endpoint, "start-recording")
    config = AmiConfig(name="web-test-1", region="eu-west-1", endpoint_url=endpoint, tags={"team": "web"})
    try:
        (artifact,) = asyncio.run(Ami().run(config, make_context()))
    finally:
        recording(endpoint, "stop-recording")
    record = json.loads(artifact.path.read_text())
    assert artifact.path.name == "web-local.ami.json" and artifact.variant == "eu-west-1"
    ec2, ebs = aws("ec2"), aws("ebs")
    (image,) = ec2.describe_images(ImageIds=[record["image_id"]])["Images"]
    assert image["Name"] == "web-test-1"
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["team"] == "web" and tags["recipe:recipe"] and tags["recipe:build-id"]
    (snapshot,) = ec2.describe_snapshots(SnapshotIds=[record["snapshot_id"]])["Snapshots"]
    assert {t["Key"] for t in snapshot["Tags"]} >= {"recipe:build-id", "recipe:recipe", "team"}

    # the snapshot holds exactly the disk's non-zero blocks (the test disk: 2 MiB at 1 MiB, 1 MiB at 40 MiB)
    blocks = read_back(ebs, record["snapshot_id"])
    assert sorted(blocks) == [2, 3, 4, 5, 80, 81]
    assert blocks[2] == b"\xab" * BLOCK and record["blocks_sent"] == 6

    (sent,) = recorded(endpoint, "RegisterImage")
    assert sent["Name"] == "web-test-1" and sent["Architecture"] == "x86_64" and sent["BootMode"] == "legacy-bios"
    assert sent["EnaSupport"] == "true" and sent["RootDeviceName"] == "/dev/xvda"
    assert sent["BlockDeviceMapping.1.Ebs.SnapshotId"] == record["snapshot_id"]
    assert sent["BlockDeviceMapping.1.Ebs.VolumeSize"] == "1" and sent["BlockDeviceMapping.1.Ebs.VolumeType"] == "gp3"


@pytest.mark.parametrize("step", ["PutSnapshotBlock", "CompleteSnapshot", "RegisterImage", "CreateTags"])
def test_a_failure_at_each_step_leaves_no_snapshot_or_image(aws, endpoint, make_context, step):
    def fail(**_):
        raise ClientError({"Error": {"Code": "InternalError", "Message": f"injected at {step}"}}, step)

    service = "ebs" if step in ("PutSnapshotBlock", "CompleteSnapshot") else "ec2"
    ec2 = aws("ec2")
    def snapshots() -> set[str]:
        # moto starts with snapshots of its sample images, and makes one of its own for every image it
        # registers (EC2 does not); only the export's own count here
        return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
                if not s.get("Description", "").startswith("Auto-created snapshot for AMI")}
    before = snapshots()
    clients.EVENT_HOOKS.append((f"before-call.{service}.{step}", fail))
    try:
        with pytest.raises(ClientError, match=f"injected at {step}"):
            asyncio.run(Ami().run(AmiConfig(name="web-fails", region="eu-west-1", endpoint_url=endpoint),
                                  make_context()))
    finally:
        clients.EVENT_HOOKS.clear()
    assert snapshots() == before
    assert ec2.describe_images(Filters=[{"Name": "name", "Values": ["web-fails"]}])["Images"] == []
    output = make_context().output_dir
    assert not output.exists() or list(output.iterdir()) == []
    assert list(make_context().work_dir.iterdir()) == []       # no raw file left in scratch space

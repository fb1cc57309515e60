"""`recipe sweep` against moto's server: tagged leftovers of old builds go, in order; young and untagged stay."""
from __future__ import annotations

import time

import pytest

from engine.cli.main import main
from engine.errors import UsageError
from engine.leftovers.sweep import build_age
from engine.units import parse_duration

OLD = "20200101-000000-dead"


def tags(build_id: str) -> list[dict]:
    return [{"Key": "recipe:build-id", "Value": build_id}, {"Key": "recipe:recipe", "Value": "web"}]


def spec(kind: str, build_id: str) -> list[dict]:
    return [{"ResourceType": kind, "Tags": tags(build_id)}]


def leave_behind(aws, build_id: str) -> dict[str, str]:
    """What a killed amazon build leaves: instance, key pair, security group, snapshot and image."""
    ec2, ebs = aws("ec2"), aws("ebs")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    key = ec2.create_key_pair(KeyName=f"recipe-{build_id}", TagSpecifications=spec("key-pair", build_id))
    group = ec2.create_security_group(GroupName=f"recipe-{build_id}", Description="recipe build",
                                      TagSpecifications=spec("security-group", build_id))["GroupId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, KeyName=key["KeyName"],
                                 SecurityGroupIds=[group],
                                 TagSpecifications=spec("instance", build_id))["Instances"][0]["InstanceId"]
    snapshot = ebs.start_snapshot(VolumeSize=1, Tags=tags(build_id))["SnapshotId"]
    ami = ec2.register_image(Name=f"web-{build_id}", RootDeviceName="/dev/xvda",
                             BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot}}])
    ec2.create_tags(Resources=[ami["ImageId"]], Tags=tags(build_id))
    return {"instance": instance, "key pair": key["KeyName"], "security group": group, "snapshot": snapshot,
            "image": ami["ImageId"]}


def present(aws) -> set[str]:
    ec2 = aws("ec2")
    running = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
               if i["State"]["Name"] != "terminated"}
    return (running | {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
            | {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
            | {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
            | {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]})


def test_sweep_removes_old_tagged_leftovers_and_nothing_else(aws, moto_endpoint, capsys):
    young = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-beef"
    old, running = leave_behind(aws, OLD), leave_behind(aws, young)
    ec2 = aws("ec2")
    untagged = ec2.create_security_group(GroupName="not-ours", Description="someone else's")["GroupId"]
    args = ["sweep", "--region", "eu-west-1", "--endpoint-url", moto_endpoint]

    assert main(args + ["--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert all(f" {id_} in eu-west-1 (build {OLD}" in listed for id_ in old.values()), listed
    assert "would remove" in listed and young not in listed and untagged not in listed
    assert set(old.values()) <= present(aws)                 # a dry run removes nothing

    assert main(args) == 0
    out = capsys.readouterr().out
    order = [line.split()[2] for line in out.splitlines() if line.startswith("aws: removing")]
    assert order == ["instance", "image", "snapshot", "key", "security"]
    left = present(aws)
    assert not set(old.values()) & left
    assert set(running.values()) <= left and untagged in left

    assert main(args + ["--older-than", "0s"]) == 0           # now the young build's too
    assert not set(running.values()) & present(aws)


def test_durations_and_ages():
    assert parse_duration("2h") == 7200 and parse_duration("90m") == 5400 and parse_duration("1.5d") == 129600
    with pytest.raises(UsageError, match="--older-than: 'two hours' is not a duration"):
        parse_duration("two hours")
    assert build_age("20200101-000000-dead", now=1577836800 + 60) == 60
    assert build_age("not-a-build-id") is None


def test_a_bad_duration_exits_2(capsys):
    assert main(["sweep", "--older-than", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err


def test_an_image_goes_with_its_untagged_snapshots(aws, moto_endpoint, capsys):
    """A build killed between CreateImage and tagging the snapshots leaves them untagged: the image takes them."""
    ec2 = aws("ec2")
    image = ec2.register_image(Name="web-killed", RootDeviceName="/dev/xvda")["ImageId"]
    (mapping,) = ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]
    snapshot = mapping["Ebs"]["SnapshotId"]                # made with the image (moto's own), untagged
    assert not ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0].get("Tags")
    ec2.create_tags(Resources=[image], Tags=tags(OLD))
    assert main(["sweep", "--region", "eu-west-1", "--endpoint-url", moto_endpoint]) == 0
    assert image in capsys.readouterr().out
    assert not {image, snapshot} & present(aws)

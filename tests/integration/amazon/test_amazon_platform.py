"""platform: amazon end to end: every AWS call over HTTP to moto's server, the provisioning over real SSH
to a QEMU guest standing in for the instance (see conftest.py), and what is left afterwards read back
from moto: the AMI and its copy, shares and tags, and nothing else of the build."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.cli.main import main
from tests.integration.conftest import RECIPE
from tests.moto_server import TEST_CREDENTIALS

SOURCE_NAME = "debian-12-amd64-20261101-1"
SHARE_USER = "123456789012"
REGIONS = ("eu-west-1", "us-east-1")
ORG = "arn:aws:organizations::123456789012:organization/o-recipe1234"

RECIPE_TEXT = """\
name: cloud
sources:
  aws:
    platform: amazon
    region: eu-west-1
    endpoint_url: "{endpoint}"
    source_ami: {{filters: {{name: "debian-12-amd64-*"}}, owners: [self], most_recent: true}}
    instance_type: t3.small
    ami_name: "cloud-{{{{ build.id }}}}"
    ami_description: "web image"
    regions: [us-east-1]
    share: {{users: ["{user}"], org_arns: ["{org}"]}}
    tags: {{team: web}}
    run_tags: {{purpose: build}}
    root_volume: {{size: 12, type: gp3}}
    user_data: "#cloud-config\\nruncmd: [true]\\n"
    poll_delay: 0.2
    {extra}
    ssh: {{user: debian, host: 127.0.0.1, port: {port}, connect_timeout: {connect_timeout}}}
become: true
tasks:
  - name: Mark the image
    copy: {{content: "{{{{ build.id }}}}\\n", dest: /etc/recipe-ec2-marker}}
"""


def write_recipe(tmp_path: Path, endpoint: str, port: int, extra: str = "", connect_timeout: int = 120) -> Path:
    recipe = tmp_path / "cloud.yml"
    recipe.write_text(RECIPE_TEXT.format(endpoint=endpoint, port=port, user=SHARE_USER, org=ORG, extra=extra,
                                         connect_timeout=connect_timeout))
    return recipe


def register_source(aws) -> set[str]:
    """The source AMI; returns the snapshots there are before the build (moto makes one per preloaded AMI)."""
    aws("ec2").register_image(Name=SOURCE_NAME, Architecture="x86_64", RootDeviceName="/dev/xvda",
                              VirtualizationType="hvm")
    return {s["SnapshotId"] for region in REGIONS
            for s in aws("ec2", region).describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def run(recipe: Path, tmp_path: Path) -> tuple[int, list[dict]]:
    events_file = tmp_path / "events.jsonl"
    code = main(["run", str(recipe), "--output-dir", str(tmp_path / "out"), "--json", str(events_file)])
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    return code, events


def build_tagged(items: list[dict]) -> list[dict]:
    return [i for i in items if any(t["Key"] == "recipe:build-id" for t in i.get("Tags") or [])]


def leftovers(aws, snapshots_before: set[str]) -> dict[str, list]:
    """Everything of a build that is still there in either region (terminated instances do not count)."""
    found: dict[str, list] = {}
    for region in REGIONS:
        ec2 = aws("ec2", region)
        instances = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                     if i["State"]["Name"] != "terminated"]
        found[f"{region} instances"] = instances
        found[f"{region} key pairs"] = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
        found[f"{region} security groups"] = [g["GroupId"] for g in
                                              build_tagged(ec2.describe_security_groups()["SecurityGroups"])]
        found[f"{region} images"] = [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]
                                     if i["Name"] != SOURCE_NAME]
        found[f"{region} snapshots"] = [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
                                        if s["SnapshotId"] not in snapshots_before]
    return found


def tags_of(item: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags") or []}


def test_amazon_build_gives_a_copied_shared_tagged_ami_and_leaves_nothing_else(instance_stand_in, aws, checkip,
                                                                                moto_endpoint, tmp_path):
    ec2 = aws("ec2")
    before = register_source(aws)
    code, events = run(write_recipe(tmp_path, moto_endpoint, instance_stand_in.port,
                                    extra=f'checkip_url: "{checkip}"'), tmp_path)
    assert code == 0, [e for e in events if e["event"] in ("build.end", "warning")]
    build_id = next(e["build_id"] for e in events if e["event"] == "build.start")
    record = json.loads((tmp_path / "out" / "cloud-aws" / "cloud-aws.ami.json").read_text())
    assert set(record["images"]) == {"eu-west-1", "us-east-1"} and record["name"] == f"cloud-{build_id}"

    # the tasks ran on the machine the build connected to, with its host key verified from the console
    marker = instance_stand_in.ssh("cat /etc/recipe-ec2-marker")
    assert marker.stdout.decode().strip() == build_id
    assert any(e["event"] == "connected" and e["host_key_verified"] for e in events)
    assert instance_stand_in.console_answers >= 1
    assert any(f"recipe-build-{build_id}-ec2" in key for key in instance_stand_in.keys_pushed)
    assert any("port 22 open to 127.0.0.1/32" in e.get("msg", "") for e in events)   # the caller's address only

    for region, image_id in record["images"].items():
        regional = aws("ec2", region)
        (image,) = regional.describe_images(ImageIds=[image_id])["Images"]
        assert image["State"] == "available" and image["Name"] == f"cloud-{build_id}"
        assert tags_of(image) == {"Name": f"cloud-{build_id}", "team": "web", "recipe:build-id": build_id,
                                  "recipe:recipe": "cloud"}
        (snapshot_id,) = record["snapshots"][region]
        (snapshot,) = regional.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        assert tags_of(snapshot)["recipe:build-id"] == build_id and tags_of(snapshot)["team"] == "web"
        grants = regional.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"]
        assert {"UserId": SHARE_USER} in grants and {"OrganizationArn": ORG} in grants
        volume = regional.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
        assert volume["CreateVolumePermissions"] == [{"UserId": SHARE_USER}]

    # what RunInstances was given, read back from moto
    (reservation,) = ec2.describe_instances()["Reservations"]
    (instance,) = reservation["Instances"]
    assert instance["State"]["Name"] == "terminated" and instance["InstanceType"] == "t3.small"
    assert tags_of(instance)["recipe:build-id"] == build_id and tags_of(instance)["purpose"] == "build"
    user_data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    assert "runcmd" in __import__("base64").b64decode(user_data["UserData"]["Value"]).decode()

    left = leftovers(aws, before)
    assert all(not v for k, v in left.items() if "images" not in k and "snapshots" not in k), left
    assert sorted(left["eu-west-1 images"] + left["us-east-1 images"]) == sorted(record["images"].values())
    assert sorted(left["eu-west-1 snapshots"] + left["us-east-1 snapshots"]) == sorted(
        s for made in record["snapshots"].values() for s in made)


STEPS = ["DescribeImages", "ImportKeyPair", "CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "RunInstances",
         "DescribeInstances", "StopInstances", "CreateImage", "CreateTags", "CopyImage",
         "ModifyImageAttribute", "ModifySnapshotAttribute"]


@pytest.mark.parametrize("operation", STEPS)
def test_a_failing_aws_step_leaves_nothing_behind(operation, instance_stand_in, aws, fail_at, moto_endpoint,
                                                   tmp_path):
    before = register_source(aws)
    hits = fail_at(operation)
    code, events = run(write_recipe(tmp_path, moto_endpoint, instance_stand_in.port,
                                    extra='ssh_cidrs: ["192.0.2.0/24"]'), tmp_path)
    assert hits, f"{operation} was never called"
    assert TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in json.dumps(events)   # errors never carry credentials
    (end,) = [e for e in events if e["event"] == "build.end"]
    assert code == 1 and end["status"] == "failed" and f"{operation} failed" in end["error"], end
    assert not [e for e in events if e["event"] == "warning" and "cleanup" in e["msg"]]
    left = leftovers(aws, before)
    assert not any(left.values()), left
    assert not (tmp_path / "out" / "cloud-aws" / "cloud-aws.ami.json").exists()


def test_an_ami_name_in_use_fails_early_unless_force_deregister(instance_stand_in, aws, moto_endpoint, tmp_path):
    ec2, east = aws("ec2"), aws("ec2", "us-east-1")
    register_source(aws)
    recipe = write_recipe(tmp_path, moto_endpoint, instance_stand_in.port, extra='ssh_cidrs: ["192.0.2.0/24"]')
    recipe.write_text(recipe.read_text().replace('"cloud-{{ build.id }}"', "cloud-web"))
    taken = east.register_image(Name="cloud-web", Architecture="x86_64", RootDeviceName="/dev/xvda",
                                VirtualizationType="hvm")["ImageId"]

    code, events = run(recipe, tmp_path)
    (end,) = [e for e in events if e["event"] == "build.end"]
    assert code == 1 and "already exists in us-east-1" in end["error"] and taken in end["error"]
    assert not ec2.describe_instances()["Reservations"]          # nothing was launched

    recipe.write_text(recipe.read_text().replace("poll_delay: 0.2", "poll_delay: 0.2\n    force_deregister: true"))
    code, events = run(recipe, tmp_path)
    assert code == 0, [e for e in events if e["event"] == "build.end"]
    (now_east,) = east.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["cloud-web"]}])["Images"]
    assert now_east["ImageId"] != taken
    assert not east.describe_images(ImageIds=[taken])["Images"] or \
        east.describe_images(ImageIds=[taken])["Images"][0]["State"] != "available"


def test_the_build_waits_for_the_host_keys_on_the_console(instance_stand_in, aws, moto_endpoint, tmp_path):
    """cloud-init prints the keys late in the boot: blank consoles are read again, and an instance that
    refuses Latest=true (a Xen type) is asked for the last capture instead.

    The recipe is written as the design's example writes it: source_ami by `name:`, and no ami_name,
    so the AMI gets a name unique to the build."""
    register_source(aws)
    instance_stand_in.console_blank_answers, instance_stand_in.console_refuses_latest = 2, True
    recipe = write_recipe(tmp_path, moto_endpoint, instance_stand_in.port, extra='ssh_cidrs: ["192.0.2.0/24"]')
    text = recipe.read_text().replace('source_ami: {filters: {name: "debian-12-amd64-*"}, owners: [self], '
                                      'most_recent: true}',
                                      'source_ami: {name: "debian-12-amd64-*", owners: [self], most_recent: true}')
    recipe.write_text(text.replace('    ami_name: "cloud-{{ build.id }}"\n', ''))
    assert "ami_name" not in recipe.read_text() and "source_ami: {name:" in recipe.read_text()
    code, events = run(recipe, tmp_path)
    assert code == 0, [e for e in events if e["event"] in ("build.end", "warning")]
    build_id = next(e["build_id"] for e in events if e["event"] == "build.start")
    names = {i["Name"] for i in aws("ec2").describe_images(Owners=["self"])["Images"]} - {SOURCE_NAME}
    assert names == {f"cloud-aws-{build_id}"}
    assert any(e["event"] == "connected" and e["host_key_verified"] for e in events)
    assert not [e for e in events if e["event"] == "warning" and "host key" in e["msg"]]
    asked = [r.get("Latest") for r in instance_stand_in.console_requests]
    assert asked == ["true", None, None, None], asked     # refused once, then two blank reads, then the keys


def test_no_host_keys_within_host_key_wait_is_a_warning_not_a_failure(instance_stand_in, aws, moto_endpoint,
                                                                      tmp_path):
    register_source(aws)
    instance_stand_in.console_blank_answers = -1          # an image without cloud-init's key block
    code, events = run(write_recipe(tmp_path, moto_endpoint, instance_stand_in.port,
                                    extra='ssh_cidrs: ["192.0.2.0/24"]\n    host_key_wait: 1'), tmp_path)
    assert code == 0, [e for e in events if e["event"] in ("build.end", "warning")]
    warnings = [e["msg"] for e in events if e["event"] == "warning"]
    assert any("did not print its SSH host keys on the console within 1s (host_key_wait)" in w for w in warnings)
    assert any("not verified (SHA256:" in w for w in warnings), warnings     # and the fingerprint seen
    assert any(e["event"] == "connected" and not e["host_key_verified"] for e in events)
    reads = len(instance_stand_in.console_requests)
    assert 3 <= reads <= 4, reads          # 0.2 + 0.4 s between reads fit in 1 s; 0.8 more would not


def test_sweep_removes_what_a_sigkilled_build_left(aws, moto_endpoint, tmp_path):
    """SIGKILL runs no cleanup: the instance, key pair and security group stay until `recipe sweep`."""
    ec2 = aws("ec2")
    before = register_source(aws)
    closed_port = __import__("modules.platforms.qemu.machine", fromlist=["free_port"]).free_port()
    recipe = write_recipe(tmp_path, moto_endpoint, closed_port, extra='ssh_cidrs: ["192.0.2.0/24"]',
                          connect_timeout=600)
    build = subprocess.Popen([RECIPE, "run", str(recipe), "--output-dir", str(tmp_path / "out")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
                i["State"]["Name"] == "running" for r in ec2.describe_instances()["Reservations"]
                for i in r["Instances"]):
            time.sleep(0.5)
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()
    left = leftovers(aws, before)
    assert left["eu-west-1 instances"] and left["eu-west-1 key pairs"] and left["eu-west-1 security groups"], left

    env = {**os.environ}
    dry = subprocess.run([RECIPE, "sweep", "--region", "eu-west-1", "--endpoint-url", moto_endpoint,
                          "--older-than", "0", "--dry-run"], capture_output=True, text=True, env=env)
    assert dry.returncode == 0 and left["eu-west-1 instances"][0] in dry.stdout, dry.stdout + dry.stderr
    assert leftovers(aws, before) == left
    swept = subprocess.run([RECIPE, "sweep", "--region", "eu-west-1", "--endpoint-url", moto_endpoint,
                            "--older-than", "0"], capture_output=True, text=True, env=env)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert not any(leftovers(aws, before).values())


def test_ctrl_c_mid_provisioning_releases_everything(instance_stand_in, aws, moto_endpoint, tmp_path):
    """SIGINT while a task runs on the instance: exit 130, the remote command killed, the instance
    terminated, key pair and security group deleted, no AMI made."""
    import threading

    before = register_source(aws)
    recipe = write_recipe(tmp_path, moto_endpoint, instance_stand_in.port, extra='ssh_cidrs: ["192.0.2.0/24"]')
    recipe.write_text(recipe.read_text() + "  - name: A long task\n    command: sleep 61\n")

    def interrupt_once_the_task_runs() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if instance_stand_in.ssh("pgrep -f '[s]leep 61'").returncode == 0:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=interrupt_once_the_task_runs, daemon=True)
    watcher.start()
    code, events = run(recipe, tmp_path)
    watcher.join()
    assert code == 130
    assert any(e["event"] == "task.start" and e.get("task") == "A long task" for e in events)
    assert not any(leftovers(aws, before).values()), leftovers(aws, before)
    assert instance_stand_in.ssh("pgrep -f '[s]leep 61' || true").stdout.strip() == b""

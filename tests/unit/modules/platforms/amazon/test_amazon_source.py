"""Amazon sources offline (validation with no credentials and no network) and the platform's pieces that
talk to AWS, against moto's server: source AMI lookup, polling, console host keys."""
from __future__ import annotations

import asyncio
import time

import pytest

from engine.cli.main import main
from engine.errors import BuildError
from engine.recipe.compile import CompileOptions, compile_recipe
from modules.aws import ec2 as aws_calls
from modules.platforms.amazon import SourceAmiQuery
from modules.platforms.amazon.steps import resolve_source_ami, root_mapping

GOOD = """\
name: web
sources:
  local:
    platform: qemu
    base: {path: base.qcow2}
    ssh: {user: debian}
  aws:
    platform: amazon
    region: eu-west-1
    source_ami: {filters: {name: "debian-12-amd64-*"}, owners: ["136693071363"], most_recent: true}
    ami_name: "web-{{ build.id }}"
    regions: [us-east-1, eu-central-1]
    share: {users: ["123456789012"], groups: [all], org_arns: ["arn:aws:organizations::123456789012:organization/o-a1"]}
    ssh_cidrs: [203.0.113.0/24]
    root_volume: {size: 20, type: gp3}
    ssh: {user: admin}
tasks:
  - command: "true"
exports:
  - qcow2: {}
  - vmdk: {}
  - checksum: {}
"""


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No credentials anywhere boto3 would look, and an endpoint that refuses connections."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_an_amazon_source_validates_offline(offline, tmp_path, capsys):
    (tmp_path / "base.qcow2").write_bytes(b"")
    recipe = tmp_path / "web.yml"
    recipe.write_text(GOOD)
    assert main(["validate", str(recipe)]) == 0, capsys.readouterr().err


def test_an_amazon_build_takes_only_the_exports_that_read_everything(tmp_path, capsys):
    (tmp_path / "base.qcow2").write_bytes(b"")
    recipe = tmp_path / "web.yml"
    recipe.write_text(GOOD)
    compiled = compile_recipe(recipe, CompileOptions())
    kinds = {b.source.name: [e.kind for e in b.exports] for b in compiled.builds}
    assert kinds == {"local": ["qcow2", "vmdk", "checksum"], "aws": ["checksum"]}
    assert main(["inspect", str(recipe)]) == 0                 # inspect says so per source
    shown = capsys.readouterr().out
    assert "platform=qemu  user=debian  exports: qcow2, vmdk, checksum" in shown
    assert "platform=amazon  user=admin  exports: checksum" in shown
    aws = next(b for b in compiled.builds if b.source.name == "aws").source.config
    assert aws.regions == ("us-east-1", "eu-central-1") and aws.share.groups == ("all",)
    assert aws.source_ami == SourceAmiQuery({"name": ["debian-12-amd64-*"]}, ("136693071363",), True)


@pytest.mark.parametrize("old, new, where, words", [
    ("region: eu-west-1", "region: europe", "9:13", "a region like eu-west-1"),
    ("source_ami: {filters: {name: \"debian-12-amd64-*\"}, owners: [\"136693071363\"], most_recent: true}",
     "source_ami: ami-xyz", "10:17", "an AMI id"),
    ("ssh_cidrs: [203.0.113.0/24]", "ssh_cidrs: [203.0.113.0/33]", "14:17", "not a CIDR block"),
    ('users: ["123456789012"]', 'users: ["1234"]', "13:21", "12-digit AWS account id"),
    ("ssh: {user: admin}", "ssh: {host: 10.0.0.1}", "16:10", "user"),
    ("root_volume: {size: 20, type: gp3}", "root_volume: {size: 20, type: fast}", "15:35", "gp3"),
    ("ssh_cidrs:", "key_pair: builder\n    ssh_cidrs:", "14:15", "private key"),
    ("ami_name:", "instance_typ: t3.micro\n    ami_name:", "11:5", "instance_type"),
])
def test_bad_amazon_options_exit_2_at_their_position(offline, tmp_path, capsys, old, new, where, words):
    (tmp_path / "base.qcow2").write_bytes(b"")
    assert old in GOOD
    recipe = tmp_path / "web.yml"
    recipe.write_text(GOOD.replace(old, new))
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{recipe}:{where}:" in err and words in err, err


def test_console_host_keys_are_read_from_cloud_inits_block():
    console = ("ci-info: no authorized SSH keys\n-----BEGIN SSH HOST KEY KEYS-----\n"
               "ecdsa-sha2-nistp256 AAAAE2VjZHNh root@ip-10-0-0-1\nssh-ed25519 AAAAC3NzaC1lZDI1 root@ip-10-0-0-1\n"
               "-----END SSH HOST KEY KEYS-----\n[  OK  ] Reached target Cloud-init target.\n")
    assert aws_calls.host_keys_from_console(console) == ["ecdsa-sha2-nistp256 AAAAE2VjZHNh",
                                                         "ssh-ed25519 AAAAC3NzaC1lZDI1"]
    assert aws_calls.host_keys_from_console("Booting...\n") == []


def test_poll_backs_off_and_times_out():
    calls: list[float] = []

    async def never() -> bool:
        calls.append(time.monotonic())
        return False

    with pytest.raises(BuildError, match="timed out after 1s waiting for the thing"):
        asyncio.run(aws_calls.poll("the thing", never, timeout=1.0, first_delay=0.1))
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert len(calls) == 4 and all(later > earlier * 1.5 for earlier, later in zip(gaps, gaps[1:])), gaps


def test_source_ami_by_id_by_filters_and_ambiguity(aws):
    ec2 = aws("ec2")
    first = ec2.register_image(Name="debian-12-amd64-a", RootDeviceName="/dev/xvda")["ImageId"]
    second = ec2.register_image(Name="debian-12-amd64-b", RootDeviceName="/dev/xvda")["ImageId"]
    assert asyncio.run(resolve_source_ami(ec2, first))["ImageId"] == first
    one = SourceAmiQuery({"name": ["debian-12-amd64-b"]}, ("self",))
    assert asyncio.run(resolve_source_ami(ec2, one))["ImageId"] == second
    both = SourceAmiQuery({"name": ["debian-12-amd64-*"]}, ("self",))
    with pytest.raises(BuildError, match="2 AMIs match") as ambiguous:
        asyncio.run(resolve_source_ami(ec2, both))
    assert "most_recent: true" in ambiguous.value.hint
    newest = asyncio.run(resolve_source_ami(ec2, SourceAmiQuery(both.filters, both.owners, most_recent=True)))
    assert newest["ImageId"] in (first, second)
    with pytest.raises(BuildError, match="no AMI matches"):
        asyncio.run(resolve_source_ami(ec2, SourceAmiQuery({"name": ["ubuntu-*"]}, ("self",))))
    with pytest.raises(BuildError, match="InvalidAMIID"):
        asyncio.run(resolve_source_ami(ec2, "ami-0123456789abcdef0"))


def test_root_mapping_keeps_the_source_device_and_never_shrinks_it():
    from modules.platforms.amazon import RootVolume
    source = {"RootDeviceName": "/dev/sda1",
              "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}]}
    assert root_mapping(source, RootVolume(size=20, type="gp3")) == {
        "DeviceName": "/dev/sda1", "Ebs": {"VolumeType": "gp3", "DeleteOnTermination": True, "VolumeSize": 20}}
    assert root_mapping(source, RootVolume(size=4, type="io1"))["Ebs"]["VolumeSize"] == 8

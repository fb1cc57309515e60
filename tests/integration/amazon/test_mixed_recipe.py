"""The seed's promise: one recipe, one `recipe run`, a local qcow2 and AMIs. The qemu source boots a real
guest and its disk goes to an AMI through the ami export (EBS direct into moto); the amazon source builds
on the instance stand-in. Both are provisioned by the same tasks."""
from __future__ import annotations

import json

from engine.cli.main import main
from tests.integration.amazon.test_amazon_platform import register_source

MIXED = """\
name: site
sources:
  local:
    platform: qemu
    base: {{path: "{base}"}}
    ssh: {{user: debian}}
  aws:
    platform: amazon
    region: eu-west-1
    endpoint_url: "{endpoint}"
    source_ami: {{filters: {{name: "debian-12-amd64-*"}}, owners: [self]}}
    ami_name: "site-aws-{{{{ build.id }}}}"
    ssh_cidrs: [192.0.2.0/24]
    poll_delay: 0.2
    ssh: {{user: debian, host: 127.0.0.1, port: {port}}}
become: true
tasks:
  - name: Mark the image with its source
    copy: {{content: "{{{{ build.source }}}}\\n", dest: /etc/recipe-site-source}}
exports:
  - qcow2: {{}}
  - ami: {{name: "site-local-{{{{ build.id }}}}", region: eu-west-1, endpoint_url: "{endpoint}"}}
  - manifest: {{}}
"""


def test_one_recipe_builds_a_qcow2_and_amis_from_a_qemu_and_an_amazon_source(instance_stand_in, bootstrap_base,
                                                                             aws, moto_endpoint, tmp_path):
    register_source(aws)
    recipe = tmp_path / "site.yml"
    recipe.write_text(MIXED.format(base=bootstrap_base.path, endpoint=moto_endpoint, port=instance_stand_in.port))
    out = tmp_path / "out"
    events_file = tmp_path / "events.jsonl"
    code = main(["run", str(recipe), "--output-dir", str(out), "--json", str(events_file)])
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    ends = {e["build"]: e for e in events if e["event"] == "build.end"}
    assert code == 0 and {b: e["status"] for b, e in ends.items()} == {"site-local": "succeeded",
                                                                       "site-aws": "succeeded"}, ends

    assert (out / "site-local" / "site-local.qcow2").stat().st_size > 0
    local_ami = json.loads((out / "site-local" / "site-local.ami.json").read_text())
    aws_ami = json.loads((out / "site-aws" / "site-aws.ami.json").read_text())
    assert not (out / "site-aws" / "site-aws.qcow2").exists()          # disk exports are for local disks
    ec2 = aws("ec2")
    images = {i["ImageId"]: i for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert images[local_ami["image_id"]]["Name"].startswith("site-local-")
    assert images[aws_ami["images"]["eu-west-1"]]["Name"].startswith("site-aws-")
    assert instance_stand_in.ssh("cat /etc/recipe-site-source").stdout.decode().strip() == "aws"

    manifest = json.loads((out / "site.manifest.json").read_text())
    formats = {b["name"]: sorted(a["format"] for a in b["artifacts"]) for b in manifest["builds"]}
    assert formats == {"site-local": ["ami", "qcow2"], "site-aws": ["ami"]}, formats

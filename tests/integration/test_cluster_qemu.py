"""A directory of recipes on a cluster: a small qemu build and ssh builds, over two workers with different
labels; the qemu worker keeps its artifacts in S3 (moto's server over HTTP), the other in a folder.

The qemu build boots the session's bootstrap base under TCG (marked `guest` by the conftest).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess

import boto3

from engine.local_cache import default_cache_dir
from tests.cluster import RECIPE, Worker, json_events, ssh_recipe
from tests.redis_server import redis_server

QEMU_RECIPE = """\
name: appliance
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    ssh: {{user: debian}}
become: true
tasks:
  - name: A mark
    copy: {{content: "built on a cluster\\n", dest: /etc/cluster-mark}}
exports:
  - qcow2: {{}}
  - checksum: {{}}
  - manifest: {{}}
"""


def test_a_directory_of_recipes_spreads_by_labels_and_its_artifacts_arrive(bootstrap_base, sshd, moto_endpoint,
                                                                          tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="images", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "appliance.yml").write_text(QEMU_RECIPE.format(base=bootstrap_base.path))
    for number in range(2):
        (recipes / f"web{number}.yml").write_text(ssh_recipe(f"web{number}", sshd,
                                                             "  - name: a moment\n    command: sleep 1\n"))
    with redis_server() as server:
        vm_worker = Worker("vms", "qemu,ssh,x86_64", None, tmp_path / "vms.log", server.url,
                           extra=("--store", "s3://images/builds")).start()
        ssh_worker = Worker("shells", "ssh,x86_64", tmp_path / "shells-store", tmp_path / "shells.log",
                            server.url).start()
        try:
            json_file = tmp_path / "events.json"
            out = tmp_path / "out"
            done = subprocess.run([RECIPE, "run", "--cluster", server.url, str(recipes), "--json", str(json_file),
                                   "--output-dir", str(out)], capture_output=True, text=True, timeout=900)
        finally:
            vm_worker.stop()
            ssh_worker.stop()
    assert done.returncode == 0, done.stdout + done.stderr + vm_worker.log()[-3000:]
    events = json_events(json_file)
    starts = {e["build"]: e["worker"] for e in events if e.get("event") == "build.start"}
    assert starts["appliance-vm"].startswith("vms@")
    assert sorted(starts) == ["appliance-vm", "web0-box", "web1-box"]
    # the image arrived, whole: SHA256SUMS checks, and the manifest names it with the same digest
    folder = out / "appliance-vm"
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0 and "appliance-vm.qcow2: OK" in check.stdout, check.stdout + check.stderr
    manifest = json.loads((out / "appliance.manifest.json").read_text())
    assert manifest["recipe"]["path"] == str(recipes / "appliance.yml")
    [entry] = manifest["builds"]
    image = next(a for a in entry["artifacts"] if a["format"] == "qcow2")
    assert image["path"] == "appliance-vm/appliance-vm.qcow2"
    digest = hashlib.sha256((out / image["path"]).read_bytes()).hexdigest()
    assert image["sha256"] == digest
    # it went through S3, and the worker's spool kept nothing of it
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="images", Prefix="builds/")["Contents"]]
    assert any(k.endswith("/appliance-vm/appliance-vm.qcow2") for k in keys)
    run = next(e["cluster"] for e in events if e.get("event") == "run.start")
    assert not (default_cache_dir() / "worker-spool" / run / "appliance-vm").exists()
    # build.log on the submitter has the build's events, then the serial console the worker kept
    log = (folder / "build.log").read_text()
    assert "A mark" in log and "serial console" in log
    assert os.path.getsize(out / image["path"]) == image["size"]
    # the recap names the exports' artifacts where they are now, as a local run's does
    [end] = [e for e in events if e.get("event") == "build.end" and e["build"] == "appliance-vm"]
    assert sorted(end["artifacts"]) == sorted([str(folder / "SHA256SUMS"), str(folder / "appliance-vm.qcow2"),
                                               str(out / "appliance.manifest.json")])

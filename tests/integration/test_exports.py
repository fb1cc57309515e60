"""Appliance exports of a real build, checked by their consumers: the DMTF schema, sha256sum, and QEMU
booting the VMDK taken out of the OVA and reached over SSH (the Vagrant consumers are in vagrant/)."""
from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

from lxml import etree

from .conftest import boot_and_check

XSD = Path(__file__).parents[1] / "data" / "ovf-xsd" / "dsp8023_1.1.1.xsd"


def test_the_chain_left_every_artifact_and_removed_the_consumed_vmdk(exported_image):
    out = exported_image.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("console-") and p.name != "build.log") == [
        "SHA256SUMS", "appliance-disk1.vmdk", "appliance-vm-libvirt.box", "appliance-vm-virtualbox.box",
        "appliance-vm.box.json", "appliance-vm.ova", "appliance-vm.vmwarevm", "appliance.mf", "appliance.ovf"]
    assert sorted(p.name for p in (out / "appliance-vm.vmwarevm").iterdir()) == ["appliance-vm.vmdk",
                                                                                  "appliance-vm.vmx"]
    removed = [e["path"] for e in exported_image.events if e.get("event") == "export.removed"]
    assert removed == [str(out / "appliance-vm.vmdk")]


def test_manifest_and_checksums_match_the_files(exported_image):
    check = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=exported_image.output,
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 9, check.stdout + check.stderr
    manifest = json.loads((exported_image.run_dir / "appliance.manifest.json").read_text())
    (build,) = manifest["builds"]
    assert build["name"] == "appliance-vm" and build["platform"] == "qemu" and build["source"] == "vm"
    assert manifest["recipe"]["digest"] == build["recipe_digest"] and len(build["recipe_digest"]) == 64
    assert build["started"] <= build["finished"]
    formats = {a["format"] for a in build["artifacts"]}
    assert {"ova", "ovf", "vmdk", "vmx", "box", "box-catalog", "checksum"} <= formats
    for artifact in build["artifacts"]:
        path = exported_image.run_dir / artifact["path"]
        assert artifact["size"] == path.stat().st_size
        assert artifact["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_ova_members_and_descriptor(exported_image):
    with tarfile.open(exported_image.output / "appliance-vm.ova") as tar:
        names = tar.getnames()
        descriptor = tar.extractfile("appliance-vm.ovf").read()
        assert {m.mtime for m in tar.getmembers()} == {1_700_000_000}     # SOURCE_DATE_EPOCH
    assert names == ["appliance-vm.ovf", "appliance-vm.mf", "appliance-vm.vmdk"]
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(etree.fromstring(descriptor)), schema.error_log
    assert b"Debian GNU/Linux 12" in descriptor and b'ovf:id="96"' in descriptor   # from the guest's facts
    standalone = (exported_image.output / "appliance.ovf").read_bytes()
    assert schema.validate(etree.fromstring(standalone)), schema.error_log


BOOT_THE_VMDK = """\
name: fromova
sources:
  vm:
    platform: qemu
    base: {{path: "{vmdk}"}}
    ssh: {{user: debian}}
become: true
tasks:
  - name: The build's mark is in the image
    shell: grep -qx exported-by-recipe /etc/recipe-test-marker
    changed_when: false
  - name: The vagrant role's user and sudo rule are there
    shell: id vagrant && test -s /home/vagrant/.ssh/authorized_keys && test -f /etc/sudoers.d/vagrant
    changed_when: false
  - name: Sysprep removed the exporting build's login key
    shell: "! grep -qsF recipe-build-{build_id} /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys"
    changed_when: false
  - name: The disk is the VMDK
    shell: test -b /dev/vda
    changed_when: false
exports:
  - raw: {{}}
"""


def test_the_vmdk_inside_the_ova_boots_and_answers_ssh(exported_image, tmp_path):
    vmdk = tmp_path / "appliance-vm.vmdk"
    with tarfile.open(exported_image.output / "appliance-vm.ova") as tar, vmdk.open("wb") as target:
        source = tar.extractfile("appliance-vm.vmdk")
        while chunk := source.read(1 << 20):
            target.write(chunk)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(vmdk)], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["format"] == "vmdk" and info["format-specific"]["data"]["create-type"] == "streamOptimized"
    recipe = tmp_path / "fromova.yml"
    manifest = json.loads((exported_image.run_dir / "appliance.manifest.json").read_text())
    (build,) = manifest["builds"]
    # The exporting build's key only: this boot's own key (recipe-build-<this id>) is rightly there.
    recipe.write_text(BOOT_THE_VMDK.format(vmdk=vmdk, build_id=build["build_id"]))
    boot_and_check(recipe, tmp_path, tasks=4)

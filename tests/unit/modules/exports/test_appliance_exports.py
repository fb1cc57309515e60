"""vmdk, ova and ovf exports: real qemu-img, the DMTF schema, tar order, manifests, reproducibility."""
from __future__ import annotations

import asyncio
import hashlib
import subprocess
import tarfile

import pytest
from lxml import etree

from modules.exports._ovf import OVF, RASD
from modules.exports.ovf import Ova, Ovf, OvfConfig
from modules.exports.vmdk import HEADER, SECTOR, Vmdk, VmdkConfig, stabilize_descriptor

from .conftest import XSD, qemu_compare

NS = {"ovf": OVF, "rasd": RASD}


@pytest.fixture(scope="module")
def ovf_schema():
    return etree.XMLSchema(etree.parse(str(XSD)))


def embedded_descriptor(path) -> str:
    with path.open("rb") as vmdk:
        fields = HEADER.unpack(vmdk.read(HEADER.size))
        vmdk.seek(fields[5] * SECTOR)
        return vmdk.read(fields[6] * SECTOR).split(b"\0", 1)[0].decode()


@pytest.mark.parametrize("subformat", ["streamOptimized", "monolithicSparse"])
def test_vmdk_holds_the_disk_and_names_itself(make_context, disk, subformat):
    (artifact,) = asyncio.run(Vmdk().run(VmdkConfig(subformat=subformat), make_context()))
    assert artifact.path.name == "web-local.vmdk" and artifact.variant == subformat
    assert qemu_compare(disk, artifact.path)
    text = embedded_descriptor(artifact.path)
    assert f'createType="{subformat}"' in text and 'SPARSE "web-local.vmdk"' in text
    assert list(artifact.path.parent.iterdir()) == [artifact.path]


def test_vmdk_is_byte_identical_across_exports(make_context):
    first = asyncio.run(Vmdk().run(VmdkConfig(), make_context("a")))[0].path
    second = asyncio.run(Vmdk().run(VmdkConfig(), make_context("b")))[0].path
    assert first.read_bytes() == second.read_bytes()


def test_vmdk_descriptor_ends_at_its_nul(make_context):
    """qemu-img rewrites the descriptor in place when it sets the CID: a CID shorter than the first
    leaves the old text's last bytes after the NUL. They must not survive into the export."""
    path = asyncio.run(Vmdk().run(VmdkConfig(), make_context()))[0].path
    clean = path.read_bytes()
    with path.open("r+b") as vmdk:
        fields = HEADER.unpack(vmdk.read(HEADER.size))
        vmdk.seek(fields[5] * SECTOR)
        text = vmdk.read(fields[6] * SECTOR).split(b"\0", 1)[0]
        vmdk.seek(fields[5] * SECTOR)
        vmdk.write(text + b"\0\n")          # the bytes seen when the suite's exports differed
    stabilize_descriptor(path, "web-local.vmdk")
    assert path.read_bytes() == clean


def read_ova(path):
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        return members, {m.name: tar.extractfile(m).read() for m in members}


def test_ova_order_manifest_and_schema(make_context, disk, ovf_schema, tmp_path):
    (artifact,) = asyncio.run(Ova().run(OvfConfig(), make_context()))
    assert artifact.path.name == "web-local.ova" and artifact.format == "ova"
    members, data = read_ova(artifact.path)
    assert [m.name for m in members] == ["web-local.ovf", "web-local.mf", "web-local-disk1.vmdk"]
    assert all(m.mtime == 1_700_000_000 and m.uid == 0 and m.mode == 0o644 for m in members)
    raw = artifact.path.read_bytes()
    assert raw[257:263] == b"ustar\x00"            # POSIX ustar, as OVF 1.x asks
    assert len(raw) % 10240 == 0
    listed = subprocess.run(["tar", "-tf", str(artifact.path)], capture_output=True, text=True, check=True)
    assert listed.stdout.split() == [m.name for m in members]     # GNU tar reads it the same

    lines = data["web-local.mf"].decode().splitlines()
    assert lines == [f"SHA256({name})= {hashlib.sha256(data[name]).hexdigest()}"
                     for name in ("web-local.ovf", "web-local-disk1.vmdk")]

    document = etree.fromstring(data["web-local.ovf"])
    assert ovf_schema.validate(document), ovf_schema.error_log
    (file,) = document.findall("ovf:References/ovf:File", NS)
    assert file.get(f"{{{OVF}}}href") == "web-local-disk1.vmdk"
    assert int(file.get(f"{{{OVF}}}size")) == len(data["web-local-disk1.vmdk"])
    (ovf_disk,) = document.findall("ovf:DiskSection/ovf:Disk", NS)
    assert int(ovf_disk.get(f"{{{OVF}}}capacity")) == 64 * 2 ** 20
    assert 3 * 2 ** 20 <= int(ovf_disk.get(f"{{{OVF}}}populatedSize")) < 8 * 2 ** 20
    assert document.find("ovf:VirtualSystem/ovf:OperatingSystemSection", NS).get(f"{{{OVF}}}id") == "96"
    quantities = {item.findtext("rasd:ResourceType", namespaces=NS): item.findtext("rasd:VirtualQuantity", namespaces=NS)
                  for item in document.iterfind(".//ovf:Item", NS)}
    assert quantities["3"] == "2" and quantities["4"] == "768" and "6" in quantities and "10" in quantities

    extracted = tmp_path / "extracted.vmdk"
    extracted.write_bytes(data["web-local-disk1.vmdk"])
    assert qemu_compare(disk, extracted)
    assert list(artifact.path.parent.iterdir()) == [artifact.path]    # no temporary vmdk left beside it


def test_ova_is_byte_identical_and_honours_the_epoch(make_context):
    first = asyncio.run(Ova().run(OvfConfig(), make_context("a")))[0].path
    second = asyncio.run(Ova().run(OvfConfig(), make_context("b")))[0].path
    assert first.read_bytes() == second.read_bytes()
    other_epoch = asyncio.run(Ova().run(OvfConfig(), make_context("c", epoch=1_600_000_000)))[0].path
    assert {m.mtime for m in read_ova(other_epoch)[0]} == {1_600_000_000}


def test_ova_overrides_and_sata_and_uefi_still_validate(make_context, ovf_schema):
    import dataclasses
    context = make_context()
    context.machine = dataclasses.replace(context.machine, firmware="uefi", os_id="alpine")
    (artifact,) = asyncio.run(Ova().run(OvfConfig(name="appliance", cpus=4, memory=2048, controller="sata",
                                                  nic="VmxNet3"), context))
    members, data = read_ova(artifact.path)
    assert artifact.path.name == "appliance.ova" and members[0].name == "appliance.ovf"
    document = etree.fromstring(data["appliance.ovf"])
    assert ovf_schema.validate(document), ovf_schema.error_log
    text = data["appliance.ovf"].decode()
    assert "<rasd:VirtualQuantity>4<" in text and "<rasd:VirtualQuantity>2048<" in text
    assert "<rasd:ResourceType>20<" in text and "VmxNet3" in text and 'vmw:value="efi"' in text
    assert document.find("ovf:VirtualSystem/ovf:OperatingSystemSection", NS).get(f"{{{OVF}}}id") == "101"


def test_ovf_writes_three_files_with_a_matching_manifest(make_context, disk, ovf_schema):
    artifacts = asyncio.run(Ovf().run(OvfConfig(), make_context()))
    paths = {a.format: a.path for a in artifacts}
    assert sorted(p.name for p in paths.values()) == ["web-local-disk1.vmdk", "web-local.mf", "web-local.ovf"]
    lines = paths["ovf-manifest"].read_text().splitlines()
    assert lines == [f"SHA256({p.name})= {hashlib.sha256(p.read_bytes()).hexdigest()}"
                     for p in (paths["ovf"], paths["vmdk"])]
    assert ovf_schema.validate(etree.parse(str(paths["ovf"]))), ovf_schema.error_log
    assert qemu_compare(disk, paths["vmdk"])

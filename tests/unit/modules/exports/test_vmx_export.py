"""The vmx export with real qemu-img: a VMware VM folder whose .vmx names its disk, the disk holding the
build's, the same bytes from the same build, and nothing with the final name until it is whole."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from engine.artifacts.export import MachineShape
from engine.errors import BuildError
from modules.exports.vmx import Vmx, VmxConfig, guest_os, vmx_text

from .conftest import qemu_compare
from .test_appliance_exports import embedded_descriptor


def settings(text: str) -> dict[str, str]:
    pairs = (line.split(" = ", 1) for line in text.splitlines())
    return {key: value.strip('"') for key, value in pairs}


def test_a_folder_with_the_vmx_and_its_disk(make_context, disk):
    vmx, vmdk = asyncio.run(Vmx().run(VmxConfig(), make_context()))
    folder = vmx.path.parent
    assert folder.name == "web-local.vmwarevm" and sorted(p.name for p in folder.iterdir()) == \
        ["web-local.vmdk", "web-local.vmx"]
    assert (vmdk.format, vmdk.variant) == ("vmdk", "monolithicSparse") and qemu_compare(disk, vmdk.path)
    found = settings(vmx.path.read_text())
    assert found["scsi0:0.fileName"] == "web-local.vmdk" and found["scsi0.virtualDev"] == "lsilogic"
    assert (found["guestOS"], found["numvcpus"], found["memsize"]) == ("debian12-64", "2", "768")
    assert found["ethernet0.virtualDev"] == "e1000" and found["ethernet0.connectionType"] == "nat"
    assert "firmware" not in found and found["virtualHW.version"] == "13"
    descriptor = embedded_descriptor(vmdk.path)
    assert 'createType="monolithicSparse"' in descriptor and 'ddb.adapterType = "lsilogic"' in descriptor


def test_the_same_build_gives_the_same_bytes(make_context):
    first = asyncio.run(Vmx().run(VmxConfig(), make_context("one")))
    second = asyncio.run(Vmx().run(VmxConfig(), make_context("two")))
    assert [a.path.read_bytes() for a in first] == [b.path.read_bytes() for b in second]


def test_uefi_sata_vmxnet3_and_a_split_disk(make_context, disk):
    context = make_context(machine=MachineShape(name="web-local", cpus=1, memory_mib=512, firmware="uefi"))
    config = VmxConfig(name="appliance", controller="sata", nic="vmxnet3", subformat="twoGbMaxExtentSparse",
                       hardware_version=19, memory=2048)
    vmx, descriptor, *extents = asyncio.run(Vmx().run(config, context))
    found = settings(vmx.path.read_text())
    assert found["firmware"] == "efi" and found["sata0:0.fileName"] == "appliance.vmdk"
    assert "scsi0.present" not in found and found["pciBridge4.virtualDev"] == "pcieRootPort"
    assert (found["guestOS"], found["memsize"], found["virtualHW.version"]) == ("otherlinux-64", "2048", "19")
    assert extents and all(extent.format == "vmdk-extent" for extent in extents)
    assert 'createType="twoGbMaxExtentSparse"' in descriptor.path.read_text()
    assert qemu_compare(disk, descriptor.path)


def test_a_failed_export_leaves_no_folder_with_the_final_name(make_context, tmp_path):
    context = make_context(disk=tmp_path / "missing.qcow2")
    with pytest.raises(BuildError, match="qemu-img convert to vmdk"):
        asyncio.run(Vmx().run(VmxConfig(), context))
    assert not list(context.output_dir.iterdir())


@pytest.mark.parametrize("os_id, version, expected", [
    ("debian", "12", "debian12-64"), ("debian", "13", "debian12-64"), ("ubuntu", "24.04", "ubuntu-64"),
    ("rocky", "9.3", "rhel9-64"), ("alpine", "3.19", "otherlinux-64"), ("", "", "otherlinux-64")])
def test_the_guest_os_comes_from_the_guests_facts(os_id, version, expected):
    assert guest_os(MachineShape(name="m", os_id=os_id, os_version=version)) == expected


def test_values_are_quoted_as_vmware_reads_them():
    machine = MachineShape(name='my "web" | box')
    text = vmx_text(machine, dataclasses.replace(VmxConfig(), guest_os="ubuntu-64"), "disk.vmdk")
    assert 'displayName = "my |22web|22 |7C box"' in text


def test_a_second_export_replaces_the_folder_an_earlier_run_left(make_context):
    context = make_context()
    asyncio.run(Vmx().run(VmxConfig(), context))
    stale = context.output_dir / "web-local.vmwarevm" / "stale.nvram"
    stale.write_text("from an earlier run")
    vmx, _ = asyncio.run(Vmx().run(VmxConfig(), context))
    assert not stale.exists() and vmx.path.is_file()
    assert [p.name for p in context.output_dir.iterdir()] == ["web-local.vmwarevm"]

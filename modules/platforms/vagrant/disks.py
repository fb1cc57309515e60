"""The halted machine's disk, for the exports: where each provider keeps it, and in which format.

libvirt: the domain's first disk, a qcow2 volume whose backing file is the box image in the pool; the
exports read it through that chain (qemu-img convert), as they read the qemu platform's overlay, while the
domain still exists (it is destroyed after the exports, in the build's cleanup).

VirtualBox and VMware are written for, never run here (neither is installed on the machines recipe is
tested on): the Vagrantfile asks both for a full clone (linked_clone = false), so the disk is a whole
image; VirtualBox's is found with `VBoxManage showvminfo`, VMware's in the .vmx Vagrant recorded.
"""
from __future__ import annotations

import asyncio
import os
import re
import shlex
from pathlib import Path

from engine.errors import BuildError
from engine.process import run_tool
from modules.platforms.vagrant.libvirt import LibvirtFailure, domain_disk, machine_id

DISK_SUFFIXES = {".vmdk": "vmdk", ".vdi": "vdi", ".vhd": "vpc", ".vhdx": "vhdx", ".qcow2": "qcow2", ".img": "raw"}


async def machine_disk(provider: str, project: Path, uri: str) -> tuple[Path, str]:
    ref = machine_id(project, provider)
    if ref is None:
        raise BuildError(f"Vagrant recorded no {provider} machine in {project / '.vagrant'}",
                         hint="did `vagrant up` create it? see the vagrant up lines in build.log")
    if provider == "libvirt":
        try:
            path, disk_format = await asyncio.to_thread(domain_disk, uri, ref)
        except LibvirtFailure as exc:
            raise BuildError(f"cannot find the disk of the libvirt domain {ref}: {exc}") from None
    elif provider == "virtualbox":
        path, disk_format = await _virtualbox_disk(ref)
    else:
        path, disk_format = _vmware_disk(Path(ref))
    if not os.access(path, os.R_OK):
        raise BuildError(f"the machine's disk {path} cannot be read by this user",
                         hint="run recipe as a user that may read the provider's disks (libvirt's: root, or "
                              "a member of the group that owns the storage pool's folder)")
    return path, disk_format


async def _virtualbox_disk(uuid: str) -> tuple[Path, str]:
    """The first hard disk attached to the VM: `"<controller>-<port>-<device>"="<path>"` in showvminfo."""
    info = await run_tool("VBoxManage", "showvminfo", uuid, "--machinereadable", what="VBoxManage showvminfo")
    for line in info.splitlines():
        match = re.match(r'^"[^"]+-\d+-\d+"="(.+)"$', line.strip())
        if match and Path(match.group(1)).suffix.lower() in DISK_SUFFIXES:
            path = Path(match.group(1))
            return path, DISK_SUFFIXES[path.suffix.lower()]
    raise BuildError(f"VirtualBox shows no disk for the VM {uuid}")


def _vmware_disk(vmx: Path) -> tuple[Path, str]:
    """The first disk of the .vmx (scsi0:0.fileName = "disk.vmdk"), relative to the .vmx's folder."""
    try:
        text = vmx.read_text(errors="replace")
    except OSError as exc:
        raise BuildError(f"cannot read the VMware machine's {vmx}: {exc}") from None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if re.fullmatch(r"\s*(scsi|sata|nvme|ide)\d+:\d+\.fileName\s*", key):
            name = shlex.split(value.strip())[0] if value.strip() else ""
            if name.lower().endswith(".vmdk"):
                return (vmx.parent / name).resolve(), "vmdk"
    raise BuildError(f"the VMware machine's {vmx} names no .vmdk disk")

"""vmx: the build as a VMware virtual machine folder, which VMware Workstation, Fusion and ESXi open as it is.

  exports:
    - vmx: {}                       # <name>.vmwarevm/<name>.vmx and <name>.vmdk (monolithicSparse)
    - vmx: {controller: pvscsi, nic: vmxnet3, subformat: twoGbMaxExtentSparse, hardware_version: 19}

The .vmx is written in a fixed order from the machine the build had (cpus, memory, firmware: `efi` for a
UEFI build) and the guest's facts (guestOS), so the same build always gives the same bytes, as the disk's
descriptor does (modules.exports.vmdk). The folder gets its final name only once both files are whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.artifacts.export import Artifact, ExportContext, Exporter, MachineShape
from engine.process import atomic_path
from modules.exports.vmdk import SPLIT, convert_to_vmdk

SUBFORMATS = ("monolithicSparse", SPLIT)
CONTROLLERS = {"scsi": ("scsi", "lsilogic"), "pvscsi": ("scsi", "pvscsi"), "sata": ("sata", None)}
NICS = ("e1000", "e1000e", "vmxnet3")
CONNECTIONS = ("nat", "bridged", "hostonly")
# VMware's guestOS names, by os-release ID: (name, or a pattern taking the major version, newest it knows)
GUEST_OS = {"debian": ("debian{}-64", 12), "ubuntu": ("ubuntu-64", None), "rhel": ("rhel{}-64", 9),
            "centos": ("rhel{}-64", 9), "rocky": ("rhel{}-64", 9), "almalinux": ("rhel{}-64", 9),
            "fedora": ("fedora-64", None), "sles": ("sles{}-64", 15), "opensuse-leap": ("opensuse-64", None)}
OTHER_LINUX = "otherlinux-64"
# PCIe root ports, as VMware writes them into a new VM: an e1000e or vmxnet3 NIC has no slot without them
PCIE_BRIDGES = [("pciBridge0.present", "TRUE")] + [
    (f"pciBridge{n}.{key}", value) for n in range(4, 8)
    for key, value in (("present", "TRUE"), ("virtualDev", "pcieRootPort"), ("functions", "8"))]


@dataclass(frozen=True)
class VmxConfig:
    name: str | None = None
    cpus: int | None = None
    memory: int | None = None
    controller: str = "scsi"
    nic: str = "e1000"
    network: str = "nat"
    hardware_version: int = 13       # virtualHW.version: 13 is ESXi 6.5 and Workstation 14, as the ova's vmx-13
    guest_os: str | None = None      # VMware's guestOS name instead of the one from the guest's facts
    subformat: str = "monolithicSparse"

    def machine(self, ctx: ExportContext) -> MachineShape:
        return ctx.machine_as(self.name, self.cpus, self.memory)


class Vmx(Exporter, name="vmx"):
    description = "a VMware VM folder: <name>.vmx and its disk, a monolithicSparse (or split) vmdk"
    schema = {vol.Optional("name", default=None): vol.Any(None, str),
              vol.Optional("cpus", default=None): vol.Any(None, vol.All(int, vol.Range(min=1, max=128))),
              vol.Optional("memory", default=None): vol.Any(None, vol.All(int, vol.Range(min=4))),
              vol.Optional("controller", default="scsi"): vol.In(list(CONTROLLERS)),
              vol.Optional("nic", default="e1000"): vol.In(NICS),
              vol.Optional("network", default="nat"): vol.In(CONNECTIONS),
              vol.Optional("hardware_version", default=13): vol.All(int, vol.Range(min=4, max=30)),
              vol.Optional("guest_os", default=None): vol.Any(None, vol.Match(r"^[A-Za-z0-9_-]+$")),
              vol.Optional("subformat", default="monolithicSparse"): vol.In(SUBFORMATS)}
    Config = VmxConfig
    produces = frozenset({"vmx", "vmdk"})

    async def run(self, config: VmxConfig, ctx: ExportContext) -> list[Artifact]:
        machine = config.machine(ctx)
        folder = ctx.output_dir / f"{machine.name}.vmwarevm"
        disk_name = f"{machine.name}.vmdk"
        bus, _ = CONTROLLERS[config.controller]
        with atomic_path(folder) as temporary:
            temporary.mkdir()
            await convert_to_vmdk(ctx.disk, ctx.disk_format, temporary / disk_name, disk_name, config.subformat,
                                  adapter_type="lsilogic" if bus == "scsi" else "ide")
            (temporary / f"{machine.name}.vmx").write_text(vmx_text(machine, config, disk_name))
        extents = sorted(path for path in folder.glob(f"{machine.name}-s[0-9][0-9][0-9].vmdk"))
        return [Artifact(folder / f"{machine.name}.vmx", "vmx"),
                Artifact(folder / disk_name, "vmdk", variant=config.subformat),
                *(Artifact(extent, "vmdk-extent") for extent in extents)]


def guest_os(machine: MachineShape) -> str:
    """VMware's name for the guest: from its os-release ID and major version, the newest VMware knows for
    a newer release, `otherlinux-64` for a distribution it has no name for."""
    found = GUEST_OS.get(machine.os_id)
    if not found:
        return OTHER_LINUX
    pattern, newest = found
    if newest is None:
        return pattern
    major = machine.os_version.split(".")[0]
    return pattern.format(min(int(major), newest)) if major.isdigit() else OTHER_LINUX


def vmx_text(machine: MachineShape, config: VmxConfig, disk_name: str) -> str:
    bus, device = CONTROLLERS[config.controller]
    settings: list[tuple[str, str]] = [
        (".encoding", "UTF-8"), ("config.version", "8"), ("virtualHW.version", str(config.hardware_version)),
        ("displayName", machine.name), ("guestOS", config.guest_os or guest_os(machine)),
        ("numvcpus", str(machine.cpus)), ("memsize", str(machine.memory_mib))]
    if machine.firmware == "uefi":
        settings.append(("firmware", "efi"))
    settings += PCIE_BRIDGES
    settings.append((f"{bus}0.present", "TRUE"))
    if device:
        settings.append((f"{bus}0.virtualDev", device))
    settings += [(f"{bus}0:0.present", "TRUE"), (f"{bus}0:0.fileName", disk_name),
                 (f"{bus}0:0.deviceType", "scsi-hardDisk" if bus == "scsi" else "disk"),
                 ("ethernet0.present", "TRUE"), ("ethernet0.virtualDev", config.nic),
                 ("ethernet0.connectionType", config.network), ("ethernet0.addressType", "generated"),
                 ("floppy0.present", "FALSE")]
    return "".join(f'{key} = "{_escaped(value)}"\n' for key, value in settings)


def _escaped(value: str) -> str:
    """A .vmx value is a double-quoted string: its quotes and bars are written as |22 and |7C."""
    return value.replace("|", "|7C").replace('"', "|22")

"""The OVF 1.0 descriptor and its .mf manifest, shared by the ovf, ova and vagrant (virtualbox) exports.

The DMTF schema is strict: every section has an Info, RASD children come in
alphabetical order, and vendor extensions (VirtualBox's vbox:Machine) are
not allowed, so none are written; VMware's vmw:Config, which the schema
admits, carries the UEFI firmware. The XML is written in a fixed order with no
timestamps, so the same machine and disk always give the same bytes.
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Sequence

import voluptuous as vol

from engine.artifacts.export import MachineShape

OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
VMW = "http://www.vmware.com/schema/ovf"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"

# The order the CIM RASD schema requires of an Item's children
RASD_ORDER = ("Address", "AddressOnParent", "AllocationUnits", "AutomaticAllocation", "AutomaticDeallocation",
              "Caption", "Connection", "ConsumerVisibility", "Description", "ElementName", "HostResource",
              "InstanceID", "Limit", "MappingBehavior", "OtherResourceType", "Parent", "PoolID", "Reservation",
              "ResourceSubType", "ResourceType", "VirtualQuantity", "VirtualQuantityUnits", "Weight")

# CIM_OperatingSystem.OsType of 64-bit guests, by os-release ID
OS_TYPES = {"debian": (96, "Debian 64-Bit"), "ubuntu": (94, "Ubuntu 64-Bit"), "centos": (107, "CentOS 64-Bit"),
            "rhel": (80, "RedHat Enterprise Linux 64-Bit"), "fedora": (101, "Linux 2.6.x 64-Bit"),
            "sles": (85, "SLES 64-Bit"), "opensuse": (36, "LINUX")}
OTHER_LINUX = (101, "Linux 2.6.x 64-Bit")

CONTROLLERS = {"scsi": ("SCSI Controller", "6", "lsilogic"), "sata": ("SATA Controller", "20", "AHCI")}
NICS = ("E1000", "VmxNet3", "PCNet32")


@dataclass(frozen=True)
class OvfDisk:
    file_name: str          # the disk file, as the descriptor's References name it
    file_size: int          # bytes of that file
    capacity: int           # the virtual disk's size, bytes
    populated_size: int     # bytes of data in it


@dataclass(frozen=True)
class OvfHardware:
    controller: str = "scsi"
    nic: str = "E1000"
    network: str = "nat"
    system_type: str = "vmx-13"       # VirtualSystemType; ESXi 6.5+ takes vmx-13, and refuses virtualbox-2.2
    os_type: int | None = None        # a CIM OsType id instead of the one guessed from the guest's os-release


# Options of the exports that write a descriptor (ovf, ova): the machine is the source's unless overridden
HARDWARE_SCHEMA = {
    vol.Optional("cpus", default=None): vol.Any(None, vol.All(int, vol.Range(min=1, max=128))),
    vol.Optional("memory", default=None): vol.Any(None, vol.All(int, vol.Range(min=4))),
    vol.Optional("controller", default="scsi"): vol.In(list(CONTROLLERS)),
    vol.Optional("nic", default="E1000"): vol.In(NICS),
    vol.Optional("network", default="nat"): str,
    vol.Optional("system_type", default="vmx-13"): str,
    vol.Optional("os_type", default=None): vol.Any(None, vol.All(int, vol.Range(min=0, max=65535))),
}


def os_type(machine: MachineShape) -> tuple[int, str]:
    return OS_TYPES.get(machine.os_id, OTHER_LINUX) if machine.os_id else OTHER_LINUX


def descriptor(machine: MachineShape, disk: OvfDisk, hardware: OvfHardware = OvfHardware()) -> bytes:
    for prefix, uri in (("ovf", OVF), ("rasd", RASD), ("vssd", VSSD), ("vmw", VMW), ("xsi", XSI)):
        ET.register_namespace(prefix, uri)
    envelope = ET.Element(f"{{{OVF}}}Envelope", {f"{{{OVF}}}version": "1.0"})
    references = ET.SubElement(envelope, f"{{{OVF}}}References")
    ET.SubElement(references, f"{{{OVF}}}File", _ovf(href=disk.file_name, id="file1", size=disk.file_size))

    disks = _section(envelope, "DiskSection", "The virtual disks")
    ET.SubElement(disks, f"{{{OVF}}}Disk", _ovf(capacity=disk.capacity, capacityAllocationUnits="byte",
                                                diskId="vmdisk1", fileRef="file1", format=STREAM_OPTIMIZED,
                                                populatedSize=disk.populated_size))
    networks = _section(envelope, "NetworkSection", "The logical networks")
    network = ET.SubElement(networks, f"{{{OVF}}}Network", _ovf(name=hardware.network))
    _text(network, f"{{{OVF}}}Description", f"The {hardware.network} network")

    system = ET.SubElement(envelope, f"{{{OVF}}}VirtualSystem", _ovf(id=machine.name))
    _text(system, f"{{{OVF}}}Info", "A virtual machine")
    _text(system, f"{{{OVF}}}Name", machine.name)
    os_id, os_description = os_type(machine)
    if hardware.os_type is not None:
        os_id, os_description = hardware.os_type, machine.os_name or f"CIM OsType {hardware.os_type}"
    os_section = _section(system, "OperatingSystemSection", "The guest operating system", id=os_id)
    _text(os_section, f"{{{OVF}}}Description", machine.os_name or os_description)
    _hardware(system, machine, hardware)
    ET.indent(envelope, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(envelope, encoding="utf-8",
                                                                      xml_declaration=False) + b"\n"


def _hardware(system: ET.Element, machine: MachineShape, hardware: OvfHardware) -> None:
    section = _section(system, "VirtualHardwareSection", "Virtual hardware requirements")
    vssd = ET.SubElement(section, f"{{{OVF}}}System")
    for name, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", "0"),
                        ("VirtualSystemIdentifier", machine.name), ("VirtualSystemType", hardware.system_type)):
        _text(vssd, f"{{{VSSD}}}{name}", value)
    controller_name, controller_type, controller_subtype = CONTROLLERS[hardware.controller]
    _item(section, ElementName=f"{machine.cpus} virtual CPU(s)", InstanceID="1", ResourceType="3",
          VirtualQuantity=machine.cpus, AllocationUnits="hertz * 10^6", Description="Number of virtual CPUs")
    _item(section, ElementName=f"{machine.memory_mib} MB of memory", InstanceID="2", ResourceType="4",
          VirtualQuantity=machine.memory_mib, AllocationUnits="byte * 2^20", Description="Memory size")
    _item(section, ElementName=controller_name, InstanceID="3", ResourceType=controller_type,
          ResourceSubType=controller_subtype, Address="0", Description=controller_name)
    _item(section, ElementName="disk1", InstanceID="4", ResourceType="17", Parent="3", AddressOnParent="0",
          HostResource="ovf:/disk/vmdisk1")
    _item(section, ElementName="ethernet0", InstanceID="5", ResourceType="10", ResourceSubType=hardware.nic,
          Connection=hardware.network, AutomaticAllocation="true",
          Description=f"{hardware.nic} ethernet adapter on {hardware.network}")
    if machine.firmware == "uefi":
        ET.SubElement(section, f"{{{VMW}}}Config", {f"{{{OVF}}}required": "false", f"{{{VMW}}}key": "firmware",
                                                    f"{{{VMW}}}value": "efi"})


def _item(section: ET.Element, **fields: object) -> None:
    item = ET.SubElement(section, f"{{{OVF}}}Item")
    for name in RASD_ORDER:
        if fields.get(name) is not None:
            _text(item, f"{{{RASD}}}{name}", str(fields[name]))


def _section(parent: ET.Element, name: str, info: str, **attributes: object) -> ET.Element:
    section = ET.SubElement(parent, f"{{{OVF}}}{name}", _ovf(**attributes))
    _text(section, f"{{{OVF}}}Info", info)
    return section


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _ovf(**attributes: object) -> dict[str, str]:
    return {f"{{{OVF}}}{name}": str(value) for name, value in attributes.items()}


def manifest(files: Sequence[tuple[str, str]]) -> bytes:
    """The .mf: one `SHA256(name)= hex` line per (name, sha256) in order."""
    return "".join(f"SHA256({name})= {sha256}\n" for name, sha256 in files).encode()


def manifest_size(names: Sequence[str]) -> int:
    return len(manifest([(name, "0" * 64) for name in names]))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

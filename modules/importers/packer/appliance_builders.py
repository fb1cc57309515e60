"""VirtualBox, VMware and Vagrant builders: the machine is built on QEMU, then exported in their format.

recipe has no VirtualBox or VMware platform; what Packer's builders leave
behind (an OVF or OVA, a VMDK, a Vagrant box) is what an export writes, and
a note on the source says so. A *-iso builder's installer (iso_url,
boot_command, http_directory) runs under QEMU as an installer base, its
boot_command typed as it was (the key names are the same in every builder).
"""
from __future__ import annotations

from typing import Any, Callable

from modules.importers.packer.builder_rules import (BASE_OPTIONS, NOT_AN_INSTALLER, QUIET, SEED, SSH, base,
                                                     communicator, firmware, packer_size)
from modules.importers.packer.installer_rules import installs, map_installer
from modules.importers.packer.mapping import (Assembly, Rule, apply, integer, leftover, note, only_if, seconds, skip,
                                              to)
from modules.importers.packer.template import Plugin, Value


def _guest_os(assembly: Assembly, name: str, value: Value) -> None:
    assembly.note(f"{name}: the OVF descriptor names the guest's system from its facts (os_type: sets it)")


HYPERVISOR_ONLY = "recipe builds with QEMU: there is no VirtualBox or VMware to configure during the build"
APPLIANCE: dict[str, Rule] = {
    **SSH, **NOT_AN_INSTALLER, **SEED, **QUIET,
    "cpus": to("cpus", integer),
    "memory": to("memory", integer),
    "disk_size": to("disk_size", packer_size),
    "firmware": firmware,
    "guest_os_type": _guest_os,
    "shutdown_command": note("recipe shuts the guest down itself (ACPI), then waits shutdown_timeout"),
    "shutdown_timeout": to("shutdown_timeout", seconds),
    "output_directory": note("artifacts go to --output-dir/<recipe>-<source>/"),
    "ssh_port": only_if(22, "recipe connects to the guest's port 22 through QEMU's port forward"),
    "ssh_host_port_min": note("recipe forwards a free port of its choosing"),
    "ssh_host_port_max": note("recipe forwards a free port of its choosing"),
    "hard_drive_interface": note("the OVF's disk controller is the ova/ovf export's controller: option"),
    "nic_type": note("the OVF's NIC is the ova/ovf export's nic: option"),
    "keep_registered": note(HYPERVISOR_ONLY), "skip_export": note(HYPERVISOR_ONLY),
    "virtualbox_version_file": note(HYPERVISOR_ONLY), "guest_additions_mode": note(HYPERVISOR_ONLY),
    "gfx_controller": note(HYPERVISOR_ONLY), "gfx_vram_size": note(HYPERVISOR_ONLY),
    "chipset": note(HYPERVISOR_ONLY), "rtc_time_base": note(HYPERVISOR_ONLY), "audio_controller": note(HYPERVISOR_ONLY),
    "usb": note(HYPERVISOR_ONLY), "version": note(HYPERVISOR_ONLY), "tools_upload_flavor": note(HYPERVISOR_ONLY),
    "vboxmanage": leftover(HYPERVISOR_ONLY), "vboxmanage_post": leftover(HYPERVISOR_ONLY),
    "vmx_data": leftover(HYPERVISOR_ONLY), "vmx_data_post": leftover(HYPERVISOR_ONLY),
    "guest_additions_path": leftover("recipe builds with QEMU: no Guest Additions ISO is uploaded"),
    "guest_additions_url": leftover("recipe builds with QEMU: no Guest Additions ISO is uploaded"),
    "guest_additions_sha256": leftover("recipe builds with QEMU: no Guest Additions ISO is uploaded"),
    "export_opts": leftover("the ova/ovf export takes name, cpus, memory, controller, nic, network, os_type"),
}
DEFAULT_FORMAT = {"virtualbox": "ovf", "vmware": "vmdk"}
EXPORT_OPTIONS = ("format", "vm_name", "disk_adapter_type")
VMDK_ADAPTERS = ("lsilogic", "ide", "buslogic")


def _appliance_export(kind: str, plugin: Plugin, assembly: Assembly) -> tuple[str, dict[str, Any]]:
    """The export writing what Packer's builder would have (format), named as its vm_name."""
    export, options = DEFAULT_FORMAT[kind], {}
    chosen = plugin.settings.get("format")
    if chosen is not None and chosen.translated:
        if chosen.data in ("ova", "ovf"):
            export = chosen.data
        elif not (chosen.data == "vmx" and kind == "vmware"):
            assembly.leftover("format", chosen, "recipe writes OVF, OVA or VMDK appliances")
    name = plugin.settings.get("vm_name")
    if name is not None and name.translated:
        options["name"] = name.data
    adapter = plugin.settings.get("disk_adapter_type")
    if adapter is not None and export == "vmdk" and adapter.data in VMDK_ADAPTERS:
        options["adapter_type"] = adapter.data
    elif adapter is not None:
        assembly.note("disk_adapter_type: the appliance's disk controller is the export's own (scsi)")
    return export, options


def appliance(kind: str) -> Callable[[Plugin, Assembly], None]:
    """virtualbox-* and vmware-*: the same machine built on QEMU, then the appliance format Packer's would write."""
    def build(plugin: Plugin, assembly: Assembly) -> None:
        assembly.set("platform", "qemu")
        skipped = (*BASE_OPTIONS, "source_path", *EXPORT_OPTIONS)
        if installs(plugin):       # virtualbox-iso, vmware-iso: the same installer, run under QEMU
            map_installer(plugin, assembly, APPLIANCE, skip=skipped)
        else:
            base(plugin, assembly, "recipe starts from a disk image (qcow2, raw, vmdk) or debootstrap: take the disk "
                                   "out of the appliance and give base: {path: <the .vmdk>}")
            apply(APPLIANCE, assembly, skip=skipped)
        export, options = _appliance_export(kind, plugin, assembly)
        what = "VirtualBox" if kind == "virtualbox" else "VMware"
        assembly.export(export, options, f"Packer's {plugin.type} builder: recipe builds the machine with QEMU and "
                                         f"exports the {export.upper()} {what} imports")
    return build


VAGRANT_PROVIDERS = {"virtualbox": "virtualbox", "libvirt": "libvirt"}
VAGRANT: dict[str, Rule] = {
    **SSH,
    "provider": skip(),
    "box_name": skip(),
    "box_version": note("the base is not the box (see source_path)"),
    "add_force": skip(), "add_clean": skip(), "skip_add": skip(), "skip_package": skip(), "teardown_method": skip(),
    "output_dir": note("artifacts go to --output-dir/<recipe>-<source>/"),
    "template": leftover("the box's Vagrantfile is recipe's own (it names the base MAC and, for UEFI, OVMF)"),
    "output_vagrantfile": leftover("the box's Vagrantfile is recipe's own"),
    "communicator": communicator,
}


def vagrant(plugin: Plugin, assembly: Assembly) -> None:
    """Packer's vagrant builder boots a box and packages a new one: recipe boots its base with QEMU and the
    vagrant export packages the box."""
    assembly.set("platform", "qemu")
    base(plugin, assembly, "recipe cannot boot a Vagrant box as its base: give base: {url: <the box's cloud "
                            "image>, checksum: ...}, or keep the Debian made by debootstrap")
    apply(VAGRANT, assembly, skip=(*BASE_OPTIONS, "source_path"))
    provider = plugin.settings.get("provider")
    name = str(provider.data) if provider and provider.translated else "virtualbox"
    options = {"provider": VAGRANT_PROVIDERS.get(name, "libvirt")}
    if name not in VAGRANT_PROVIDERS:
        assembly.leftover("provider", provider, "recipe's Vagrant boxes are for libvirt or virtualbox")
    assembly.export("vagrant", options, "Packer's vagrant builder: recipe builds the machine with QEMU and the "
                                        "vagrant export packages the box")

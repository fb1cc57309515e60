"""Packer's qemu builder as recipe's qemu platform: the disk image it boots (or the installer it runs, see
installer_rules), cpus, memory, disk, firmware."""
from __future__ import annotations

from modules.importers.packer.builder_rules import (BASE_OPTIONS, NOT_AN_INSTALLER, QUIET, SEED, SSH, base,
                                                     firmware, packer_size)
from modules.importers.packer.installer_rules import installs, map_installer
from modules.importers.packer.mapping import Assembly, Rule, apply, integer, leftover, note, only_if, seconds, to
from modules.importers.packer.template import Plugin, Value


def _qemu_args(assembly: Assembly, name: str, value: Value) -> None:
    """qemuargs [["-m", "2048"], ...]: recipe's qemu_args are one flat list, added to its own command line."""
    args = [str(word) for group in value.data for word in (group if isinstance(group, list) else [group])]
    assembly.set("qemu_args", assembly.options.get("qemu_args", []) + args)
    assembly.note("qemuargs: Packer's replace its own QEMU arguments; recipe adds these to its own")


def _cpu_model(assembly: Assembly, name: str, value: Value) -> None:
    assembly.set("qemu_args", assembly.options.get("qemu_args", []) + ["-cpu", str(value.data)])


def _accelerator(assembly: Assembly, name: str, value: Value) -> None:
    if value.data == "tcg":
        assembly.set("accelerator", "tcg")
    elif value.data == "kvm":
        assembly.note("accelerator: recipe uses KVM when a probe guest really runs under it, else TCG")
    else:
        assembly.leftover(name, value, "recipe runs QEMU with KVM or TCG")


def _disk_format(assembly: Assembly, name: str, value: Value) -> None:
    if value.data == "raw":
        assembly.export("raw", {}, "Packer's qemu builder wrote a raw disk (format = \"raw\")")
    elif value.data != "qcow2":
        assembly.leftover(name, value, "recipe exports qcow2, raw or vmdk disks")


def _disk_compression(assembly: Assembly, name: str, value: Value) -> None:
    if value.data is True:
        assembly.export("qcow2", {"compress": True}, "Packer's disk_compression: a compressed qcow2")


def _disk_interface(assembly: Assembly, name: str, value: Value) -> None:
    if not str(value.data).startswith("virtio"):
        assembly.note(f"{name}: recipe attaches the disk as virtio (Packer's was {value.data})")


QEMU: dict[str, Rule] = {
    **SSH, **NOT_AN_INSTALLER, **SEED, **QUIET,
    "cpus": to("cpus", integer),
    "memory": to("memory", integer),
    "disk_size": to("disk_size", packer_size),
    "firmware": firmware,
    "efi_boot": firmware,
    "efi_firmware_code": note("recipe boots UEFI with the host's OVMF"),
    "efi_firmware_vars": note("recipe boots UEFI with the host's OVMF"),
    "qemuargs": _qemu_args,
    "cpu_model": _cpu_model,
    "accelerator": _accelerator,
    "format": _disk_format,
    "disk_compression": _disk_compression,
    "use_backing_file": note("recipe always boots an overlay over the base image, which it never changes"),
    "skip_compaction": note("recipe's exports write only the disk's used clusters"),
    "skip_resize_disk": note("recipe grows the disk to disk_size; cloud-init grows the file system"),
    "disk_interface": _disk_interface,
    "net_device": note("recipe's guest NIC is virtio-net on QEMU's user network"),
    "machine_type": note("recipe picks QEMU's machine type (pc or q35 with UEFI)"),
    "disk_cache": note("recipe picks the disk cache mode"),
    "disk_discard": note("recipe's exports drop unused clusters"),
    "disk_detect_zeroes": note("recipe's exports drop zeroed clusters"),
    "cores": note("the guest gets cpus vCPUs"), "sockets": note("the guest gets cpus vCPUs"),
    "threads": note("the guest gets cpus vCPUs"),
    "qemu_binary": leftover("recipe runs qemu-system-x86_64"),
    "output_directory": note("artifacts go to --output-dir/<recipe>-<source>/"),
    "vm_name": note("exports name their files <recipe>-<source> unless given name:"),
    "shutdown_command": note("recipe shuts the guest down itself (ACPI), then waits shutdown_timeout"),
    "shutdown_timeout": to("shutdown_timeout", seconds),
    "ssh_port": only_if(22, "recipe connects to the guest's port 22 through QEMU's port forward"),
    "ssh_host_port_min": note("recipe forwards a free port of its choosing"),
    "ssh_host_port_max": note("recipe forwards a free port of its choosing"),
    "host_port_min": note("recipe forwards a free port of its choosing"),
    "host_port_max": note("recipe forwards a free port of its choosing"),
    "iso_target_path": note("recipe caches downloaded bases in ~/.cache/recipe/images"),
    "iso_target_extension": note("recipe caches downloaded bases in ~/.cache/recipe/images"),
    "iso_skip_cache": note("recipe caches downloaded bases in ~/.cache/recipe/images"),
    "vtpm": leftover("recipe's guests have no TPM"),
    "use_tpm1": leftover("recipe's guests have no TPM"),
}


def qemu(plugin: Plugin, assembly: Assembly) -> None:
    assembly.set("platform", "qemu")
    if installs(plugin):
        map_installer(plugin, assembly, QEMU, skip=BASE_OPTIONS)
        return
    base(plugin, assembly)
    apply(QEMU, assembly, skip=BASE_OPTIONS)

"""Packer builders (HCL2 sources) as recipe sources.

qemu becomes the qemu platform, amazon-ebs the amazon platform and null the
ssh platform. VirtualBox, VMware and Vagrant have no platform of their own in
recipe: their builds run on QEMU, and the export that writes their format (an
OVF or OVA, a VMDK, a Vagrant box) follows, with a note saying so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from modules.importers.packer.draft import Comment, Part
from modules.importers.packer.expressions import Untranslatable
from modules.importers.packer.files import PathMapper
from modules.importers.packer.mapping import (Assembly, Rule, apply, leftover, note, only_if, path_of, seconds, skip,
                                              to, to_path)
from modules.importers.packer.template import Plugin, Value

WHOLE_EXPRESSION = re.compile(r"^\{\{ (.*) \}\}$")
PACKER_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)
GOOD_CHECKSUMS = ("sha256", "sha512")
INSTALLER_WHY = ("recipe types into no installer: a build starts from a cloud image, or from Debian made by "
                 "debootstrap (the base here); to keep another system, give base: {url: <its cloud image>, "
                 "checksum: ...}")
SEED_WHY = ("recipe writes its own cloud-init seed (the build's key and ssh user); put other first-boot settings "
            "into tasks")
WINDOWS_WHY = "recipe reaches guests over SSH with a POSIX shell: Windows guests (WinRM) are not supported"
CREDENTIALS_WHY = ("recipe reads AWS credentials as the AWS CLI does (environment, ~/.aws profile, instance role): "
                   "give them there, never in the recipe")


@dataclass(frozen=True)
class MappedSource:
    name: str
    part: Part                        # the source, keyed by name
    exports: tuple[Part, ...]         # what the builder itself makes, as exports
    has_disk: bool                    # an image on this machine (qemu), which disk exports apply to


# -- sizes, checksums and bases ----------------------------------------------------------------

def packer_size(data: Any) -> str:
    """Packer's disk_size: a plain number is megabytes ("10G", "20480M" or 20480) as recipe's "10G"/"20480M"."""
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return f"{int(data)}M"
    text = str(data)
    whole = WHOLE_EXPRESSION.match(text)
    if whole:     # from a variable: the same conversion, when the recipe is rendered
        value = f"({whole.group(1)})"
        return f"{{{{ ({value} | string) ~ 'M' if ({value} | string) is match('[0-9]+$') else {value} }}}}"
    if "{{" in text:
        raise Untranslatable("a size made of text and variables: write disk_size with its unit (e.g. 20G)")
    match = PACKER_SIZE.match(text.strip())
    if not match:
        raise Untranslatable(f"{text!r} is not a disk size")
    return f"{match.group(1)}{(match.group(2) or 'M').upper()}"


def checksum(settings: dict[str, Value]) -> str | None:
    """iso_checksum ("sha256:<hex>", "file:<url>", or <hex> with the old iso_checksum_type) in recipe's form;
    None when recipe cannot verify it."""
    value = settings.get("iso_checksum")
    text = str(value.data) if value and value.translated else ""
    kind = settings.get("iso_checksum_type")
    if kind and kind.translated and ":" not in text:
        text = f"{kind.data}:{text}"
    algorithm = text.split(":", 1)[0].lower()
    if algorithm == "file" or (algorithm in GOOD_CHECKSUMS and ":" in text) or "{{" in text:
        return text
    return None


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def disk_image_base(settings: dict[str, Value], paths: PathMapper, assembly: Assembly) -> dict[str, Any] | None:
    """base: of a build that boots iso_url as its disk (disk_image = true): a path, or a url with its checksum."""
    value = settings.get("iso_url") or settings.get("iso_urls")
    if value is None or not value.translated:
        return None
    url = value.data[0] if isinstance(value.data, list) else value.data
    if isinstance(value.data, list) and len(value.data) > 1:
        assembly.note("iso_urls: recipe downloads from the first url; the others were Packer's mirrors")
    url = str(url)
    if _is_local(url) and "{{" not in url:
        assembly.note("the base is a file on this machine: recipe reads it as it is, without a checksum")
        return {"path": paths.local(url.removeprefix("file://"))}
    found = checksum(settings)
    if found is None:
        where = settings.get("iso_checksum") or value
        assembly.leftover("iso_checksum", where, "recipe verifies a downloaded base with sha256:, sha512: or "
                                                 "file:<url of the checksum list>; give one of those")
        return {"url": url}
    return {"url": url, "checksum": found}


# -- qemu ------------------------------------------------------------------------------------------

def _qemu_args(assembly: Assembly, name: str, value: Value) -> None:
    """qemuargs [["-m", "2048"], ...]: recipe's qemu_args are one flat list, added to its own command line."""
    args = [str(word) for group in value.data for word in (group if isinstance(group, list) else [group])]
    assembly.set("qemu_args", assembly.options.get("qemu_args", []) + args)
    assembly.note("qemuargs: Packer's replace its own QEMU arguments; recipe adds these to its own")


def _cpu_model(assembly: Assembly, name: str, value: Value) -> None:
    assembly.set("qemu_args", assembly.options.get("qemu_args", []) + ["-cpu", str(value.data)])


def _firmware(assembly: Assembly, name: str, value: Value) -> None:
    if value.data in (True, "true") or (isinstance(value.data, str) and re.search(r"ovmf|efi", value.data, re.I)):
        assembly.set("firmware", "uefi")
        if isinstance(value.data, str):
            assembly.note(f"{name}: recipe boots UEFI with the host's OVMF")


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


def _communicator(assembly: Assembly, name: str, value: Value) -> None:
    if value.data == "winrm":
        assembly.leftover(name, value, WINDOWS_WHY)
    elif value.data != "ssh":
        assembly.leftover(name, value, "recipe runs every task over SSH; a build without a connection has no tasks")


def _disk_interface(assembly: Assembly, name: str, value: Value) -> None:
    if not str(value.data).startswith("virtio"):
        assembly.note(f"{name}: recipe attaches the disk as virtio (Packer's was {value.data})")


SSH: dict[str, Rule] = {
    "communicator": _communicator,
    "ssh_username": to("ssh.user"),
    "ssh_password": to("ssh.password"),
    "ssh_private_key_file": to_path("ssh.private_key_file"),
    "ssh_timeout": to("ssh.connect_timeout", seconds),
    "ssh_wait_timeout": to("ssh.connect_timeout", seconds),
    "ssh_handshake_attempts": note("recipe retries the connection until connect_timeout"),
    "ssh_pty": skip(),
    "ssh_clear_authorized_keys": note("the sysprep task removes the build's key (and others') from the image"),
    "ssh_agent_auth": leftover("recipe logs in with a key it makes for the build, or ssh.private_key_file"),
    "pause_before_connecting": note("recipe connects as soon as SSH answers"),
    **{f"winrm_{key}": leftover(WINDOWS_WHY) for key in ("username", "password", "timeout", "use_ssl", "insecure",
                                                           "use_ntlm", "port", "host", "transport")},
}

NO_INSTALLER_WHY = ("recipe types into no installer and serves no files over HTTP or floppy: a build boots its base "
                    "image (a cloud image, or Debian made by debootstrap) and provisions it over SSH")
NOT_AN_INSTALLER = {
    key: leftover(NO_INSTALLER_WHY) for key in (
        "boot_command", "boot_wait", "boot_key_interval", "boot_keygroup_interval", "http_directory",
        "http_content", "http_port_min", "http_port_max", "http_bind_address", "floppy_files", "floppy_dirs",
        "floppy_content", "floppy_label", "iso_interface")
}
SEED = {key: leftover(SEED_WHY) for key in ("cd_files", "cd_content", "cd_label")}
QUIET = {key: note("QEMU runs headless under recipe (the console is logged to console-build.log)")
         for key in ("headless", "display", "use_default_display", "vnc_bind_address", "vnc_port_min",
                     "vnc_port_max", "vnc_use_password", "vnc_password", "vrdp_bind_address", "vrdp_port_min",
                     "vrdp_port_max")}

QEMU: dict[str, Rule] = {
    **SSH, **NOT_AN_INSTALLER, **SEED, **QUIET,
    "cpus": to("cpus"),
    "memory": to("memory"),
    "disk_size": to("disk_size", packer_size),
    "firmware": _firmware,
    "efi_boot": _firmware,
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
BASE_OPTIONS = ("iso_url", "iso_urls", "iso_checksum", "iso_checksum_type", "iso_checksum_url", "disk_image")


def _base(plugin: Plugin, assembly: Assembly, installer_why: str = INSTALLER_WHY) -> None:
    settings = dict(plugin.settings)
    disk_image = settings.get("disk_image")
    if disk_image is not None and disk_image.data is True:
        base = disk_image_base(settings, assembly.paths, assembly)
        if base is not None:
            assembly.set("base", base)
            return
    assembly.set("base", {"bootstrap": {}})
    blamed = settings.get("iso_url") or settings.get("iso_urls") or settings.get("source_path")
    if blamed is not None:
        name = next(k for k, v in settings.items() if v is blamed)
        assembly.leftover(name, blamed, installer_why)
    else:
        assembly.note("the base is a Debian system made by debootstrap: give base: {url: ..., checksum: ...} "
                      "for a cloud image")


def qemu(plugin: Plugin, assembly: Assembly) -> None:
    assembly.set("platform", "qemu")
    _base(plugin, assembly)
    apply(QEMU, assembly, skip=BASE_OPTIONS)


# -- VirtualBox, VMware, Vagrant: built with QEMU, exported in their format ----------------------------

def _guest_os(assembly: Assembly, name: str, value: Value) -> None:
    assembly.note(f"{name}: the OVF descriptor names the guest's system from its facts (os_type: sets it)")


HYPERVISOR_ONLY = "recipe builds with QEMU: there is no VirtualBox or VMware to configure during the build"
APPLIANCE: dict[str, Rule] = {
    **SSH, **NOT_AN_INSTALLER, **SEED, **QUIET,
    "cpus": to("cpus"),
    "memory": to("memory"),
    "disk_size": to("disk_size", packer_size),
    "firmware": _firmware,
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
        _base(plugin, assembly, INSTALLER_WHY if plugin.type.endswith("-iso") else
              "recipe starts from a disk image (qcow2, raw, vmdk) or debootstrap: take the disk out of the "
              "appliance and give base: {path: <the .vmdk>}")
        apply(APPLIANCE, assembly, skip=(*BASE_OPTIONS, "source_path", *EXPORT_OPTIONS))
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
    "communicator": _communicator,
}


def vagrant(plugin: Plugin, assembly: Assembly) -> None:
    """Packer's vagrant builder boots a box and packages a new one: recipe boots its base with QEMU and the
    vagrant export packages the box."""
    assembly.set("platform", "qemu")
    _base(plugin, assembly, "recipe cannot boot a Vagrant box as its base: give base: {url: <the box's cloud "
                            "image>, checksum: ...}, or keep the Debian made by debootstrap")
    apply(VAGRANT, assembly, skip=(*BASE_OPTIONS, "source_path"))
    provider = plugin.settings.get("provider")
    name = str(provider.data) if provider and provider.translated else "virtualbox"
    options = {"provider": VAGRANT_PROVIDERS.get(name, "libvirt")}
    if name not in VAGRANT_PROVIDERS:
        assembly.leftover("provider", provider, "recipe's Vagrant boxes are for libvirt or virtualbox")
    assembly.export("vagrant", options, "Packer's vagrant builder: recipe builds the machine with QEMU and the "
                                        "vagrant export packages the box")


# -- amazon-ebs ------------------------------------------------------------------------------------------

def _ami_filter(data: Any) -> dict[str, Any]:
    mapping = data[0] if isinstance(data, list) else data
    query: dict[str, Any] = {"filters": {k: v for k, v in (mapping.get("filters") or {}).items()}}
    if mapping.get("owners"):
        query["owners"] = mapping["owners"]
    if mapping.get("most_recent") is not None:
        query["most_recent"] = mapping["most_recent"]
    return query


def _root_volume(assembly: Assembly, name: str, value: Value) -> None:
    """launch_block_device_mappings: recipe sizes the root volume only (the first mapping given a size)."""
    mappings = value.data if isinstance(value.data, list) else [value.data]
    root = mappings[0] if mappings else {}
    volume = {k: v for k, v in (("size", root.get("volume_size")), ("type", root.get("volume_type"))) if v is not None}
    if volume:
        assembly.set("root_volume", volume)
    if len(mappings) > 1 or set(root) - {"device_name", "volume_size", "volume_type", "delete_on_termination"}:
        assembly.leftover(name, value, "recipe sets the root volume's size and type; add other volumes in a task")


def _security_group(assembly: Assembly, name: str, value: Value) -> None:
    assembly.set("security_group_ids", [value.data] if isinstance(value.data, str) else value.data)


def _user_data_file(assembly: Assembly, name: str, value: Value) -> None:
    path = path_of(assembly.paths, value.data)
    assembly.set("user_data", "{{ lookup('file', '" + str(path).replace("'", "\\'") + "') }}")


def _snapshot_tags(assembly: Assembly, name: str, value: Value) -> None:
    if value.data != assembly.options.get("tags"):
        assembly.leftover(name, value, "recipe tags the snapshots with the AMI's tags")


def _virtualization(assembly: Assembly, name: str, value: Value) -> None:
    if value.data != "hvm":
        assembly.leftover(name, value, "recipe registers HVM images")


AMAZON: dict[str, Rule] = {
    **SSH,
    "region": to("region"),
    "source_ami": to("source_ami"),
    "source_ami_filter": to("source_ami", _ami_filter),
    "instance_type": to("instance_type"),
    "ami_name": to("ami_name"),
    "ami_description": to("ami_description"),
    "ami_regions": to("regions"),
    "ami_users": to("share.users"),
    "ami_groups": to("share.groups"),
    "ami_org_arns": to("share.org_arns"),
    "ami_ou_arns": to("share.ou_arns"),
    "tags": to("tags"),
    "run_tags": to("run_tags"),
    "snapshot_tags": _snapshot_tags,
    "subnet_id": to("subnet_id"),
    "vpc_id": to("vpc_id"),
    "security_group_id": _security_group,
    "security_group_ids": to("security_group_ids"),
    "iam_instance_profile": to("iam_instance_profile"),
    "user_data": to("user_data"),
    "user_data_file": _user_data_file,
    "launch_block_device_mappings": _root_volume,
    "force_deregister": to("force_deregister"),
    "force_delete_snapshot": note("recipe deletes a deregistered image's snapshots with it"),
    "profile": to("profile"),
    "custom_endpoint_ec2": to("endpoint_url"),
    "ssh_interface": to("ssh_interface"),
    "ssh_keypair_name": to("key_pair"),
    "temporary_security_group_source_cidrs": to("ssh_cidrs"),
    "temporary_key_pair_type": note("recipe's temporary key pair is ed25519"),
    "associate_public_ip_address": note("the instance gets the subnet's public address setting"),
    "ami_virtualization_type": _virtualization,
    "ena_support": note("recipe registers the AMI with ENA support"),
    "sriov_support": note("recipe registers the AMI with ENA support"),
    "shutdown_behavior": note("recipe stops the instance, images it and terminates it"),
    "skip_region_validation": note("recipe checks regions by name only"),
    "aws_polling": note("recipe polls with a backoff up to ami_timeout"),
    "access_key": leftover(CREDENTIALS_WHY), "secret_key": leftover(CREDENTIALS_WHY),
    "token": leftover(CREDENTIALS_WHY), "assume_role": leftover(CREDENTIALS_WHY),
    "ssh_port": only_if(22, "recipe connects to port 22"),
}


def amazon(plugin: Plugin, assembly: Assembly) -> None:
    assembly.set("platform", "amazon")
    apply(AMAZON, assembly)


NULL: dict[str, Rule] = {
    **SSH,
    "ssh_host": to("ssh.host"),
    "ssh_port": to("ssh.port"),
}


def null(plugin: Plugin, assembly: Assembly) -> None:
    """Packer's null builder provisions an existing machine: recipe's ssh platform."""
    assembly.set("platform", "ssh")
    apply(NULL, assembly)


BUILDERS: dict[str, Callable[[Plugin, Assembly], None]] = {
    "qemu": qemu,
    "amazon-ebs": amazon,
    "null": null,
    "virtualbox-iso": appliance("virtualbox"),
    "virtualbox-ovf": appliance("virtualbox"),
    "virtualbox-vm": appliance("virtualbox"),
    "vmware-iso": appliance("vmware"),
    "vmware-vmx": appliance("vmware"),
    "vagrant": vagrant,
}
DISKLESS = ("amazon", "ssh")


def map_source(plugin: Plugin, name: str, paths: PathMapper) -> MappedSource | Comment:
    """The recipe source for a builder, or a leftover comment when recipe has nothing like it."""
    build = BUILDERS.get(plugin.type)
    if build is None:
        return Comment.not_imported(plugin.position, f"builder {plugin.label}",
                                    f"recipe has no {plugin.type} platform (it has qemu, amazon and ssh); "
                                    "its provisioners are imported for the other sources")
    assembly = Assembly(plugin=plugin, paths=paths)
    build(plugin, assembly)
    comments = [Comment(f"Packer's {plugin.type} builder {plugin.name!r} ({plugin.position})"), *assembly.comments]
    return MappedSource(name=name, part=Part(assembly.options, key=name, comments=tuple(comments)),
                        exports=tuple(assembly.exports), has_disk=assembly.options["platform"] not in DISKLESS)

"""The Vagrantfile of a build: the box, the provider's CPUs and memory, and the source's own settings.

vagrant-libvirt gets the driver the accelerator asks for (`kvm`, or `qemu` for TCG where KVM does not
work), and the storage pool and management network when the source names them. The source's
`vagrantfile:` text goes last, inside `Vagrant.configure("2") do |config|`, so it can override any of it.
"""
from __future__ import annotations

from dataclasses import dataclass

from modules.platforms.vagrant.config import VagrantConfig

MACHINE = "default"            # the one machine of the Vagrantfile, as `vagrant status` names it


@dataclass(frozen=True)
class Names:
    """What a build calls things: its box, and the prefix of what the provider makes (libvirt: the domain
    <prefix>default and its volume <prefix>default.img)."""

    box: str
    prefix: str
    build: str = ""
    build_id: str = ""


def ruby_string(text: str) -> str:
    """A Ruby double-quoted literal of text: no interpolation (#{...}), no escapes left to Ruby."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#")
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def render(config: VagrantConfig, names: Names, accelerator: str = "tcg") -> str:
    lines = [f"# Written by recipe for the build {names.build} ({names.build_id}); `vagrant` run in this folder",
             "# manages its machine. Removed with the machine when the build ends.",
             'Vagrant.configure("2") do |config|',
             f"  config.vm.box = {ruby_string(names.box)}"]
    if config.box_version is not None:
        lines.append(f"  config.vm.box_version = {ruby_string(config.box_version)}")
    lines += ["  config.vm.box_check_update = false",
              f"  config.vm.boot_timeout = {int(config.boot_timeout)}",
              f"  config.ssh.insert_key = {'true' if config.insert_key else 'false'}"
              + ("" if config.insert_key else "    # the image keeps the box's login key"),
              '  config.vm.synced_folder ".", "/vagrant", disabled: true    # recipe copies files over SSH',
              *PROVIDER_BLOCKS[config.provider](config, names, accelerator)]
    if config.vagrantfile.strip():
        lines += ["", "  # the source's vagrantfile:"]
        lines += [f"  {line}".rstrip() for line in config.vagrantfile.rstrip().splitlines()]
    lines.append("end")
    return "\n".join(lines) + "\n"


def _libvirt(config: VagrantConfig, names: Names, accelerator: str) -> list[str]:
    driver = "kvm" if accelerator == "kvm" else "qemu"
    why = "KVM" if driver == "kvm" else "TCG, QEMU's emulator: no working KVM here, or accelerator: tcg"
    block = ["  config.vm.provider :libvirt do |libvirt|",
             f"    libvirt.uri = {ruby_string(config.libvirt_uri)}",
             f"    libvirt.driver = {ruby_string(driver)}    # {why}",
             f"    libvirt.cpus = {config.cpus}",
             f"    libvirt.memory = {config.memory}",
             f"    libvirt.default_prefix = {ruby_string(names.prefix)}"]
    if config.storage_pool:
        block.append(f"    libvirt.storage_pool_name = {ruby_string(config.storage_pool)}")
    network = config.management_network
    if network:
        block.append(f"    libvirt.management_network_name = {ruby_string(network.name)}")
        if network.address:
            block.append(f"    libvirt.management_network_address = {ruby_string(network.address)}")
    return block + ["  end"]


def _virtualbox(config: VagrantConfig, names: Names, accelerator: str) -> list[str]:
    # written for VirtualBox, never run here: a full clone, so the disk the export reads is a whole image
    return ["  config.vm.provider :virtualbox do |vb|",
            f"    vb.name = {ruby_string(names.prefix + MACHINE)}",
            f"    vb.cpus = {config.cpus}",
            f"    vb.memory = {config.memory}",
            "    vb.gui = false",
            "    vb.linked_clone = false",
            "  end"]


def _vmware_desktop(config: VagrantConfig, names: Names, accelerator: str) -> list[str]:
    # written for vagrant-vmware-desktop, never run here: a full clone, as for VirtualBox
    return ["  config.vm.provider :vmware_desktop do |vmware|",
            f"    vmware.vmx[\"displayName\"] = {ruby_string(names.prefix + MACHINE)}",
            f"    vmware.vmx[\"numvcpus\"] = \"{config.cpus}\"",
            f"    vmware.vmx[\"memsize\"] = \"{config.memory}\"",
            "    vmware.gui = false",
            "    vmware.linked_clone = false",
            "  end"]


PROVIDER_BLOCKS = {"libvirt": _libvirt, "virtualbox": _virtualbox, "vmware_desktop": _vmware_desktop}

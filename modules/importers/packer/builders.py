"""Packer builders (HCL2 sources) as recipe sources.

qemu becomes the qemu platform, amazon-ebs the amazon platform and null the
ssh platform. VirtualBox, VMware and Vagrant have no platform of their own in
recipe: their builds run on QEMU, and the export that writes their format (an
OVF or OVA, a VMDK, a Vagrant box) follows, with a note saying so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from modules.importers.packer.amazon_builder import amazon
from modules.importers.packer.appliance_builders import appliance, vagrant
from modules.importers.packer.builder_rules import SSH
from modules.importers.packer.draft import Comment, Part
from modules.importers.packer.files import PathMapper
from modules.importers.packer.mapping import Assembly, Rule, apply, integer, to
from modules.importers.packer.qemu_builder import qemu
from modules.importers.packer.template import Plugin


@dataclass(frozen=True)
class MappedSource:
    name: str
    part: Part                        # the source, keyed by name
    exports: tuple[Part, ...]         # what the builder itself makes, as exports
    has_disk: bool                    # an image on this machine (qemu), which disk exports apply to


NULL: dict[str, Rule] = {
    **SSH,
    "ssh_host": to("ssh.host"),
    "ssh_port": to("ssh.port", integer),
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

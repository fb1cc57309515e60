"""vagrant: boxes for the libvirt and virtualbox providers, and a catalog `vagrant box add` reads.

  exports:
    - vagrant:
        provider: [libvirt, virtualbox]      # or one of them; default libvirt
        catalog: {name: acme/web, version: 1.0.0}   # optional: <name>.box.json

A libvirt box holds metadata.json, a Vagrantfile and box.img (the compacted
qcow2); a virtualbox box holds box.ovf, box-disk001.vmdk (streamOptimized),
metadata.json and a Vagrantfile with the NIC's base_mac. The tar is
deterministic (engine.artifacts.archive); `compress: true` gzips it, which makes a
smaller file at a large cost in time, since the disks inside are compressed
or compacted already. An earlier qcow2 or streamOptimized vmdk export is
reused rather than converted again.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncContextManager

import voluptuous as vol

from engine.artifacts.archive import writing_tar
from engine.artifacts.digest import sha256_of
from engine.artifacts.export import Artifact, ExportContext, Exporter, MachineShape
from engine.process import atomic_path, run_tool
from engine.recipe.schema import one_or_more
from modules.exports._ovf import OvfHardware, descriptor
from modules.exports.ovf import ovf_disk, streamable_vmdk
from modules.exports.vmdk import virtual_size

PROVIDERS = ("libvirt", "virtualbox")
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"    # Debian's path; the box's Vagrantfile names it for uefi


@dataclass(frozen=True)
class Catalog:
    name: str                         # org/box, as `vagrant box add` will know it
    version: str = "0.0.0"
    description: str = ""
    url: str | None = None            # where the boxes will be served from; default file:// of the output


@dataclass(frozen=True)
class VagrantConfig:
    provider: tuple[str, ...] = ("libvirt",)
    name: str | None = None
    compress: bool = False
    compression_level: int = 6
    catalog: Catalog | None = None


class Vagrant(Exporter, name="vagrant"):
    description = "Vagrant boxes (libvirt: qcow2; virtualbox: OVF + VMDK) and an optional box catalog"
    schema = {
        vol.Optional("provider", default=["libvirt"]): one_or_more(vol.In(PROVIDERS)),
        vol.Optional("name", default=None): vol.Any(None, str),
        vol.Optional("compress", default=False): bool,
        vol.Optional("compression_level", default=6): vol.All(int, vol.Range(min=1, max=9)),
        vol.Optional("catalog", default=None): vol.Any(None, {
            vol.Required("name"): vol.Match(r"^[\w.-]+(/[\w.-]+)?$", msg="a box name like org/name"),
            vol.Optional("version", default="0.0.0"): vol.Coerce(str),
            vol.Optional("description", default=""): str,
            vol.Optional("url", default=None): vol.Any(None, str)}),
    }
    Config = VagrantConfig
    consumes = frozenset({"qcow2", "vmdk"})
    produces = frozenset({"box", "box-catalog"})

    @classmethod
    def configure(cls, validated: dict) -> VagrantConfig:
        catalog = validated.get("catalog")
        return VagrantConfig(**{**validated, "provider": tuple(validated["provider"]),
                                "catalog": Catalog(**catalog) if catalog else None})

    async def run(self, config: VagrantConfig, ctx: ExportContext) -> list[Artifact]:
        name = config.name or ctx.build_name
        machine = dataclasses.replace(ctx.machine, name=name)
        gzip_level = config.compression_level if config.compress else None
        boxes = []
        for provider in dict.fromkeys(config.provider):
            final = ctx.output_dir / f"{name}-{provider}.box"
            with atomic_path(final) as temporary:
                if provider == "libvirt":
                    await write_libvirt_box(temporary, ctx, machine, gzip_level)
                else:
                    await write_virtualbox_box(temporary, ctx, machine, gzip_level)
            boxes.append(Artifact(final, "box", variant=provider))
        if config.catalog:
            boxes.append(await write_catalog(ctx.output_dir / f"{name}.box.json", config.catalog, boxes, ctx))
        return boxes


def compact_qcow2(ctx: ExportContext) -> AsyncContextManager[Path]:
    """The qcow2 an earlier export made, or a compacted one in scratch space for the duration."""
    async def convert(path: Path) -> None:
        await run_tool("qemu-img", "convert", "-O", "qcow2", "-f", ctx.disk_format, ctx.disk, path,
                       what="qemu-img convert to qcow2 (libvirt box)")
    return ctx.reused_or_converted("qcow2", convert)


async def write_libvirt_box(path: Path, ctx: ExportContext, machine: MachineShape, gzip_level: int | None) -> None:
    async with compact_qcow2(ctx) as image:
        size_gib = -(-await virtual_size(image, "qcow2") // 1024 ** 3)
        metadata = {"provider": "libvirt", "format": "qcow2", "virtual_size": size_gib}
        members = [("metadata.json", _json(metadata)), ("Vagrantfile", libvirt_vagrantfile(machine))]
        await asyncio.to_thread(_write_box, path, ctx, members, [("box.img", image)], gzip_level)


async def write_virtualbox_box(path: Path, ctx: ExportContext, machine: MachineShape,
                               gzip_level: int | None) -> None:
    disk_name = "box-disk001.vmdk"
    async with streamable_vmdk(ctx, disk_name, controller="sata") as vmdk:
        hardware = OvfHardware(controller="sata", nic="E1000", network="NAT", system_type="virtualbox-2.2")
        ovf = descriptor(machine, await ovf_disk(ctx, vmdk, disk_name), hardware)
        members = [("metadata.json", _json({"provider": "virtualbox"})),
                   ("Vagrantfile", virtualbox_vagrantfile(base_mac(machine.name))), ("box.ovf", ovf)]
        await asyncio.to_thread(_write_box, path, ctx, members, [(disk_name, vmdk)], gzip_level)


def _write_box(path: Path, ctx: ExportContext, members: list[tuple[str, bytes]], files: list[tuple[str, Path]],
               gzip_level: int | None) -> None:
    with writing_tar(path, ctx.epoch, ctx.cancel, gzip_level) as tar:
        for name, data in members:
            tar.add_bytes(name, data)
        for name, file in files:
            tar.add_file(name, file, digest=False)


def libvirt_vagrantfile(machine: MachineShape) -> bytes:
    lines = ['Vagrant.configure("2") do |config|', "  config.vm.provider :libvirt do |libvirt|",
             f"    libvirt.cpus = {machine.cpus}", f"    libvirt.memory = {machine.memory_mib}",
             '    libvirt.disk_bus = "virtio"']
    if machine.firmware == "uefi":
        lines += ['    libvirt.machine_type = "q35"', f'    libvirt.loader = "{OVMF_CODE}"']
    return ("\n".join(lines + ["  end", "end", ""])).encode()


def virtualbox_vagrantfile(mac: str) -> bytes:
    return (f'Vagrant.configure("2") do |config|\n  config.vm.base_mac = "{mac}"\nend\n').encode()


def base_mac(name: str) -> str:
    """A stable MAC in VirtualBox's 08:00:27 range, as Vagrant's base_mac writes it (no colons)."""
    return "080027" + hashlib.sha256(name.encode()).hexdigest()[:6].upper()


async def write_catalog(final: Path, catalog: Catalog, boxes: list[Artifact], ctx: ExportContext) -> Artifact:
    providers = []
    for box in boxes:
        url = f"{catalog.url.rstrip('/')}/{box.path.name}" if catalog.url else box.path.resolve().as_uri()
        providers.append({"name": box.variant, "url": url, "checksum_type": "sha256",
                          "checksum": await sha256_of(box.path, ctx.cancel)})
    document = {"name": catalog.name, "description": catalog.description,
                "versions": [{"version": catalog.version, "providers": providers}]}
    with atomic_path(final) as temporary:
        temporary.write_bytes(_json(document))
    return Artifact(final, "box-catalog")


def _json(document: object) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()

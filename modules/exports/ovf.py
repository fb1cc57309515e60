"""ovf and ova: the build as an appliance that VMware, VirtualBox and other OVF importers take.

  exports:
    - vmdk: {}                      # optional: ova/ovf reuse a streamOptimized vmdk made before them
    - ova: {controller: scsi}       # <name>.ova: <name>.ovf, <name>.mf, then the disk, as a ustar tar
    - ovf: {}                       # the same three files side by side

The descriptor is OVF 1.0 (modules.exports._ovf); cpus and memory are the
source's unless given. The disk is streamed into the tar and hashed on the way,
and the manifest's slot, which comes before the disk, is filled in after it.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncContextManager

import voluptuous as vol

from engine.artifacts.archive import writing_tar
from engine.artifacts.digest import sha256_of
from engine.artifacts.export import Artifact, ExportContext, Exporter, MachineShape
from engine.process import atomic_path
from modules.exports._ovf import (HARDWARE_SCHEMA, OvfDisk, OvfHardware, descriptor, manifest, manifest_size,
                                  sha256_bytes)
from modules.exports.vmdk import convert_to_vmdk, populated_size, virtual_size


@dataclass(frozen=True)
class OvfConfig:
    name: str | None = None
    cpus: int | None = None
    memory: int | None = None
    controller: str = "scsi"
    nic: str = "E1000"
    network: str = "nat"
    system_type: str = "vmx-13"
    os_type: int | None = None

    def hardware(self) -> OvfHardware:
        return OvfHardware(controller=self.controller, nic=self.nic, network=self.network,
                           system_type=self.system_type, os_type=self.os_type)

    def machine(self, ctx: ExportContext) -> MachineShape:
        return ctx.machine_as(self.name, self.cpus, self.memory)


SCHEMA = {vol.Optional("name", default=None): vol.Any(None, str), **HARDWARE_SCHEMA}


def adapter_for(controller: str) -> str:
    """What a vmdk's descriptor says it hangs on: VMware writes "ide" for SATA disks too."""
    return "lsilogic" if controller == "scsi" else "ide"


def streamable_vmdk(ctx: ExportContext, file_name: str, controller: str = "scsi") -> AsyncContextManager[Path]:
    """The streamOptimized vmdk an earlier export made, or one converted into scratch space for the duration."""
    async def convert(path: Path) -> None:
        await convert_to_vmdk(ctx.disk, ctx.disk_format, path, file_name, adapter_type=adapter_for(controller))
    return ctx.reused_or_converted("vmdk", convert, variant="streamOptimized")


async def ovf_disk(ctx: ExportContext, vmdk: Path, file_name: str) -> OvfDisk:
    capacity, populated = await asyncio.gather(virtual_size(ctx.disk, ctx.disk_format),
                                               populated_size(ctx.disk, ctx.disk_format))
    return OvfDisk(file_name=file_name, file_size=vmdk.stat().st_size, capacity=capacity, populated_size=populated)


class Ova(Exporter, name="ova"):
    description = "an OVF 1.0 appliance in one tar: .ovf, .mf (SHA-256), then the streamOptimized disk"
    schema = SCHEMA
    Config = OvfConfig
    consumes = frozenset({"vmdk"})
    produces = frozenset({"ova"})

    async def run(self, config: OvfConfig, ctx: ExportContext) -> list[Artifact]:
        machine = config.machine(ctx)
        final = ctx.output_dir / f"{machine.name}.ova"
        async with streamable_vmdk(ctx, f"{machine.name}-disk1.vmdk", config.controller) as vmdk:
            disk_name = vmdk.name if ctx.input("vmdk", "streamOptimized") else f"{machine.name}-disk1.vmdk"
            ovf = descriptor(machine, await ovf_disk(ctx, vmdk, disk_name), config.hardware())
            with atomic_path(final) as temporary:
                await asyncio.to_thread(write_ova, temporary, ctx, machine.name, ovf, disk_name, vmdk)
        return [Artifact(final, "ova")]


def write_ova(path: Path, ctx: ExportContext, name: str, ovf: bytes, disk_name: str, vmdk: Path) -> None:
    ovf_name, mf_name = f"{name}.ovf", f"{name}.mf"
    with writing_tar(path, ctx.epoch, ctx.cancel) as tar:
        ovf_sha = tar.add_bytes(ovf_name, ovf)
        slot = tar.reserve(mf_name, manifest_size([ovf_name, disk_name]))
        disk_sha = tar.add_file(disk_name, vmdk)
        tar.fill(slot, manifest([(ovf_name, ovf_sha), (disk_name, disk_sha)]))


class Ovf(Exporter, name="ovf"):
    description = "an OVF 1.0 appliance as files: <name>.ovf, <name>.mf and <name>-disk1.vmdk"
    schema = SCHEMA
    Config = OvfConfig
    consumes = frozenset({"vmdk"})
    produces = frozenset({"ovf", "vmdk"})

    async def run(self, config: OvfConfig, ctx: ExportContext) -> list[Artifact]:
        machine = config.machine(ctx)
        disk_name = f"{machine.name}-disk1.vmdk"
        disk_final, ovf_final, mf_final = (ctx.output_dir / n for n in (disk_name, f"{machine.name}.ovf",
                                                                           f"{machine.name}.mf"))
        earlier = ctx.input("vmdk", "streamOptimized")
        if earlier is None or earlier.path != disk_final:
            with atomic_path(disk_final) as temporary:
                if earlier is not None:
                    await asyncio.to_thread(link_or_copy, earlier.path, temporary)
                else:
                    await convert_to_vmdk(ctx.disk, ctx.disk_format, temporary, disk_name,
                                          adapter_type=adapter_for(config.controller))
        disk_sha = await sha256_of(disk_final, ctx.cancel)
        ovf = descriptor(machine, await ovf_disk(ctx, disk_final, disk_name), config.hardware())
        with atomic_path(ovf_final) as temporary:
            temporary.write_bytes(ovf)
        # the manifest comes last: an ovf whose .mf exists is whole
        text = manifest([(ovf_final.name, sha256_bytes(ovf)), (disk_name, disk_sha)])
        with atomic_path(mf_final) as temporary:
            temporary.write_bytes(text)
        return [Artifact(ovf_final, "ovf", sha256=sha256_bytes(ovf)), Artifact(mf_final, "ovf-manifest"),
                Artifact(disk_final, "vmdk", variant="streamOptimized", sha256=disk_sha)]


def link_or_copy(source: Path, destination: Path) -> None:
    """A hard link when both are on one file system (no copy of the disk), else a copy."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


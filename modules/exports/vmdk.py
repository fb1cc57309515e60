"""vmdk: the build's disk as a VMware disk, streamOptimized (what OVF and ESXi take) or monolithicSparse.

qemu-img writes a random CID and the temporary file's name into the VMDK's
embedded descriptor; both are rewritten, so the same disk always gives the
same bytes and the descriptor names the file by its final name.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import voluptuous as vol

from engine.artifacts.export import Artifact, ExportContext, Exporter
from engine.errors import BuildError
from engine.process import atomic_path, run_tool

SUBFORMATS = ("streamOptimized", "monolithicSparse")
SPLIT = "twoGbMaxExtentSparse"           # a text descriptor and 2 GiB extents (the vmx export offers it)
ADAPTERS = ("lsilogic", "ide", "buslogic", "legacyESX")
HEADER = struct.Struct("<4sIIQQQQ")      # magic, version, flags, capacity, grain size, descriptor offset, size
SECTOR = 512


@dataclass(frozen=True)
class VmdkConfig:
    subformat: str = "streamOptimized"
    adapter_type: str = "lsilogic"      # what the descriptor tells VMware the disk hangs on
    name: str | None = None


class Vmdk(Exporter, name="vmdk"):
    description = "a VMware disk (streamOptimized or monolithicSparse)"
    schema = {vol.Optional("subformat", default="streamOptimized"): vol.In(SUBFORMATS),
              vol.Optional("adapter_type", default="lsilogic"): vol.In(ADAPTERS),
              vol.Optional("name", default=None): vol.Any(None, str)}
    Config = VmdkConfig
    produces = frozenset({"vmdk"})

    async def run(self, config: VmdkConfig, ctx: ExportContext) -> list[Artifact]:
        final = ctx.output_dir / f"{config.name or ctx.build_name}.vmdk"
        with atomic_path(final) as temporary:
            await convert_to_vmdk(ctx.disk, ctx.disk_format, temporary, final.name, config.subformat,
                                  config.adapter_type)
        return [Artifact(final, "vmdk", variant=config.subformat)]


async def convert_to_vmdk(disk: Path, disk_format: str, destination: Path, file_name: str,
                          subformat: str = "streamOptimized", adapter_type: str = "lsilogic") -> None:
    """qemu-img convert, then a descriptor that names file_name and has a stable CID. A split subformat
    (twoGbMaxExtentSparse) is a text descriptor beside its extents, which qemu-img names after destination:
    give it its final name (in a temporary folder)."""
    await run_tool("qemu-img", "convert", "-O", "vmdk", "-o", f"subformat={subformat},adapter_type={adapter_type}",
                   "-f", disk_format, disk, destination, what=f"qemu-img convert to vmdk ({subformat})")
    if subformat == SPLIT:
        await asyncio.to_thread(stabilize_split_descriptor, destination)
    else:
        await asyncio.to_thread(stabilize_descriptor, destination, file_name)


def stable_cid(file_name: str) -> str:
    return hashlib.sha256(file_name.encode()).hexdigest()[:8]


def stabilize_split_descriptor(path: Path) -> None:
    path.write_text(re.sub(r"(?m)^CID=[0-9a-fA-F]+$", f"CID={stable_cid(path.name)}", path.read_text()))


def stabilize_descriptor(path: Path, file_name: str) -> None:
    with path.open("r+b") as vmdk:
        magic, _version, _flags, _capacity, _grain, offset, size = HEADER.unpack(vmdk.read(HEADER.size))
        if magic != b"KDMV" or not offset or not size:
            raise BuildError(f"{path.name}: not a sparse VMDK with an embedded descriptor")
        vmdk.seek(offset * SECTOR)
        # The descriptor is a NUL-terminated string. qemu-img rewrites it in place when it
        # updates the CID, so a shorter CID leaves the old text's last bytes after the NUL.
        text = vmdk.read(size * SECTOR).split(b"\0", 1)[0].decode()
        text = re.sub(r"(?m)^CID=[0-9a-fA-F]+$", f"CID={stable_cid(file_name)}", text)
        text = re.sub(r'(?m)^(RW \d+ SPARSE) ".*"$', lambda m: f'{m.group(1)} "{file_name}"', text)
        data = text.encode()
        if len(data) > size * SECTOR:
            raise BuildError(f"{path.name}: the VMDK descriptor does not fit its {size * SECTOR} bytes "
                             f"with the name {file_name!r}", hint="use a shorter export name")
        vmdk.seek(offset * SECTOR)
        vmdk.write(data.ljust(size * SECTOR, b"\0"))


async def virtual_size(disk: Path, disk_format: str) -> int:
    info = json.loads(await run_tool("qemu-img", "info", "--output=json", "-f", disk_format, disk,
                                     what="qemu-img info"))
    return int(info["virtual-size"])


async def populated_size(disk: Path, disk_format: str) -> int:
    """Bytes of the disk that hold data (what OVF calls populatedSize), from qemu-img map."""
    extents = json.loads(await run_tool("qemu-img", "map", "--output=json", "-f", disk_format, disk,
                                        what="qemu-img map"))
    return sum(extent["length"] for extent in extents if extent.get("data"))

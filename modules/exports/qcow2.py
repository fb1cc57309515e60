"""qcow2: the build's disk as one standalone, compacted qcow2 file (optionally compressed)."""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.artifacts.export import Artifact, ExportContext, Exporter
from engine.process import atomic_path, run_tool


@dataclass(frozen=True)
class Qcow2Config:
    compress: bool = False
    name: str | None = None          # file name without extension; default <recipe>-<source>


class Qcow2(Exporter, name="qcow2"):
    produces = frozenset({"qcow2"})
    description = "a standalone qcow2 image; unused and zeroed clusters are dropped"
    schema = {vol.Optional("compress", default=False): bool, vol.Optional("name", default=None): vol.Any(None, str)}
    Config = Qcow2Config

    async def run(self, config: Qcow2Config, ctx: ExportContext) -> list[Artifact]:
        final = ctx.output_dir / f"{config.name or ctx.build_name}.qcow2"
        with atomic_path(final) as temporary:
            # convert, unlike copying, writes only allocated non-zero clusters: that is the compaction
            await run_tool("qemu-img", "convert", "-O", "qcow2", *(["-c"] if config.compress else []),
                           "-f", ctx.disk_format, ctx.disk, temporary, what="qemu-img convert to qcow2")
        return [Artifact(final, "qcow2")]

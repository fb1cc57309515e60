"""raw: the build's disk as a sparse raw image, for dd, cloud imports and other tools."""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.artifacts.export import Artifact, ExportContext, Exporter
from engine.process import atomic_path, run_tool


@dataclass(frozen=True)
class RawConfig:
    name: str | None = None


class Raw(Exporter, name="raw"):
    produces = frozenset({"raw"})
    description = "a sparse raw disk image"
    schema = {vol.Optional("name", default=None): vol.Any(None, str)}
    Config = RawConfig

    async def run(self, config: RawConfig, ctx: ExportContext) -> list[Artifact]:
        final = ctx.output_dir / f"{config.name or ctx.build_name}.raw"
        with atomic_path(final) as temporary:
            await run_tool("qemu-img", "convert", "-O", "raw", "-f", ctx.disk_format, ctx.disk, temporary,
                           what="qemu-img convert to raw")
        return [Artifact(final, "raw")]

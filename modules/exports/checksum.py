"""checksum: a SHA256SUMS file beside a build's artifacts, for `sha256sum -c SHA256SUMS`."""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.artifacts.digest import artifact_sha256
from engine.artifacts.export import Artifact, ExportContext, Exporter
from engine.process import atomic_path
from engine.registry import EVERYTHING


@dataclass(frozen=True)
class ChecksumConfig:
    name: str = "SHA256SUMS"


class Checksum(Exporter, name="checksum"):
    description = "SHA256SUMS listing every artifact made before it, in sha256sum's format"
    schema = {vol.Optional("name", default="SHA256SUMS"): str}
    Config = ChecksumConfig
    consumes = frozenset({EVERYTHING})
    produces = frozenset({"checksum"})

    async def run(self, config: ChecksumConfig, ctx: ExportContext) -> list[Artifact]:
        final = ctx.output_dir / config.name
        lines = []
        for artifact in ctx.inputs:
            digest = await artifact_sha256(artifact, ctx.cancel)
            name = artifact.path.relative_to(ctx.output_dir) if artifact.path.is_relative_to(ctx.output_dir) \
                else artifact.path
            lines.append(f"{digest}  {name}\n")
        with atomic_path(final) as temporary:
            temporary.write_text("".join(lines))
        return [Artifact(final, "checksum")]

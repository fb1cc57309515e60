"""manifest: one JSON file for the run listing every build and its artifacts (size, SHA-256).

  exports:
    - manifest: {}          # output/<recipe>.manifest.json

Like Packer's manifest post-processor, builds of the same recipe share the
file: each build replaces its own entry and leaves the others, so a run of
several sources (or an --only run later) ends with one file naming them all
(engine.artifacts.manifest_file). Paths are relative to the manifest's folder.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.artifacts.digest import artifact_sha256
from engine.artifacts.export import Artifact, ExportContext, Exporter
from engine.artifacts.manifest_file import merge_entry
from engine.registry import EVERYTHING

# builds of one run export concurrently: one writer at a time per file in this process (flock for others)
_locks: dict[Path, asyncio.Lock] = {}


@dataclass(frozen=True)
class ManifestConfig:
    path: str | None = None       # relative to the run's output dir; default <recipe>.manifest.json


class Manifest(Exporter, name="manifest"):
    description = "a JSON manifest of the run: builds, sources, artifacts with size and SHA-256, recipe digest"
    schema = {vol.Optional("path", default=None): vol.Any(None, str)}
    Config = ManifestConfig
    consumes = frozenset({EVERYTHING})
    produces = frozenset({"manifest"})

    async def run(self, config: ManifestConfig, ctx: ExportContext) -> list[Artifact]:
        recipe_name = ctx.recipe.name if ctx.recipe else ctx.build_name
        final = ctx.output_dir.parent / (config.path or f"{recipe_name}.manifest.json")
        entry = await build_entry(ctx, final.parent)
        lock = _locks.setdefault(final.resolve(), asyncio.Lock())
        async with lock:
            await asyncio.to_thread(merge_entry, final, entry, _recipe_header(ctx))
        return [Artifact(final, "manifest")]


async def build_entry(ctx: ExportContext, base: Path) -> dict[str, Any]:
    artifacts = []
    for artifact in ctx.inputs:
        digest = await artifact_sha256(artifact, ctx.cancel)
        artifacts.append({"path": _relative(artifact.path, base), "format": artifact.format,
                          **({"variant": artifact.variant} if artifact.variant else {}),
                          "size": artifact.path.stat().st_size, "sha256": digest})
    build, recipe = ctx.build, ctx.recipe
    return {
        "name": ctx.build_name,
        "build_id": build.info.id if build else None,
        "source": build.source.name if build else None,
        "platform": build.source.platform if build else None,
        "recipe_digest": recipe.digest if recipe else None,
        "started": _iso(ctx.started) if ctx.started else None,
        "finished": _iso(time.time()),
        "artifacts": artifacts,
    }


def _recipe_header(ctx: ExportContext) -> dict[str, Any] | None:
    recipe = ctx.recipe
    return {"name": recipe.name, "path": str(recipe.path), "digest": recipe.digest} if recipe else None


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))

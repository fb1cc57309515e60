"""The run manifest file (`<recipe>.manifest.json`): one entry per build, merged in place.

Builds of one recipe share the file, as with Packer's manifest post-processor: each build replaces its own
entry and leaves the others. The manifest export writes its build's entry here; a cluster run's submitter
writes the entries its workers sent, once their artifacts have arrived.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from engine.process import atomic_path


def merge_entry(final: Path, entry: dict[str, Any], recipe: dict[str, Any] | None) -> None:
    """Replace the entry of entry["name"] in the manifest at `final` (made if absent); recipe: its
    {"name", "path", "digest"}, written at the top."""
    final.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(final.parent, os.O_RDONLY)     # flock on the folder: no lock file left behind
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        builds = [b for b in _existing_builds(final) if b.get("name") != entry["name"]] + [entry]
        document = {"recipe": recipe, "last_build_id": entry["build_id"],
                    "builds": sorted(builds, key=lambda b: b.get("name") or "")}
        with atomic_path(final) as temporary:
            temporary.write_text(json.dumps(document, indent=2) + "\n")
    finally:
        os.close(folder)


def read_entry(path: Path, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the recipe header, the entry of build `name`) of a manifest file; (None, None) if it has none."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    entry = next((b for b in _builds(document) if b.get("name") == name), None)
    recipe = document.get("recipe")
    return (recipe if isinstance(recipe, dict) else None), entry


def _existing_builds(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return []    # absent or not ours: start afresh rather than fail the build
    return _builds(document) if isinstance(document, dict) else []


def _builds(document: dict[str, Any]) -> list[dict[str, Any]]:
    builds = document.get("builds", [])
    return [b for b in builds if isinstance(b, dict)] if isinstance(builds, list) else []

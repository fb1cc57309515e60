"""The contract of an export: it turns a build's disk (or the artifacts of the export
before it) into artifacts, after the machine is shut down.

An export lives in modules/exports/<name>.py and registers itself by
subclassing Exporter with name=... . It writes every file through
engine.process.atomic_path, so a file with its final name is always whole.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from engine.events import Emitter
from engine.registry import Registry

EXPORTS: Registry[type["Exporter"]] = Registry("export")


@dataclass(frozen=True)
class Artifact:
    path: Path
    format: str


@dataclass
class ExportContext:
    build_name: str                   # <recipe>-<source>: the default base name of files
    disk: Path                        # the build's disk after shutdown
    disk_format: str
    output_dir: Path                  # output/<recipe>-<source>/
    events: Emitter
    inputs: list[Artifact] = field(default_factory=list)   # what the export before this one made


class Exporter:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    schema: ClassVar[dict] = {}
    Config: ClassVar[type] = dict

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            EXPORTS.add(name, cls)

    @classmethod
    def configure(cls, validated: dict[str, Any]) -> Any:
        return cls.Config(**validated) if cls.Config is not dict else validated

    async def run(self, config: Any, ctx: ExportContext) -> list[Artifact]:  # pragma: no cover - interface
        raise NotImplementedError

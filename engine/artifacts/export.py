"""The contract of an export: it turns a build's disk (or the artifacts of the exports
before it) into artifacts, after the machine is shut down.

An export lives in modules/exports/<name>.py and registers itself by
subclassing Exporter with name=... . It writes every file through
engine.process.atomic_path, so a file with its final name is always whole.

Exports form a chain (engine.artifacts.export_chain): an export that `consumes` a format
receives the artifacts of that format made by the exports before it; one that
consumes nothing starts from the disk and runs beside the others.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, ClassVar

from engine.console.events import Emitter
from engine.recipe.model import Build, Recipe
from engine.registry import EXPORTS


@dataclass(frozen=True)
class Artifact:
    path: Path
    format: str                   # qcow2, raw, vmdk, ovf, ova, box, manifest, checksum, ...
    variant: str = ""             # vmdk: its subformat; box: its provider
    sha256: str | None = None     # set by exports that hash while they write; see engine.artifacts.digest


@dataclass(frozen=True)
class MachineShape:
    """What an appliance descriptor (OVF, a Vagrantfile) says of the machine the disk came from."""

    name: str
    cpus: int = 1
    memory_mib: int = 1024
    firmware: str = "bios"        # bios | uefi
    os_id: str = ""               # os-release ID of the guest (debian, ubuntu, ...), if gathered
    os_version: str = ""
    os_name: str = ""             # os-release PRETTY_NAME


@dataclass
class ExportContext:
    build_name: str               # <recipe>-<source>: the default base name of files
    disk: Path | None             # the build's disk after shutdown; None on platforms without one (amazon)
    disk_format: str
    output_dir: Path              # output/<recipe>-<source>/
    events: Emitter
    machine: MachineShape = field(default_factory=lambda: MachineShape(name="machine"))
    work_dir: Path | None = None  # scratch space removed with the build (default: output_dir)
    epoch: int = 0                # every timestamp written into an artifact: SOURCE_DATE_EPOCH or the build's
    inputs: tuple[Artifact, ...] = ()   # what the exports this one consumes made
    cancel: threading.Event = field(default_factory=threading.Event)   # set when the export is cancelled
    recipe: Recipe | None = None  # for the run manifest
    build: Build | None = None
    started: float = 0.0          # when the build started (epoch seconds)

    @property
    def scratch(self) -> Path:
        path = self.work_dir or self.output_dir
        path.mkdir(parents=True, exist_ok=True)
        return path

    def machine_as(self, name: str | None, cpus: int | None, memory_mib: int | None) -> MachineShape:
        """The machine as an appliance export describes it: the build's name, cpus and memory unless the
        export's options say otherwise."""
        return dataclasses.replace(self.machine, name=name or self.build_name, cpus=cpus or self.machine.cpus,
                                   memory_mib=memory_mib or self.machine.memory_mib)

    def input(self, format: str, variant: str = "") -> Artifact | None:
        """The last consumed artifact of a format (and variant), if an earlier export made one."""
        found = [a for a in self.inputs if a.format == format and (not variant or a.variant == variant)]
        return found[-1] if found else None

    @contextlib.asynccontextmanager
    async def reused_or_converted(self, format: str, convert: Callable[[Path], Awaitable[Any]],
                                  variant: str = "") -> AsyncIterator[Path]:
        """The file of that format an earlier export made, or one `convert` writes into scratch space,
        removed when the block ends: an export never converts the disk twice in one chain."""
        earlier = self.input(format, variant)
        if earlier is not None:
            yield earlier.path
            return
        scratch = self.scratch / f".{format}-{os.getpid()}-{id(self)}.tmp"
        try:
            await convert(scratch)
            yield scratch
        finally:
            scratch.unlink(missing_ok=True)


def source_date_epoch(default: int) -> int:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else the given time."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else default


class Exporter:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    schema: ClassVar[dict] = {}
    Config: ClassVar[type] = dict
    consumes: ClassVar[frozenset[str]] = frozenset()    # formats taken from earlier exports, or {EVERYTHING}
    produces: ClassVar[frozenset[str]] = frozenset()    # the formats of what it makes

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            EXPORTS.add(name, cls)

    @classmethod
    def check(cls, validated: dict[str, Any]) -> dict[str, Any]:
        """Rules across options, after the schema: raise vol.Invalid with the path of the option to blame,
        so the error points at its line:column."""
        return validated

    @classmethod
    def configure(cls, validated: dict[str, Any]) -> Any:
        return cls.Config(**validated) if cls.Config is not dict else validated

    async def run(self, config: Any, ctx: ExportContext) -> list[Artifact]:  # pragma: no cover - interface
        raise NotImplementedError

"""Run a build's exports as a chain, concurrently where they do not depend on each other.

An export depends on the latest earlier export that produces each format it
consumes (engine.artifacts.export.Exporter.consumes/produces); one that consumes
everything (manifest, checksum) waits for all before it. Exports with no
dependency start together from the disk. `keep_input: false` removes what an
export consumed once every export that reads it is done, so a manifest after
it lists only what is kept. If one export fails the others are cancelled and
the error is raised; files are written through atomic_path, so nothing
partial keeps a final name.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import threading
import time
from dataclasses import dataclass, field

from engine.artifacts.export import Artifact, ExportContext, Exporter, MachineShape, source_date_epoch
from engine.build.runner import BuildState
from engine.errors import BuildError
from engine.recipe.model import Export
from engine.registry import EVERYTHING, EXPORTS

NO_SPACE_HINT = "free space on that filesystem, or give --output-dir on a larger one; nothing partial was kept"


def export_context(state: BuildState, machine: MachineShape) -> ExportContext:
    """The context a platform hands its exports after shutdown (disk None: a platform with no local disk)."""
    return ExportContext(build_name=state.build.info.name, disk=state.disk, disk_format=state.disk_format,
                         output_dir=state.options.output_dir / state.build.info.name, events=state.events,
                         machine=machine, work_dir=state.work_dir,
                         epoch=source_date_epoch(state.build.info.timestamp),
                         recipe=state.recipe, build=state.build, started=state.started)


def machine_shape(state: BuildState, cpus: int, memory_mib: int, firmware: str) -> MachineShape:
    facts = state.facts
    return MachineShape(name=state.build.info.name, cpus=cpus, memory_mib=memory_mib, firmware=firmware,
                        os_id=str(facts.get("os_id", "")), os_version=str(facts.get("os_version", "")),
                        os_name=str(facts.get("os_name", "")))


@dataclass
class Link:
    """One export of the chain, with the earlier links it reads from."""

    index: int
    export: Export
    exporter: type[Exporter]
    depends_on: list["Link"]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    made: list[Artifact] = field(default_factory=list)

    @property
    def reads_everything(self) -> bool:
        return EVERYTHING in self.exporter.consumes

    def reads(self, artifact: Artifact) -> bool:
        return self.reads_everything or artifact.format in self.exporter.consumes


def plan(exports: tuple[Export, ...] | list[Export]) -> list[Link]:
    links: list[Link] = []
    for index, export in enumerate(exports):
        exporter = EXPORTS.get(export.kind)
        assert exporter is not None, export.kind
        if EVERYTHING in exporter.consumes:
            depends_on = list(links)
        else:
            latest = {fmt: next((l for l in reversed(links) if fmt in l.exporter.produces), None)
                      for fmt in exporter.consumes}
            depends_on = sorted({id(l): l for l in latest.values() if l}.values(), key=lambda l: l.index)
        links.append(Link(index, export, exporter, depends_on))
    return links


class Chain:
    def __init__(self, exports: tuple[Export, ...] | list[Export], context: ExportContext,
                 given: tuple[Artifact, ...] = ()):
        self.links = plan(exports)
        self.context = context
        self.given = given                     # what the platform itself made (an AMI): manifest and checksum list it
        self.released: set[str] = set()        # paths removed by keep_input: false
        self._cancels: list[threading.Event] = []

    async def run(self) -> list[Artifact]:
        """Every export; the artifacts that are kept, in chain order."""
        try:
            async with asyncio.TaskGroup() as group:
                for link in self.links:
                    group.create_task(self._run_link(link))
        except BaseExceptionGroup as group_error:
            for cancel in self._cancels:
                cancel.set()
            raise _first_cause(group_error) from None
        except asyncio.CancelledError:
            for cancel in self._cancels:
                cancel.set()
            raise
        return self.kept()

    def kept(self) -> list[Artifact]:
        return [*self.given, *(a for link in self.links for a in link.made if str(a.path) not in self.released)]

    def _inputs(self, link: Link) -> tuple[Artifact, ...]:
        given = self.given if link.reads_everything else ()
        return given + tuple(a for dep in link.depends_on for a in dep.made
                             if link.reads(a) and str(a.path) not in self.released)

    async def _run_link(self, link: Link) -> None:
        for dep in link.depends_on:
            await dep.done.wait()
        cancel = threading.Event()
        self._cancels.append(cancel)
        context = dataclasses.replace(self.context, inputs=self._inputs(link), cancel=cancel)
        events = self.context.events
        events.emit("export.start", kind=link.export.kind, reads=[a.path.name for a in context.inputs])
        started = time.monotonic()
        try:
            link.made = list(await link.exporter().run(link.export.config, context))
        except asyncio.CancelledError:
            cancel.set()
            raise
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            raise BuildError(f"{link.export.kind} export: no space left on device ({error.filename or context.output_dir})",
                             hint=NO_SPACE_HINT) from None
        self._release_inputs(link)
        events.emit("export.end", kind=link.export.kind, duration=round(time.monotonic() - started, 3),
                    artifacts=[str(a.path) for a in link.made], sizes=[a.path.stat().st_size for a in link.made])
        link.done.set()

    def _release_inputs(self, finished: Link) -> None:
        """Remove inputs that an export with keep_input: false consumed, once no other export still reads them."""
        for dep in finished.depends_on:
            for artifact in dep.made:
                readers = [l for l in self.links if dep in l.depends_on and not l.reads_everything
                           and l.reads(artifact)]
                if not readers or not all(l.done.is_set() or l is finished for l in readers):
                    continue
                if any(not l.export.keep_input for l in readers) and str(artifact.path) not in self.released:
                    artifact.path.unlink(missing_ok=True)
                    self.released.add(str(artifact.path))
                    self.context.events.emit("export.removed", path=str(artifact.path))


def _first_cause(group: BaseExceptionGroup) -> BaseException:
    """The error that failed the chain, rather than the cancellations it caused."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_cause(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]

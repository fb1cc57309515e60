"""The local sweeper: what dead runs left on this machine (`recipe sweep --local`, and each `recipe run`),
and the cache layers killed builds were writing.

Only runs whose claim (engine.leftovers.claims) is no longer locked count as dead, so
two runs sharing a machine never sweep each other. A dead run leaves QEMU
processes and the tools it was running (qemu-img), found by their command
lines naming its work dir, the work dir with its overlays, seeds and
keys, and half-written artifacts (.<name>.part-<pid>) in its output folder.

A platform whose tools keep things outside the work dir (vagrant: a libvirt domain, its volumes and network)
records them in the work dir and registers a RunLeftovers that finds them there; they are listed, and removed,
before the work dir. Were one not removed, the run's work dir and claim stay, so a later sweep tries again.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Callable, ClassVar

from engine.cache.layer_store import LayerStore
from engine.leftovers.claims import ClaimRecord, dead_claims
from engine.local_cache import layers_dir
from engine.leftovers.sweep import Leftover, Sweeper, SweepOptions
from engine.registry import Registry

HERE = "this machine"


class RunLeftovers:
    """What a platform's tools leave outside a dead run's work dir, found from what the work dir records.

    A platform module subclasses it with name=... (registering it) and the kinds of leftover it finds.
    find() must not raise (every `recipe run` starts with a sweep): what it cannot reach it still lists,
    and remove() then fails with why."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, name: str | None = None, **kwargs: object):
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            RUN_LEFTOVERS.add(name, cls)

    def find(self, work_dir: Path, build_id: str) -> list[Leftover]:  # pragma: no cover - interface
        raise NotImplementedError

    def remove(self, leftover: Leftover) -> None:  # pragma: no cover - interface
        """Remove one of the leftovers find() listed; raise OSError (or a subclass) with why if it stays."""
        raise NotImplementedError


RUN_LEFTOVERS: Registry[type[RunLeftovers]] = Registry("run leftovers")


def _run_leftovers() -> list[RunLeftovers]:
    return [hook() for hook in map(RUN_LEFTOVERS.get, RUN_LEFTOVERS) if hook is not None]


def _processes_using(work_dir: Path) -> list[tuple[int, str]]:
    """Processes whose command line names the work dir: QEMU (its disk and seed are there; it also
    leaves a pid file there), and a qemu-img convert or a tar writer that was exporting from it."""
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue                                    # gone meanwhile
        if str(work_dir) + "/" in cmdline:
            found.append((int(pid_dir.name), "QEMU process" if "qemu-system" in cmdline else "process"))
    return sorted(found, key=lambda p: p[1] != "QEMU process")


def leftovers_of(claim: Path, record: ClaimRecord | None) -> list[Leftover]:
    if record is None:
        return [Leftover("claim", str(claim), HERE, "", None)]
    found = []
    if record.work_dir and Path(record.work_dir).is_dir():
        work = Path(record.work_dir)
        found += [Leftover(kind, str(pid), HERE, record.build_id, None) for pid, kind in _processes_using(work)]
        found += [leftover for hook in _run_leftovers() for leftover in hook.find(work, record.build_id)]
        found.append(Leftover("work dir", str(work), HERE, record.build_id, None))
    output = Path(record.output)
    if output.is_dir():
        found += [Leftover("partial artifact", str(part), HERE, record.build_id, None)
                  for part in sorted(output.glob(f".*.part-{record.pid}"))]
    found.append(Leftover("claim", str(claim), HERE, record.build_id, None))
    return found


def unfinished_layers() -> list[Leftover]:
    """Cache layers a killed build was writing (engine.cache.layer_store): never recorded, so never used."""
    return [Leftover("unfinished cache layer", str(folder), HERE, writer, None)
            for folder, writer in LayerStore(layers_dir()).unfinished()]


class LocalSweeper(Sweeper, name="local"):
    def find(self, options: SweepOptions) -> list[Leftover]:
        return [leftover for claim, record in dead_claims()
                if options.include_kept or not (record and record.extra.get("kept"))
                for leftover in leftovers_of(claim, record)] + unfinished_layers()

    def remove(self, options: SweepOptions, leftovers: list[Leftover]) -> list[tuple[Leftover, str]]:
        failed = []
        stuck: set[str] = set()           # runs whose platform leftovers stay: their work dir and claim stay too
        hooks = _run_leftovers()
        for leftover in leftovers:        # in the order found: processes before the folder they use
            hook = next((h for h in hooks if leftover.kind in h.kinds), None)
            try:
                if hook is not None:
                    hook.remove(leftover)
                elif leftover.kind in ("work dir", "claim") and leftover.build_id in stuck:
                    raise OSError("kept, so that a later sweep finds what the run left outside it")
                else:
                    REMOVERS[leftover.kind](leftover.id)
            except OSError as error:
                failed.append((leftover, str(error)))
                if hook is not None:
                    stuck.add(leftover.build_id)
        return failed


def sweep_dead_runs(report: Callable[[str], None]) -> None:
    """What runs killed on this machine left (QEMU, work dirs, partial artifacts) goes before new builds start
    (`recipe run`, `recipe worker`); what --on-error=abort kept on purpose stays for `recipe sweep --local`.
    report(text) is told of each removal."""
    sweeper = LocalSweeper()
    options = SweepOptions(include_kept=False)
    leftovers = sweeper.find(options)
    failed = {id(leftover): why for leftover, why in sweeper.remove(options, leftovers)}
    for leftover in leftovers:
        if leftover.kind != "claim":
            outcome = f"could not remove: {failed[id(leftover)]}" if id(leftover) in failed else "removed"
            report(f"a dead run's {leftover.describe()}: {outcome}")


def _stop(pid_text: str) -> None:
    pid = int(pid_text)
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _remove_claim(path_text: str) -> None:
    """Only while holding its lock: a new run may have taken the same output meanwhile."""
    try:
        fd = os.open(path_text, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        Path(path_text).unlink(missing_ok=True)        # another sweep's, between our open and our lock
    except BlockingIOError:
        pass
    finally:
        os.close(fd)


def _remove_tree(path_text: str) -> None:
    """Another sweep (each `recipe run` starts with one) may be removing the same dead run's folder:
    what is already gone counts as removed."""
    try:
        shutil.rmtree(path_text)
    except FileNotFoundError:
        shutil.rmtree(path_text, ignore_errors=True)
        if Path(path_text).exists():
            raise


REMOVERS = {
    "QEMU process": _stop,
    "process": _stop,
    "work dir": _remove_tree,
    "partial artifact": lambda path: _remove_tree(path) if Path(path).is_dir() else Path(path).unlink(missing_ok=True),
    "claim": _remove_claim,
    "unfinished cache layer": lambda path: LayerStore(Path(path).parent).remove_unfinished(Path(path)),
}

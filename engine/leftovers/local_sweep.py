"""The local sweeper: what dead runs left on this machine (`recipe sweep --local`, and each `recipe run`),
and the cache layers killed builds were writing.

Only runs whose claim (engine.leftovers.claims) is no longer locked count as dead, so
two runs sharing a machine never sweep each other. A dead run leaves QEMU
processes and the tools it was running (qemu-img), found by their command
lines naming its work dir, the work dir with its overlays, seeds and
keys, and half-written artifacts (.<name>.part-<pid>) in its output folder.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import time
from pathlib import Path

from engine.cache.layer_store import LayerStore
from engine.leftovers.claims import ClaimRecord, dead_claims
from engine.local_cache import layers_dir
from engine.leftovers.sweep import Leftover, Sweeper, SweepOptions

HERE = "this machine"


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
        for leftover in leftovers:        # in the order found: processes before the folder they use
            try:
                REMOVERS[leftover.kind](leftover.id)
            except OSError as error:
                failed.append((leftover, str(error)))
        return failed


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

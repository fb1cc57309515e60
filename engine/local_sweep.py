"""The local sweeper: what dead runs left on this machine (`recipe sweep --local`, and each `recipe run`).

Only runs whose claim (engine.claims) is no longer locked count as dead, so
two runs sharing a machine never sweep each other. A dead run leaves QEMU
processes (found by the pid files in its work dir, and killed only if their
command line names that work dir), the work dir with its overlays, seeds and
keys, and half-written artifacts (.<name>.part-<pid>) in its output folder.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import time
from pathlib import Path

from engine.claims import ClaimRecord, dead_claims
from engine.sweep import Leftover, Sweeper, SweepOptions

HERE = "this machine"


def _qemu_pids(work_dir: Path) -> list[int]:
    pids = []
    for pid_file in work_dir.glob("**/*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue                                    # gone, or not a number
        if "qemu" in cmdline and str(work_dir) in cmdline:   # not a recycled pid
            pids.append(pid)
    return pids


def leftovers_of(claim: Path, record: ClaimRecord | None) -> list[Leftover]:
    if record is None:
        return [Leftover("claim", str(claim), HERE, "", None)]
    found = []
    if record.work_dir and Path(record.work_dir).is_dir():
        work = Path(record.work_dir)
        found += [Leftover("QEMU process", str(pid), HERE, record.build_id, None) for pid in _qemu_pids(work)]
        found.append(Leftover("work dir", str(work), HERE, record.build_id, None))
    output = Path(record.output)
    if output.is_dir():
        found += [Leftover("partial artifact", str(part), HERE, record.build_id, None)
                  for part in sorted(output.glob(f".*.part-{record.pid}"))]
    found.append(Leftover("claim", str(claim), HERE, record.build_id, None))
    return found


class LocalSweeper(Sweeper, name="local"):
    def find(self, options: SweepOptions) -> list[Leftover]:
        return [leftover for claim, record in dead_claims()
                if options.include_kept or not (record and record.extra.get("kept"))
                for leftover in leftovers_of(claim, record)]

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
        os.unlink(path_text)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)


REMOVERS = {
    "QEMU process": _stop,
    "work dir": lambda path: shutil.rmtree(path),
    "partial artifact": lambda path: Path(path).unlink(missing_ok=True),
    "claim": _remove_claim,
}

"""What a running build holds on this machine, in a claim file that it keeps locked while it runs.

A claim lives in <tmp>/recipe-runs/, named after the build's output folder, and
is flock'd by the build's process for as long as it runs (the kernel drops the
lock when the process dies, even by SIGKILL). It records the pid, the build,
the output folder and the work dir. So:
- a second run that would write the same output folder finds the lock taken
  and refuses, naming the run that holds it;
- a claim whose lock can be taken belongs to a dead run: `recipe sweep --local`
  (and the start of every `recipe run`) stops that run's QEMU processes and
  removes its work dir and half-written artifacts (engine.leftovers.local_sweep).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import BuildError

RUNS_DIR = Path(tempfile.gettempdir()) / "recipe-runs"


@dataclass
class ClaimRecord:
    pid: int
    build: str
    build_id: str
    output: str                   # the build's output folder
    work_dir: str | None = None   # its temporary folder: disks, keys, QEMU pid files
    extra: dict[str, Any] = field(default_factory=dict)


class Claim:
    """A held claim; release() when the build is over."""

    def __init__(self, path: Path, fd: int, record: ClaimRecord):
        self.path, self._fd, self.record = path, fd, record
        self._write()

    def _write(self) -> None:
        data = json.dumps(asdict(self.record)).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def note_work_dir(self, work_dir: Path) -> None:
        self.record.work_dir = str(work_dir)
        self._write()

    def keep(self) -> None:
        """--on-error=abort: what the build left is for a person to look at; only an explicit
        `recipe sweep --local` removes it, not the start of the next run."""
        self.record.extra["kept"] = True
        self._write()

    def release(self) -> None:
        if self._fd < 0:
            return
        self.path.unlink(missing_ok=True)      # unlinked while still locked: nobody takes a dying claim
        os.close(self._fd)
        self._fd = -1


def claim_path(output: Path) -> Path:
    key = hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:20]
    return RUNS_DIR / f"{key}.json"


def take(output: Path, build: str, build_id: str) -> Claim:
    """Claim an output folder for one build, or refuse clearly if a live run holds it."""
    RUNS_DIR.mkdir(mode=0o1777, parents=True, exist_ok=True)
    path = claim_path(output)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read(path)
        os.close(fd)
        who = f"pid {holder.pid}, build {holder.build_id}" if holder else "another process"
        raise BuildError(f"{output} is being written by another recipe run ({who})",
                         hint="wait for that run to finish, or give this one another --output-dir") from None
    return Claim(path, fd, ClaimRecord(pid=os.getpid(), build=build, build_id=build_id, output=str(output)))


def read(path: Path) -> ClaimRecord | None:
    try:
        return ClaimRecord(**json.loads(path.read_text() or "{}"))
    except (OSError, ValueError, TypeError):
        return None


def dead_claims() -> list[tuple[Path, ClaimRecord | None]]:
    """Claims whose run is gone (their lock can be taken). Live runs' claims are never listed."""
    found = []
    for path in sorted(RUNS_DIR.glob("*.json")) if RUNS_DIR.is_dir() else []:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue                            # released meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue                            # a live run
        finally:
            os.close(fd)
        found.append((path, read(path)))
    return found

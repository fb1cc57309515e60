"""The commands of a bootstrap, run one by one: output streamed to the log, progress moved by stages,
a failure quoting its last lines, and a cancelled step's whole process group stopped."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
from pathlib import Path
from typing import Callable, Sequence

from engine.errors import BuildError

Progress = Callable[[str, int, "int | None"], None]
Log = Callable[[str], None]
Status = Callable[[str], None]    # what the bootstrap is doing now, for the build's line on the console

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# the host tools a bootstrap runs, and the Debian package each comes from
TOOLS = {"debootstrap": "debootstrap", "chroot": "coreutils", "mke2fs": "e2fsprogs", "sfdisk": "fdisk",
         "mkfs.fat": "dosfstools", "mcopy": "mtools", "dd": "coreutils", "qemu-img": "qemu-utils",
         "umount": "mount", "sh": "dash"}
TERMINATE_GRACE = 10.0
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy")     # passed on to debootstrap and apt
TAIL_LINES = 25


# What each stage of a bootstrap typically costs, in seconds on a 2-core host (bookworm from a mirror):
# the progress moves by these shares (debootstrap's own by its phases, below).
STAGES = {"debootstrap": 200.0, "packages": 25.0, "configure": 2.0, "grub": 4.0, "filesystems": 12.0,
          "disk": 4.0, "convert": 12.0}
PROGRESS_TOTAL = 1000
LOG_EVERY = 0.1         # a progress line per phase change and per tenth of a phase


class Steps:
    """Runs the commands of a bootstrap, streaming their output to log; a failure names its step.

    The progress goes from 0 to PROGRESS_TOTAL over the stages in `stages` (keys of STAGES), each
    taking its share; `stage` starts one, `within` moves inside it."""

    def __init__(self, log: Log | None, progress: Progress | None, stages: Sequence[str] = ("debootstrap",),
                 status: Status | None = None):
        self.log_fn, self.progress, self.status_fn = log, progress, status
        weights = [STAGES[name] for name in stages]
        total = sum(weights)
        self.starts, self.shares, start = {}, {}, 0.0
        for name, weight in zip(stages, weights):
            self.starts[name], self.shares[name] = start / total, weight / total
            start += weight
        self.current: str | None = None
        self.done = -1

    def log(self, message: str) -> None:
        if self.log_fn is not None:
            self.log_fn(message)

    def say(self, what: str) -> str:
        """What the bootstrap does now: given to the status callback, and returned as the log's line."""
        if self.status_fn is not None:
            self.status_fn(f"bootstrap: {what}")
        return f"bootstrap: {what}"

    def stage(self, name: str, what: str) -> None:
        self.current = name
        self.log(self.say(what))
        self.within(0.0)

    def within(self, fraction: float) -> None:
        """Report progress at `fraction` (0..1) of the current stage; never backwards."""
        assert self.current is not None
        fraction = min(max(fraction, 0.0), 1.0)
        done = int(PROGRESS_TOTAL * (self.starts[self.current] + self.shares[self.current] * fraction))
        if done > self.done or self.done < 0:
            self.done = max(done, self.done)
            if self.progress is not None:
                self.progress("bootstrap", self.done, PROGRESS_TOTAL)

    def finish(self) -> None:
        self.done = PROGRESS_TOTAL
        if self.progress is not None:
            self.progress("bootstrap", PROGRESS_TOTAL, PROGRESS_TOTAL)

    async def run(self, step: str, argv: Sequence[str | Path], *, input: str | None = None,
                  env: dict[str, str] | None = None, hint: str = "",
                  lines: Callable[[str], str | None] | None = None) -> list[str]:
        """Run argv, each output line to log (through `lines`, which may rewrite or drop it); the last
        lines are in the error if it fails."""
        environment = {"PATH": SYSTEM_PATH, "LC_ALL": "C", "HOME": "/root", "TMPDIR": "/tmp",
                       **{k: v for k, v in os.environ.items() if k.lower() in PROXY_VARIABLES}, **(env or {})}
        try:
            process = await asyncio.create_subprocess_exec(
                *[str(a) for a in argv], stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=environment,
                start_new_session=True, limit=1 << 20)
        except FileNotFoundError:
            raise BuildError(f"bootstrap step {step!r} failed: {argv[0]} is not installed",
                             hint=f"install the Debian package {TOOLS.get(str(argv[0]), argv[0])}") from None
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        try:
            if input is not None:
                assert process.stdin is not None
                process.stdin.write(input.encode())
                await process.stdin.drain()
                process.stdin.close()
            assert process.stdout is not None
            async for raw in process.stdout:
                line: str | None = raw.decode("utf-8", errors="replace").rstrip()
                if line and lines is not None:
                    line = lines(line)
                if line:
                    tail.append(line)
                    self.log(line)
            status = await process.wait()
        except BaseException:
            await terminate(process)
            raise
        if status != 0:
            quoted = "\n".join(f"  | {line}" for line in tail) or "  | (no output)"
            raise BuildError(f"bootstrap step {step!r} failed (exit status {status}); its last output:\n{quoted}",
                             hint=hint or "see the lines above; the work directory was removed")
        return list(tail)


async def terminate(process: asyncio.subprocess.Process) -> None:
    """Stop process and everything it started (its session): TERM, then KILL."""
    if process.returncode is not None:
        return
    for sig, grace in ((signal.SIGTERM, TERMINATE_GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), grace)
            break
        except asyncio.TimeoutError:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)   # whatever is left of the group

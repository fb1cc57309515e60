"""A build is a list of small steps; each registers its cleanup before it acts.

After Packer's multistep: cleanups run in reverse order of registration on
success, on failure and on cancellation (Ctrl-C, SIGTERM) alike. With
--on-error=abort a failed build keeps what it made, for debugging, and says so.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from engine.console.events import Emitter
from engine.errors import BuildError
from engine.leftovers.claims import Claim
from engine.recipe.model import Build, Recipe
from engine.remote.connection import Connection
from engine.remote.ssh import Endpoint

if TYPE_CHECKING:                       # the cache's protocol names the play, which names this module's state
    from engine.build.task_cache import TaskCache


class OnError(str, Enum):
    CLEANUP = "cleanup"
    ABORT = "abort"
    ASK = "ask"            # at a terminal: retry the failed task, clean up, or abort (keep everything)


@dataclass(frozen=True)
class RunOptions:
    check: bool = False
    diff: bool = False
    on_error: OnError = OnError.CLEANUP
    output_dir: Path = Path("output")
    debug: bool = False
    pause: bool = False                      # --debug at a terminal: ask before each task
    tags: frozenset[str] = frozenset({"all"})    # --tags: run only tasks with these tags (Ansible's rules)
    skip_tags: frozenset[str] = frozenset()      # --skip-tags
    force_handlers: bool = False                 # --force-handlers: as the recipe's force_handlers: true
    no_cache: bool = False                       # --no-cache: resume from no cache layer (still write them)
    cache_max_size: int | None = None            # bytes the cache layers may take once a build is over


@dataclass
class BuildState:
    """What the steps of one build share. Steps fill it in as they go."""

    recipe: Recipe
    build: Build
    options: RunOptions
    events: Emitter
    work_dir: Path | None = None
    connection: Connection | None = None
    endpoint: Endpoint | None = None         # where connection goes: Ansible's ansible_host, ansible_port, ansible_user
    facts: dict[str, Any] = field(default_factory=dict)
    ansible_facts: dict[str, Any] = field(default_factory=dict)   # the same facts, as Ansible names them
    disk: Path | None = None                 # the machine's disk, on image platforms
    disk_format: str = "qcow2"
    artifacts: list[Path] = field(default_factory=list)
    started: float = field(default_factory=time.time)       # wall-clock start, for manifests
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "changed": 0, "skipped": 0, "failed": 0,
                                                             "cached": 0})
    cleanup: Cleanup | None = None          # what the build still has to release; set by run_steps
    claim: Claim | None = None              # the build's hold on its output folder (engine.leftovers.claims)
    keep_on_failure: bool = False           # --on-error=ask answered "abort": keep everything, as abort does
    task_cache: TaskCache | None = None     # the platform's layers: where to resume, checkpoints (engine.build.task_cache)


class Cleanup:
    """Reverse-order cleanups with names, so the console can say what it releases."""

    def __init__(self, events: Emitter):
        self._stack = AsyncExitStack()
        self._events = events
        self._failed = True
        self.pending: list[str] = []

    def push(self, what: str, release: Callable[[], Awaitable[Any]], only_on_failure: bool = False) -> None:
        """release runs at close, in reverse order; with only_on_failure, only if the build did not succeed
        (e.g. a half-made AMI is deregistered, a finished one is kept)."""
        async def run_and_report(*_exc: Any) -> None:
            if only_on_failure and not self._failed:
                self.pending.remove(what)
                return
            self._events.emit("cleanup", what=what)
            try:
                await release()
            except Exception as exc:  # a failing cleanup must not stop the others
                self._events.emit("warning", msg=f"cleanup of {what} failed: {exc}")
            finally:
                self.pending.remove(what)

        self.pending.append(what)
        self._stack.push_async_exit(run_and_report)

    async def close(self, succeeded: bool = False) -> None:
        self._failed = not succeeded
        await self._stack.aclose()

    def abandon(self) -> list[str]:
        """Forget every cleanup (--on-error=abort) and return what is left behind."""
        self._stack.pop_all()
        left, self.pending = self.pending, []
        return left


class Step(Protocol):
    name: str

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        ...


@dataclass
class BuildOutcome:
    name: str
    status: str                      # succeeded | failed | interrupted
    error: str = ""
    duration: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)


async def run_steps(state: BuildState, steps: list[Step]) -> BuildOutcome:
    events = state.events
    started = time.monotonic()
    cleanup = state.cleanup = Cleanup(events)
    status, error, left = "succeeded", "", []
    events.emit("build.start", platform=state.build.source.platform, build_id=state.build.info.id)
    try:
        for step in steps:
            events.emit("step.start", step=step.name)
            step_started = time.monotonic()
            await step.run(state, cleanup)
            events.emit("step.end", step=step.name, duration=round(time.monotonic() - step_started, 3))
    except asyncio.CancelledError:
        status, error = "interrupted", "interrupted"
        raise
    except BuildError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # an unexpected error still releases everything
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        if state.options.debug:
            import traceback
            error += "\n" + traceback.format_exc()
    finally:
        if status == "failed" and (state.options.on_error is OnError.ABORT or state.keep_on_failure):
            left = cleanup.abandon()
            if state.claim:
                state.claim.keep()
            if left:
                events.emit("warning", msg="--on-error=abort: left in place: " + "; ".join(reversed(left))
                            + " (`recipe sweep --local` removes them)")
        else:
            await cleanup.close(succeeded=status == "succeeded")
        outcome = BuildOutcome(state.build.info.name, status, error, time.monotonic() - started,
                               dict(state.counts), list(state.artifacts), left)
        events.emit("build.end", status=status, error=error, duration=round(outcome.duration, 3),
                    counts=outcome.counts, artifacts=[str(a) for a in outcome.artifacts])
    return outcome

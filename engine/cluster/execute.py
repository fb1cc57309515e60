"""A worker runs one delivered build: take the lease, unpack the bundle, compile, build, deliver, report.

This runs in a Celery pool process, one build at a time. Whatever happens, the build's cleanups run (a
cancelled build is an asyncio cancellation, as Ctrl-C is for a local run), the result is written once by the
attempt holding the lease, and the events reach the run's stream. What the build made stays in the worker's
store (engine.cluster.store); the submitter fetches it.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import redis

from engine.artifacts.manifest_file import read_entry
from engine.build.run import run_build
from engine.build.runner import BuildOutcome, OnError, RunOptions
from engine.cluster import keys
from engine.cluster.attempt import Keeper, Lease, wait_for_turn
from engine.cluster.broker import Broker
from engine.cluster.bundle_transfer import materialize
from engine.cluster.store import Store
from engine.cluster.stream import EventPublisher, publish
from engine.cluster.ticket import BuildResult, BuildTicket
from engine.console.events import EventBus
from engine.errors import BuildError, RecipeError
from engine.local_cache import layers_max_size
from engine.recipe.compile import CompileOptions, compile_recipe
from engine.recipe.model import Build, Recipe
from engine.secrets import Redactor

log = logging.getLogger("recipe.worker")
STOPPING = "the worker is stopping: the build goes back to the queue"


class Ending(str, Enum):
    DONE = "done"             # acknowledge the delivery: the build has a result (this attempt's or another's)
    REQUEUE = "requeue"       # the worker is stopping: hand the build back to the queue for another worker


@dataclass(frozen=True)
class WorkerContext:
    name: str
    broker: Broker
    store: Store
    bundles: Path             # where bundles are unpacked (engine.cluster.bundle.materialize)


def execute(data: Any, context: WorkerContext) -> Ending:
    client = context.broker.client()
    try:
        ticket = BuildTicket.from_json(data)
    except BuildError as exc:
        log.error("refused a delivery: %s", exc)
        return Ending.DONE
    lease = Lease(client, ticket.run, ticket.build, f"{context.name}#{uuid.uuid4().hex[:12]}")
    turn = wait_for_turn(lease, lambda holder: _note(client, ticket, context, f"already running on {holder}: "
                                                     "this delivery waits for it"))
    if turn == "done":
        return Ending.DONE
    if turn == "cancelled":
        _never_started(client, ticket, context)
        return Ending.DONE
    attempt = int(client.incr(keys.attempts(ticket.run, ticket.build)))
    client.expire(keys.attempts(ticket.run, ticket.build), keys.RUN_TTL)
    try:
        return Attempt(ticket, context, client, lease, attempt).run()
    finally:
        lease.release()       # a no-op once the result is written: finish() took the lease with it


class Attempt:
    def __init__(self, ticket: BuildTicket, context: WorkerContext, client: redis.Redis, lease: Lease, attempt: int):
        self.ticket, self.context, self.client, self.lease, self.attempt = ticket, context, client, lease, attempt
        self.redactor = Redactor()        # compile adds the recipe's secrets, as a local run's does
        self.root: Path | None = None
        self.publisher = EventPublisher(client, ticket.run, context.name, attempt, self._shown)
        self.bus = EventBus(redactor=self.redactor, sinks=[self.publisher, _log_line])
        self.events = self.bus.bind(build=ticket.build)

    def run(self) -> Ending:
        started = time.monotonic()
        self.events.emit("cluster.attempt", worker=self.context.name, attempt=self.attempt)
        log.info("%s: attempt %d of run %s", self.ticket.build, self.attempt, self.ticket.run)
        try:
            recipe, build = self._compile()
            keeper = Keeper(self.lease)
            outcome, why = asyncio.run(_build(recipe, build, self._options(), self.bus, keeper))
        except Exception as exc:    # a bundle gone, another release of recipe, a bug: the build fails, saying why
            return self._report(self._early_failure(exc, started))
        if why == STOPPING:
            self.events.emit("warning", msg=f"{self.context.name}: {STOPPING}")
            self.publisher.close()
            return Ending.REQUEUE
        if keeper.lost:
            log.warning("%s: %s; this attempt's result is dropped", self.ticket.build, keeper.reason)
            self.publisher.close()
            return Ending.DONE
        return self._report(outcome)

    def _compile(self) -> tuple[Recipe, Build]:
        root = self.root = materialize(self.ticket.bundle, self.client, self.context.bundles)
        ticket = self.ticket
        options = CompileOptions(var_assignments=ticket.var_assignments,
                                 var_files=tuple(root / p for p in ticket.var_files),
                                 roles_path=tuple(root / p for p in ticket.roles_path),
                                 environ=ticket.environ, started=ticket.started,
                                 build_ids={ticket.source: ticket.build_id})
        recipe = compile_recipe(root / ticket.recipe, options, self.redactor)
        build = next((b for b in recipe.builds if b.source.name == ticket.source), None)
        if build is None or build.info.name != ticket.build:
            raise BuildError(f"the bundled recipe has no source {ticket.source!r}",
                             hint="the bundle does not match the ticket: submit the run again")
        return replace(recipe, builds=(build,)), build

    def _options(self) -> RunOptions:
        settings = self.ticket.settings
        return RunOptions(check=settings.check, diff=settings.diff, on_error=OnError(settings.on_error),
                          output_dir=self.context.store.spool(self.ticket.run), debug=settings.debug,
                          tags=frozenset(settings.tags), skip_tags=frozenset(settings.skip_tags),
                          force_handlers=settings.force_handlers, no_cache=settings.no_cache,
                          cache_max_size=layers_max_size())

    def _early_failure(self, exc: Exception, started: float) -> BuildOutcome:
        """The build could not run here (its bundle gone from the broker, a recipe another release of recipe
        reads otherwise, an internal error): it fails with the message, as a failed step would end it."""
        if isinstance(exc, RecipeError):
            error = "the recipe is invalid on this worker:\n" + "\n".join(f"  {p}" for p in exc.problems)
        elif isinstance(exc, BuildError):
            error = str(exc)
        else:
            error = self.redactor.text(f"internal error on {self.context.name}: {type(exc).__name__}: {exc}")
            log.error("%s: %s", self.ticket.build, error)      # no traceback: its frames may hold secrets
        outcome = BuildOutcome(self.ticket.build, "failed", error, time.monotonic() - started)
        self.events.emit("build.end", status="failed", error=error, duration=round(outcome.duration, 3),
                         counts={}, artifacts=[])
        return outcome

    def _report(self, outcome: BuildOutcome) -> Ending:
        """Deliver what the build made, then write its result (if this attempt still holds the lease)."""
        spool = self.context.store.spool(self.ticket.run)
        try:
            location, files = self.context.store.deliver(spool / self.ticket.build, self.context.name)
        except BuildError as exc:       # the store is away or full: the build fails, its files stay in the spool
            outcome = replace(outcome, status="failed", error="\n".join(e for e in (outcome.error, str(exc)) if e))
            location, files = None, []
        result = BuildResult(
            build=self.ticket.build, status=outcome.status, worker=self.context.name, attempt=self.attempt,
            error=self._shown(self.redactor.text(outcome.error)), duration=round(outcome.duration, 3),
            counts=dict(outcome.counts), location=location.as_json() if location else None,
            files=[{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
            manifests=_manifests(outcome.artifacts, spool, self.ticket.build),
            left_behind=[self._shown(self.redactor.text(what)) for what in outcome.left_behind],
            spool=str(spool.resolve()))
        if self.lease.finish(result.to_text()):
            self.events.emit("cluster.result", worker=self.context.name, attempt=self.attempt,
                             status=outcome.status)
        else:
            log.warning("%s: another worker took this build over; this attempt's result is dropped",
                        self.ticket.build)
        self.publisher.close()
        return Ending.DONE

    def _shown(self, value: Any) -> Any:
        """Paths in the unpacked bundle as the submitter knows them: messages point at the user's files."""
        if self.root is None:
            return value
        inside, origin = str(self.root), self.ticket.origin.rstrip("/")
        if isinstance(value, str):
            return value.replace(inside + "/", origin + "/").replace(inside, origin or "/")
        if isinstance(value, dict):
            return {k: self._shown(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._shown(v) for v in value]
        return value


async def _build(recipe: Recipe, build: Build, options: RunOptions, bus: EventBus,
                 keeper: Keeper) -> tuple[BuildOutcome, str]:
    """Run the build; the keeper (the run cancelled, the lease lost) or SIGTERM (the worker stopping) cancels
    it, and its cleanups run as on Ctrl-C. Returns the outcome and why it was stopped, if it was."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(run_build(recipe, build, options, bus))
    reasons: list[str] = []

    def stop(reason: str) -> None:
        reasons.append(reason)
        task.cancel()

    previous = signal.getsignal(signal.SIGTERM)
    loop.add_signal_handler(signal.SIGTERM, stop, STOPPING)
    keeper.watch(lambda reason: loop.call_soon_threadsafe(stop, reason))
    try:
        return await task, ""
    except asyncio.CancelledError:
        why = reasons[0] if reasons else "interrupted"
        return BuildOutcome(build.info.name, "interrupted", why), why
    finally:
        keeper.over()
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)


def _manifests(artifacts: list[Path], spool: Path, build: str) -> list[dict[str, Any]]:
    """This build's entries of the run-level files it wrote outside its folder (the manifest export)."""
    found = []
    for path in artifacts:
        if path.resolve().is_relative_to((spool / build).resolve()) or path.suffix != ".json":
            continue
        recipe, entry = read_entry(path, build)
        if entry is not None:
            found.append({"path": str(path.resolve().relative_to(spool.resolve())), "recipe": recipe,
                          "entry": entry})
    return found


def _never_started(client: redis.Redis, ticket: BuildTicket, context: WorkerContext) -> None:
    """The run was stopped before this build began: say so, so the submitter stops waiting for it."""
    result = BuildResult(build=ticket.build, status="interrupted", worker=context.name, attempt=0,
                         error="stopped before it started")
    if client.set(keys.result(ticket.run, ticket.build), result.to_text(), ex=keys.RUN_TTL, nx=True):
        publish(client, ticket.run, context.name, 0, {"event": "cluster.result", "build": ticket.build,
                                                       "time": round(time.time(), 3), "status": "interrupted"})


def _note(client: redis.Redis, ticket: BuildTicket, context: WorkerContext, message: str) -> None:
    publish(client, ticket.run, context.name, 0, {"event": "warning", "build": ticket.build,
                                                   "time": round(time.time(), 3), "msg": message})


def _log_line(event: dict[str, Any]) -> None:
    """The worker's own log: a line when a build starts and ends (its events go to the submitter)."""
    if event.get("event") == "build.end":
        log.info("%s: %s in %.1fs", event.get("build"), event.get("status"), event.get("duration") or 0)


"""`recipe run --cluster`: send the builds to workers, show their events, fetch what they made.

The recipes were compiled and checked here already (an invalid one stops the run with exit code 2, as a local
run). Each build then goes, as a ticket, to the queue of the labels it needs, once a live worker offers them;
its bundle (the recipe's files) is in the broker first. Events arrive through the run's stream and go to the
same console, build.log and --json as a local run's, with the worker's name. A build's end is shown once its
artifacts have arrived under --output-dir and the manifest has its entry, so the recap, the exit code and the
files are those of a local run.

Ctrl-C (or SIGTERM) sets the run's cancel key: every worker stops its builds of this run, with their cleanups,
and the run waits for their results. A second one says what is still being stopped, and where.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from engine.artifacts.manifest_file import merge_entry
from engine.build.runner import BuildOutcome
from engine.cluster import keys
from engine.cluster.app import BUILD_TASK, HIDDEN, make_app
from engine.cluster.broker import Broker, Patience
from engine.cluster.bundle import Bundle, collect
from engine.cluster.bundle_transfer import upload
from engine.cluster.labels import build_needs, queue_name
from engine.cluster.presence import WorkerCard, live_workers
from engine.cluster.store import Location, StoredFile, fetch
from engine.cluster.stream import StreamEvent, read
from engine.cluster.ticket import BuildResult, BuildTicket, RunSettings
from engine.console.events import EventBus
from engine.errors import BuildError
from engine.leftovers import claims
from engine.recipe.model import Build, Recipe
from engine.units import format_duration

CHECK_EVERY = 3.0        # seconds between looks at workers, leases and results besides the stream
RESEND_LOST = 180.0      # seconds after a lost attempt with no new one, before the build is sent again
FETCHES = 4              # artifact fetches at once


@dataclass(frozen=True)
class ClusterOptions:
    broker: Broker
    output_dir: Path
    settings: RunSettings
    timeout: float = 300.0                   # --cluster-timeout: a broker outage, a build no live worker can take
    parallel: int = 0
    fail_fast: bool = False
    var_assignments: tuple[str, ...] = ()
    var_files: tuple[Path, ...] = ()
    roles_path: tuple[Path, ...] = ()


@dataclass
class Remote:
    """One build of the run, as the submitter follows it."""

    recipe: Recipe
    build: Build
    ticket: BuildTicket
    needs: frozenset[str]
    state: str = "waiting"          # waiting (not sent) | sent | fetching | done
    attempt: int = 0
    worker: str = ""
    since: float = field(default_factory=time.monotonic)   # when it began waiting for a worker that can take it
    held_end: dict[str, Any] | None = None                 # its build.end, shown once the artifacts are here
    claim: claims.Claim | None = None
    outcome: BuildOutcome | None = None
    fetching: Future | None = None
    lost: float | None = None                              # when its attempt's lease lapsed with no result

    @property
    def name(self) -> str:
        return self.build.info.name


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


class ClusterRun:
    def __init__(self, recipes: list[Recipe], options: ClusterOptions, bus: EventBus):
        self.recipes, self.options, self.bus = recipes, options, bus
        self.run = new_run_id()
        self.client: redis.Redis = options.broker.client()
        self.patience = Patience(options.broker, options.timeout,
                                 lost=lambda text: bus.emit("warning", msg=text),
                                 back=self._broker_back)
        self.app = make_app(options.broker)
        self.remotes: list[Remote] = []
        self.workers: list[WorkerCard] = []
        self.last_event = "0"
        self.stopping = ""               # why the run stops early: "interrupted" or "fail-fast"
        self.signals: list[str] = []     # SIGINT, SIGTERM received: handled by the loop, not in the handler
        self.signals_seen = 0
        self.looked = 0.0                # when workers, leases and results were last looked at
        self.resend = False              # the broker came back: send again what had not begun
        self.fetcher = ThreadPoolExecutor(FETCHES, thread_name_prefix="recipe-fetch")

    # -- the run ---------------------------------------------------------------------------------------

    def execute(self) -> list[BuildOutcome] | None:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._prepare()
            while any(r.state != "done" for r in self.remotes):
                self._step()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._close()
        for recipe in self.recipes:
            names = {b.info.name for b in recipe.builds}
            self.bus.emit("run.end", recipe=recipe.name,
                          statuses={r.name: r.outcome.status for r in self.remotes if r.name in names and r.outcome})
        if self.stopping == "interrupted":
            return None
        return [r.outcome for r in self.remotes if r.outcome is not None]

    def _prepare(self) -> None:
        for recipe in self.recipes:
            bundle = self._send_bundle(recipe)
            for build in recipe.builds:
                self.remotes.append(Remote(recipe, build, self._ticket(recipe, build, bundle), build_needs(build)))
        for recipe in self.recipes:
            self.bus.emit("run.start", recipe=recipe.name, builds=[b.info.name for b in recipe.builds],
                          check=self.options.settings.check, cluster=self.run, broker=self.options.broker.shown)
        for remote in self.remotes:
            try:
                remote.claim = claims.take(self.options.output_dir / remote.name, remote.name, remote.ticket.build_id)
            except BuildError as exc:
                self._finish(remote, BuildOutcome(remote.name, "failed", str(exc)))
        self.workers = self.patience.call(lambda: live_workers(self.client))

    def _send_bundle(self, recipe: Recipe) -> Bundle:
        bundle = collect(recipe, extra=self.options.var_files, exclude=(self.options.output_dir,))
        for path, size in bundle.skipped:
            self.bus.emit("warning", msg=f"{recipe.name}: {path} ({size / 2 ** 20:.0f} MiB) is too big to send to "
                                         "workers; a build that reads it needs it at the same path on the worker")
        self.patience.call(lambda: upload(bundle, self.client))
        return bundle

    def _ticket(self, recipe: Recipe, build: Build, bundle: Bundle) -> BuildTicket:
        roles_dirs = [*self.options.roles_path,
                      *(Path(p) for p in os.environ.get("RECIPE_ROLES_PATH", "").split(os.pathsep) if p)]
        return BuildTicket(
            run=self.run, build=build.info.name, source=build.source.name, build_id=build.info.id,
            started=float(build.info.timestamp), bundle=bundle.digest, recipe=bundle.relative(recipe.path),
            origin=str(bundle.root), var_assignments=self.options.var_assignments,
            var_files=tuple(bundle.relative(p.resolve()) for p in self.options.var_files),
            roles_path=tuple(_inside(bundle, roles_dirs)),
            environ={k: v for k, v in os.environ.items() if k.startswith("RECIPE_VAR_")},
            settings=self.options.settings, needs=tuple(sorted(build_needs(build))))

    def _step(self) -> None:
        self._on_signals()
        if self.resend:
            self._resend_unstarted()
        self._send_what_can_go()
        for event in self.patience.call(lambda: read(self.client, self.run, self.last_event, block=1.0)):
            self.last_event = event.id
            self._on_event(event)
        self._look_around()
        for remote in self.remotes:
            if remote.fetching is not None and remote.fetching.done():
                self._arrived(remote)

    def _broker_back(self, gone: float) -> None:
        self.bus.emit("warning", msg=f"the broker answers again (after {format_duration(gone)})")
        self.resend = True

    def _resend_unstarted(self) -> None:
        """After an outage, builds sent but not yet begun are sent again: a broker that came back without its
        queues would never hand them out. A second delivery of one that still is queued is harmless: the first
        to take the build's lease runs it, the other finds its result and ends."""
        self.resend = False
        for remote in self.remotes:
            if remote.state == "sent" and not remote.attempt and not self.stopping:
                self._send(remote)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signals.append(signal.Signals(signum).name)

    def _on_signals(self) -> None:
        """The first Ctrl-C stops the run; another one says what is still being stopped, and where."""
        while self.signals_seen < len(self.signals):
            name = self.signals[self.signals_seen]
            self.signals_seen += 1
            if self.stopping != "interrupted":
                self.bus.emit("interrupt", signal=name, msg="stopping the builds on the workers, with their cleanups")
                self._stop("interrupted")
                continue
            busy = [f"{r.name} on {r.worker or 'a worker'}" for r in self.remotes if r.state in ("sent", "fetching")]
            self.bus.emit("warning", msg="still stopping: " + ("; ".join(busy) if busy else "almost done"))

    def _stop(self, why: str) -> None:
        """Stop the run: workers stop its builds (with their cleanups); builds not sent yet never start."""
        self.stopping = why
        self.patience.call(lambda: self.client.set(keys.cancel(self.run), why, ex=keys.RUN_TTL))
        for remote in self.remotes:
            if remote.state == "waiting":
                self._finish(remote, self._stopped(remote, "stopped before it started"))

    def _stopped(self, remote: Remote, error: str) -> BuildOutcome:
        if self.stopping == "fail-fast":
            return BuildOutcome(remote.name, "cancelled", "stopped by --fail-fast")
        return BuildOutcome(remote.name, "interrupted", error)

    # -- sending ---------------------------------------------------------------------------------------

    def _send_what_can_go(self) -> None:
        if self.stopping:
            return
        in_flight = sum(r.state in ("sent", "fetching") for r in self.remotes)
        for remote in self.remotes:
            if remote.state != "waiting" or (self.options.parallel and in_flight >= self.options.parallel):
                continue
            if any(card.offers(remote.needs) for card in self.workers):
                self._send(remote)
                in_flight += 1
            elif time.monotonic() - remote.since > self.options.timeout:
                self._finish(remote, BuildOutcome(remote.name, "failed", self._nobody_for(remote),
                                                  time.monotonic() - remote.since))

    def _send(self, remote: Remote) -> None:
        queue = queue_name(remote.needs)
        self.patience.call(lambda: self.app.send_task(
            BUILD_TASK, args=[remote.ticket.as_json()], queue=queue, task_id=f"{self.run}.{remote.name}",
            argsrepr=HIDDEN, kwargsrepr="{}", retry=False))
        remote.state, remote.since = "sent", time.monotonic()
        self.bus.emit("cluster.queued", build=remote.name, queue=queue)

    def _nobody_for(self, remote: Remote) -> str:
        needs = ",".join(sorted(remote.needs))
        if not self.workers:
            return (f"no worker is connected to the broker {self.options.broker.shown} (waited "
                    f"{format_duration(self.options.timeout)}); start one with `recipe worker --broker ...`")
        offered = "; ".join(card.shown() for card in self.workers)
        return (f"no live worker offers {needs} (waited {format_duration(self.options.timeout)}; workers: {offered}); "
                f"start one that does, e.g. `recipe worker --labels {needs}`")

    # -- events and checks -----------------------------------------------------------------------------

    def _on_event(self, item: StreamEvent) -> None:
        event = dict(item.event)
        remote = next((r for r in self.remotes if r.name == event.get("build")), None)
        if remote is None or remote.state == "done":
            return
        if item.attempt and item.attempt < remote.attempt:
            return                                   # a lost attempt's late words
        kind = event.get("event")
        if kind == "cluster.attempt":
            self._attempt_began(remote, item)
        event["worker"] = item.worker
        if kind == "build.end":
            remote.held_end = event
            return
        if kind == "cluster.result":
            self._result_written(remote)
            return
        self.bus.emit(str(kind), **{k: v for k, v in event.items() if k != "event"})

    def _attempt_began(self, remote: Remote, item: StreamEvent) -> None:
        if remote.attempt and item.attempt > remote.attempt:
            self.bus.emit("warning", build=remote.name, msg=f"attempt {item.attempt} on {item.worker} (attempt "
                                                            f"{remote.attempt} on {remote.worker} did not finish)")
        remote.attempt, remote.worker, remote.held_end, remote.lost = item.attempt, item.worker, None, None

    def _look_around(self) -> None:
        """Every few seconds: the live workers, results whose stream event went missing, lost attempts."""
        now = time.monotonic()
        if now - self.looked < CHECK_EVERY:
            return
        self.looked = now
        self.workers = self.patience.call(lambda: live_workers(self.client))
        for remote in [r for r in self.remotes if r.state == "sent"]:
            self._check_sent(remote)

    def _check_sent(self, remote: Remote) -> None:
        if self.patience.call(lambda: self.client.exists(keys.result(self.run, remote.name))):
            self._result_written(remote)
            return
        running = self.patience.call(lambda: self.client.exists(keys.lease(self.run, remote.name)))
        if running:
            remote.since = time.monotonic()
            return
        if self.stopping and not remote.attempt:      # still queued: a worker that takes it finds it cancelled
            self._finish(remote, self._stopped(remote, "stopped before it started"))
            return
        if remote.attempt and remote.worker:          # started, then its lease lapsed: the worker is gone
            self.bus.emit("warning", build=remote.name, msg=f"{remote.worker} was lost while building "
                                                            f"{remote.name}: it goes back to the queue")
            remote.worker, remote.lost = "", time.monotonic()
            if self.stopping:
                self._finish(remote, self._stopped(remote, "its worker was lost while it stopped"))
            return
        if remote.lost is not None and time.monotonic() - remote.lost > RESEND_LOST:
            # Celery hands a lost worker's build out again (after its visibility timeout); should that not come
            # (a worker that acknowledged it and died), it is sent again: a second delivery is harmless
            self.bus.emit("warning", build=remote.name, msg=f"{remote.name} was not taken up again: sending it again")
            remote.lost = None
            self._send(remote)
            return
        if not any(card.offers(remote.needs) for card in self.workers) and \
                time.monotonic() - remote.since > self.options.timeout:
            self._finish(remote, BuildOutcome(remote.name, "failed", self._nobody_for(remote),
                                              time.monotonic() - remote.since))

    # -- results and artifacts -------------------------------------------------------------------------

    def _result_written(self, remote: Remote) -> None:
        if remote.state != "sent":
            return
        text = self.patience.call(lambda: self.client.get(keys.result(self.run, remote.name)))
        if text is None:
            return
        result = BuildResult.from_text(text)
        remote.state, remote.worker = "fetching", result.worker or remote.worker
        remote.fetching = self.fetcher.submit(self._fetch, remote, result)

    def _fetch(self, remote: Remote, result: BuildResult) -> tuple[BuildResult, list[Path], str]:
        """In a thread: the build's files into its output folder, its manifest entries merged."""
        try:
            local: list[Path] = []
            if result.location and result.files:
                local = fetch(Location.from_json(result.location), [StoredFile(**f) for f in result.files],
                              self.options.output_dir / remote.name)
            for manifest in result.manifests:
                recipe = remote.recipe
                merge_entry(self.options.output_dir / manifest["path"], manifest["entry"],
                            {"name": recipe.name, "path": str(recipe.path), "digest": recipe.digest})
                local.append(self.options.output_dir / manifest["path"])
            return result, local, ""
        except (BuildError, OSError) as exc:
            return result, [], str(exc)

    def _arrived(self, remote: Remote) -> None:
        assert remote.fetching is not None
        result, local, problem = remote.fetching.result()
        remote.fetching = None
        status, error = result.status, result.error
        if problem:
            status, error = "failed", "\n".join(e for e in (error, f"its artifacts did not arrive: {problem}") if e)
        outcome = BuildOutcome(remote.name, status, error, result.duration, dict(result.counts), local,
                               list(result.left_behind))
        if status == "interrupted" and self.stopping:
            outcome = dataclasses.replace(self._stopped(remote, error), duration=result.duration,
                                          counts=dict(result.counts), artifacts=local)
        end = dict(remote.held_end or {"event": "build.end", "worker": result.worker})
        end.update(status=outcome.status, error=outcome.error, duration=round(outcome.duration, 3),
                   counts=outcome.counts, artifacts=self._here(end.get("artifacts") or [], result) if local else [])
        self.bus.emit("build.end", **{k: v for k, v in end.items() if k not in ("event", "build")},
                      build=remote.name)
        self._finish(remote, outcome)

    def _here(self, artifacts: list[str], result: BuildResult) -> list[str]:
        """The artifacts the build's exports made, as the worker named them, named where they are now."""
        spool = result.spool.rstrip("/") + "/"
        return [str(self.options.output_dir / path[len(spool):]) if result.spool and path.startswith(spool)
                else path for path in artifacts]

    def _finish(self, remote: Remote, outcome: BuildOutcome) -> None:
        if remote.outcome is None and remote.held_end is None and remote.state in ("waiting", "sent"):
            self.bus.emit("build.end", build=remote.name, status=outcome.status, error=outcome.error,
                          duration=round(outcome.duration, 3), counts=outcome.counts, artifacts=[])
        remote.outcome, remote.state = outcome, "done"
        if remote.claim is not None:
            remote.claim.release()
            remote.claim = None
        if self.options.fail_fast and outcome.status == "failed" and not self.stopping and \
                any(r.state != "done" for r in self.remotes):
            self.bus.emit("warning", msg=f"{remote.name} failed: stopping the other builds (--fail-fast)")
            self._stop("fail-fast")

    def _close(self) -> None:
        """Whatever ended the run, a delivery of it still queued must never start later: the cancel key says so."""
        self.fetcher.shutdown(wait=True)
        for remote in self.remotes:
            if remote.claim is not None:
                remote.claim.release()
        try:
            self.client.set(keys.cancel(self.run), self.stopping or "the run is over", ex=keys.RUN_TTL)
        except redis.RedisError:
            pass                                     # the broker is gone: the failure says so already


def _inside(bundle: Bundle, folders: list[Path]) -> list[str]:
    """The folders (roles paths) that the bundle holds, as bundle paths."""
    found = []
    for folder in folders:
        try:
            found.append(bundle.relative(folder.resolve()))
        except ValueError:
            continue                                 # none of its roles is used: not in the bundle
    return found


def run_on_cluster(recipes: list[Recipe], options: ClusterOptions, bus: EventBus) -> list[BuildOutcome] | None:
    """The builds' outcomes, or None if the run was interrupted."""
    return ClusterRun(recipes, options, bus).execute()

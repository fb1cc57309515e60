"""`recipe worker`: a Celery worker that runs recipe builds, and nothing else.

On start it removes what killed runs on this host left (as `recipe run` does), works out what it offers
(labels) and how many builds it takes at once (slots), puts up its card, and consumes the queues its labels
cover (engine.cluster.labels). Each build runs in a pool process of its own (engine.cluster.execute).

Stopping: SIGTERM or Ctrl-C is Celery's warm shutdown (the running builds finish, no new one starts); a second
Ctrl-C or SIGQUIT is a cold shutdown: the running builds are stopped, run their cleanups and go back to the queue.
"""
from __future__ import annotations

import logging
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from celery.exceptions import Reject

from engine.cluster.app import ALLOWED_TASKS, BUILD_TASK, make_app
from engine.cluster.broker import OUTAGE_ERRORS, Broker
from engine.cluster.execute import STOPPING, Ending, WorkerContext, execute
from engine.cluster.labels import default_slots, detect_labels, queues_for
from engine.cluster.presence import Presence, WorkerCard, claim_name
from engine.cluster.store import open_store
from engine.errors import UsageError
from engine.leftovers.local_sweep import sweep_dead_runs
from engine.local_cache import default_cache_dir
from engine.registry import load_plugins

log = logging.getLogger("recipe.worker")


@dataclass(frozen=True)
class WorkerOptions:
    broker: Broker
    name: str | None = None                  # default recipe@<host>
    slots: int | None = None                 # default: labels.default_slots
    labels: frozenset[str] | None = None     # default: labels.detect_labels
    output: Path | None = None               # a folder store (default ./output)...
    store: str | None = None                 # ...or s3://bucket/prefix
    visibility_timeout: float = 60.0         # a dead worker's builds are handed out again after this long
    restore_every: float = 10.0              # how often a worker looks for such builds


def serve(options: WorkerOptions) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)     # every channel's opening: the events say enough
    load_plugins()                             # the platforms (labels), the exports and task modules (builds)
    store = open_store(options.output, options.store)
    sweep_dead_runs(lambda text: log.warning("%s", text))
    client = options.broker.client()
    _wait_for_broker(client, options.broker)
    name = options.name or f"recipe@{socket.gethostname()}"
    name = name if "@" in name else f"{name}@{socket.gethostname()}"
    labels = options.labels or detect_labels(default_cache_dir() / "accelerator.json")
    slots = options.slots or default_slots(store.root)
    card = WorkerCard(name=name, labels=tuple(sorted(labels)), slots=slots)
    other = claim_name(client, card)
    if other is not None:
        raise UsageError(f"a worker named {name} is already running (pid {other.pid} on {other.host})",
                         hint="give this one another --name")
    # from here on, the card comes down however the worker ends
    presence = Presence(client, card, options.visibility_timeout)
    try:
        app = make_app(options.broker, options.visibility_timeout, options.restore_every)
        register(app, WorkerContext(name=name, broker=options.broker, store=store,
                                    bundles=default_cache_dir() / "bundles"))
        queues = queues_for(labels)
        log.info("worker %s: labels %s, %d slot(s), %d queue(s), artifacts to %s, broker %s", name,
                 ",".join(card.labels), slots, len(queues), store.shown, options.broker.shown)
        presence.start()
        worker = app.Worker(hostname=name, pool="prefork", concurrency=slots, queues=queues, loglevel="INFO",
                            without_heartbeat=True, without_mingle=True, without_gossip=True, optimization="fair",
                            quiet=True)
        worker.start()
        return int(worker.exitcode or 0)
    finally:
        presence.stop()


def register(app: Celery, context: WorkerContext) -> None:
    """recipe's build task, and no other: Celery's built-in tasks (chains, chords, ...) are dropped, so a message
    naming any other task is refused as unregistered."""
    @app.task(name=BUILD_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def build(_task: Any, ticket: Any) -> None:
        if execute(ticket, context) is Ending.REQUEUE:
            raise Reject(STOPPING, requeue=True)

    for task_name in [n for n in app.tasks if n not in ALLOWED_TASKS]:
        app.tasks.unregister(task_name)


def _wait_for_broker(client: Any, broker: Broker) -> None:
    """A worker started before its broker waits for it, as Celery would."""
    said = 0.0
    while True:
        try:
            client.ping()
            return
        except OUTAGE_ERRORS as exc:
            if time.monotonic() - said > 30:
                log.warning("waiting for the broker %s: %s", broker.shown, exc)
                said = time.monotonic()
            time.sleep(1.0)

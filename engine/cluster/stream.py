"""Every event of a cluster run, in one Redis stream per run (engine.cluster.keys.events).

A worker publishes its builds' events (already masked by its EventBus) with its name and the attempt; the
submitter reads them in order and hands them to its own console, build.log and --json. A stream rather than
pub/sub: a submitter that loses the broker for a while reads on from where it was, and misses nothing.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import redis

from engine.cluster import keys
from engine.cluster.broker import OUTAGE_ERRORS

MAX_WAITING = 100_000     # events held while the broker is away; the oldest are dropped past this
MAX_LENGTH = 1_000_000    # a stream's approximate cap: a day of a large run's events
BATCH = 200


@dataclass(frozen=True)
class StreamEvent:
    id: str
    worker: str
    attempt: int
    event: dict[str, Any]


class EventPublisher:
    """A sink of a worker's EventBus. A thread writes the events, so a slow or absent broker never holds up the
    build; close() waits (a while) for the last ones, build.end among them."""

    def __init__(self, client: redis.Redis, run: str, worker: str, attempt: int,
                 translate: Callable[[Any], Any] = lambda value: value):
        self._client, self._key = client, keys.events(run)
        self._worker, self._attempt, self._translate = worker, attempt, translate
        self._waiting: queue.Queue[dict[str, Any] | None] = queue.Queue(MAX_WAITING)
        self._thread = threading.Thread(target=self._send_all, name="recipe-events", daemon=True)
        self._thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        self._put(self._translate(event))

    def close(self, timeout: float = 30.0) -> None:
        self._put(None)
        self._thread.join(timeout)

    def _put(self, item: dict[str, Any] | None) -> None:
        """Never blocks: the broker away for long, the console misses the oldest lines (build.end is the newest)."""
        while True:
            try:
                self._waiting.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._waiting.get_nowait()
                except queue.Empty:
                    pass

    def _send_all(self) -> None:
        done = False
        while not done:
            batch = [self._waiting.get()]
            while len(batch) < BATCH and not self._waiting.empty():
                batch.append(self._waiting.get_nowait())
            done = batch[-1] is None
            events = [e for e in batch if e is not None]
            while events and not self._send(events):
                time.sleep(1.0)

    def _send(self, events: list[dict[str, Any]]) -> bool:
        try:
            _append(self._client, self._key, self._worker, self._attempt, events)
            return True
        except OUTAGE_ERRORS:
            return False


def publish(client: redis.Redis, run: str, worker: str, attempt: int, event: dict[str, Any]) -> None:
    """One event, now (the worker's own notes: a build picked up, a delivery waiting for another worker's lease)."""
    _append(client, keys.events(run), worker, attempt, [event])


def _append(client: redis.Redis, key: str, worker: str, attempt: int, events: list[dict[str, Any]]) -> None:
    """Events at the stream's end, and its expiry renewed: a run's stream lasts a day after its last event."""
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(key, {"worker": worker, "attempt": attempt, "event": json.dumps(event, default=str)},
                  maxlen=MAX_LENGTH, approximate=True)
    pipe.expire(key, keys.RUN_TTL)
    pipe.execute()


def read(client: redis.Redis, run: str, after: str, block: float) -> list[StreamEvent]:
    """The events after id `after` ("0": from the start), waiting up to `block` seconds for the first."""
    answer = client.xread({keys.events(run): after}, count=1000, block=max(1, int(block * 1000)))
    found = []
    for _stream, entries in answer or []:
        for entry_id, fields in entries:
            found.append(StreamEvent(id=_text(entry_id), worker=_text(fields.get(b"worker", b"")),
                                     attempt=int(fields.get(b"attempt", 0)),
                                     event=json.loads(fields.get(b"event", b"{}"))))
    return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""A live worker's card in the broker, and the deliveries it keeps to itself while it lives.

Every few seconds the worker's main process
- rewrites its card (name, host, labels, slots), which expires soon after the worker stops or dies, so the
  submitter can tell a build that no live worker can take;
- refreshes kombu's delivery time of every message it holds (running or reserved), so Redis hands a message
  out again (after Celery's visibility_timeout) only when the worker holding it has stopped refreshing: it
  died. A build may then run for hours without a second delivery, and a lost worker's build is taken up
  again within a minute or two.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field

import redis
from celery.worker import state as celery_state

from engine.cluster import keys
from engine.cluster.app import UNACKED_INDEX
from engine.cluster.broker import OUTAGE_ERRORS

CARD_TTL = 20          # seconds a card outlives its worker's last refresh
EVERY = 5.0            # seconds between refreshes


@dataclass(frozen=True)
class WorkerCard:
    name: str
    labels: tuple[str, ...]
    slots: int
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)

    def offers(self, needs: frozenset[str]) -> bool:
        return needs <= set(self.labels)

    def shown(self) -> str:
        return f"{self.name} [{','.join(self.labels)}]"


def live_workers(client: redis.Redis) -> list[WorkerCard]:
    cards = []
    for key in client.scan_iter(match=keys.WORKERS_PATTERN, count=500):
        try:
            text = client.get(key)
        except redis.ResponseError:
            continue               # not a string: not a card
        if not text:
            continue               # expired between the scan and the read
        try:
            data = json.loads(text)
            cards.append(WorkerCard(**{**data, "labels": tuple(data["labels"])}))
        except (ValueError, TypeError, KeyError):
            continue               # not a card of this release
    return sorted(cards, key=lambda card: card.name)


def claim_name(client: redis.Redis, card: WorkerCard) -> WorkerCard | None:
    """Put up this worker's card, unless a live worker of the same name has one: that one is returned."""
    if client.set(keys.worker(card.name), _text(card), ex=CARD_TTL, nx=True):
        return None
    other = next((c for c in live_workers(client) if c.name == card.name), None)
    if other is None or (other.host, other.pid) == (card.host, card.pid):
        client.set(keys.worker(card.name), _text(card), ex=CARD_TTL)
        return None
    return other


class Presence(threading.Thread):
    """The main process's thread that keeps the card and the deliveries fresh; stop() takes the card down."""

    def __init__(self, client: redis.Redis, card: WorkerCard, visibility_timeout: float = 60.0):
        super().__init__(name="recipe-presence", daemon=True)
        self.client, self.card = client, card
        # a few refreshes per visibility timeout: a delivery must never look abandoned between two
        self.every = min(EVERY, visibility_timeout / 3)
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.every):
            try:
                self.refresh()
            except OUTAGE_ERRORS:
                pass           # the broker is away; Celery reconnects, and so do we on the next round

    def refresh(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(keys.worker(self.card.name), _text(self.card), ex=CARD_TTL)
        now = time.time()
        for tag in held_deliveries():
            pipe.zadd(UNACKED_INDEX, {tag: now}, xx=True)    # xx: never bring back one already acknowledged
        pipe.execute()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(self.every + 30)          # a refresh under way would put the card back after the delete
        try:
            self.client.delete(keys.worker(self.card.name))
        except OUTAGE_ERRORS:
            pass


def held_deliveries() -> list[str]:
    """The delivery tags of the messages this worker process holds: running and reserved builds."""
    requests = list(celery_state.active_requests) + list(celery_state.reserved_requests)
    tags = {getattr(getattr(r, "message", None), "delivery_tag", None) for r in requests}
    return sorted(str(tag) for tag in tags if tag)


def _text(card: WorkerCard) -> str:
    return json.dumps(asdict(card))

"""One attempt at a build on a worker: the lease that makes it the only one, and the thread that watches it.

The lease is a key holding the attempt's token, set only if absent and expiring unless refreshed. So:
- a second delivery of the same build (the broker handed it out again) waits while a live attempt holds the
  lease, and ends without running if that attempt writes a result;
- an attempt that could not refresh its lease (its worker froze, or lost the broker long enough that another
  took over) stops its build rather than race the new one, and its result is not written (fencing).
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import redis

from engine.cluster import keys
from engine.cluster.broker import OUTAGE_ERRORS

LEASE_TTL = 30.0        # seconds an attempt's lease lasts without a refresh: how soon a dead worker's is free
EVERY = 2.0             # seconds between a keeper's rounds

_REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# the result is written only by the lease's holder, and the lease goes with it
_FINISH = ("if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end "
           "redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3]) redis.call('del', KEYS[1]) return 1")


class Lease:
    def __init__(self, client: redis.Redis, run: str, build: str, token: str):
        self.client, self.run, self.build, self.token = client, run, build, token
        self.key = keys.lease(run, build)

    def take(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=int(LEASE_TTL * 1000)))

    def refresh(self) -> bool:
        return bool(self.client.eval(_REFRESH, 1, self.key, self.token, int(LEASE_TTL * 1000)))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.token)

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def finish(self, result: str) -> bool:
        """Write the build's result if this attempt still holds the lease; False if another took over."""
        return bool(self.client.eval(_FINISH, 2, self.key, keys.result(self.run, self.build), self.token, result,
                                     keys.RUN_TTL))


def wait_for_turn(lease: Lease, waiting: Callable[[str], None]) -> str:
    """'run' once the lease is ours; 'done' if another attempt wrote the result meanwhile; 'cancelled' if the
    submitter stopped the run. waiting(holder) is told once when another live attempt holds the lease."""
    told = False
    while True:           # a live holder ends with a result, or dies and its lease lapses: either ends this
        if lease.client.exists(keys.result(lease.run, lease.build)):
            return "done"
        if lease.client.exists(keys.cancel(lease.run)):
            return "cancelled"
        if lease.take():
            return "run"
        if not told:
            waiting(lease.holder() or "another worker")
            told = True
        time.sleep(EVERY)


class Keeper(threading.Thread):
    """Refreshes the lease and watches the run's cancel key while the build runs; stop(reason) is called
    (from this thread) when the submitter cancels the run or the lease is lost."""

    def __init__(self, lease: Lease):
        super().__init__(name="recipe-lease", daemon=True)
        self.lease = lease
        self._on_stop: Callable[[str], None] = lambda _reason: None   # not _stop: threading.Thread has one
        self._over = threading.Event()
        self.lost = False          # the lease went to another attempt: this one must not write a result
        self.reason = ""

    def watch(self, stop: Callable[[str], None]) -> None:
        self._on_stop = stop
        self.start()

    def run(self) -> None:
        while not self._over.wait(EVERY):
            try:
                # an expired lease (the broker was away, or restarted empty) is ours again if nobody took it
                held = self.lease.refresh() or self.lease.take()
                cancel = self.lease.client.get(keys.cancel(self.lease.run))
            except OUTAGE_ERRORS:
                continue           # nobody can take the lease while the broker is away: build on
            if not held:
                self.lost, self.reason = True, "another worker has taken this build over"
                self._on_stop(self.reason)
                return
            if cancel:
                self.reason = cancel.decode() if isinstance(cancel, bytes) else str(cancel)
                self._on_stop(self.reason)
                return

    def over(self) -> None:
        self._over.set()

"""Leases and keepers against a real redis-server: one attempt at a build at a time, and fencing."""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import pytest
import redis

from engine.cluster import attempt, keys
from engine.cluster.attempt import Keeper, Lease, wait_for_turn
from tests.processes import wait_until
from tests.redis_server import redis_server

RUN, BUILD = "run-1", "web-vm"
RESULT = '{"status": "succeeded"}'


@pytest.fixture
def client(redis_url) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def fast(monkeypatch) -> None:
    """Rounds every 50 ms, leases of 300 ms: what takes seconds on a worker takes a fraction of one here."""
    monkeypatch.setattr(attempt, "EVERY", 0.05)
    monkeypatch.setattr(attempt, "LEASE_TTL", 0.3)


@pytest.fixture
def keepers() -> Iterator[Callable[[Lease], Keeper]]:
    """Keepers that are told to end when the test does, whatever it asserted."""
    made: list[Keeper] = []

    def make(lease: Lease) -> Keeper:
        made.append(Keeper(lease))
        return made[-1]

    yield make
    for keeper in made:
        keeper.over()



class Stops:
    """A keeper's stop callback: the reasons it was given, and an event to wait on."""

    def __init__(self):
        self.reasons: list[str] = []
        self.called = threading.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.called.set()


# -- the lease -------------------------------------------------------------------------------------


def test_only_the_first_attempt_takes_the_lease(client):
    first, second = Lease(client, RUN, BUILD, "token-a"), Lease(client, RUN, BUILD, "token-b")
    assert first.take() is True
    assert second.take() is False
    assert first.holder() == second.holder() == "token-a"
    assert first.key == keys.lease(RUN, BUILD)
    assert attempt.LEASE_TTL * 1000 - 1000 < client.pttl(first.key) <= attempt.LEASE_TTL * 1000


def test_leases_of_other_builds_are_apart(client):
    assert Lease(client, RUN, BUILD, "a").take()
    assert Lease(client, RUN, "db-vm", "b").take()
    assert Lease(client, "run-2", BUILD, "c").take()


def test_the_holder_refreshes_the_lease(client):
    holder = Lease(client, RUN, BUILD, "token-a")
    holder.take()
    client.pexpire(holder.key, 500)
    assert holder.refresh() is True
    assert client.pttl(holder.key) > attempt.LEASE_TTL * 1000 - 1000


def test_another_attempt_cannot_refresh_the_lease(client):
    holder, other = Lease(client, RUN, BUILD, "token-a"), Lease(client, RUN, BUILD, "token-b")
    holder.take()
    client.pexpire(holder.key, 5000)
    assert other.refresh() is False
    assert client.pttl(holder.key) <= 5000
    assert holder.holder() == "token-a"


def test_refresh_does_not_bring_back_a_lease_gone(client):
    lease = Lease(client, RUN, BUILD, "token-a")
    assert lease.refresh() is False
    assert lease.holder() is None


def test_only_the_holder_releases_the_lease(client):
    holder, other = Lease(client, RUN, BUILD, "token-a"), Lease(client, RUN, BUILD, "token-b")
    holder.take()
    other.release()
    assert holder.holder() == "token-a"
    holder.release()
    assert holder.holder() is None and not client.exists(holder.key)
    assert other.take() is True


def test_the_holder_writes_the_result_and_lets_go(client):
    holder = Lease(client, RUN, BUILD, "token-a")
    holder.take()
    assert holder.finish(RESULT) is True
    assert client.get(keys.result(RUN, BUILD)) == RESULT.encode()
    assert keys.RUN_TTL - 60 < client.ttl(keys.result(RUN, BUILD)) <= keys.RUN_TTL
    assert not client.exists(holder.key)


def test_an_attempt_that_lost_the_lease_writes_no_result(client):
    holder, other = Lease(client, RUN, BUILD, "token-a"), Lease(client, RUN, BUILD, "token-b")
    holder.take()
    assert other.finish(RESULT) is False
    assert not client.exists(keys.result(RUN, BUILD))
    assert holder.holder() == "token-a"


def test_an_attempt_whose_lease_expired_writes_no_result(client):
    lease = Lease(client, RUN, BUILD, "token-a")
    assert lease.finish(RESULT) is False
    assert not client.exists(keys.result(RUN, BUILD))


# -- waiting for a turn ----------------------------------------------------------------------------


def test_a_free_lease_is_taken_at_once(client, fast):
    waiting: list[str] = []
    lease = Lease(client, RUN, BUILD, "token-a")
    assert wait_for_turn(lease, waiting.append) == "run"
    assert waiting == [] and lease.holder() == "token-a"


def test_a_build_with_a_result_is_not_run_again(client, fast):
    client.set(keys.result(RUN, BUILD), RESULT)
    waiting: list[str] = []
    lease = Lease(client, RUN, BUILD, "token-a")
    assert wait_for_turn(lease, waiting.append) == "done"
    assert waiting == [] and lease.holder() is None


def test_a_cancelled_run_is_not_started(client, fast):
    client.set(keys.cancel(RUN), "stopped by Ctrl-C")
    lease = Lease(client, RUN, BUILD, "token-a")
    assert wait_for_turn(lease, lambda holder: None) == "cancelled"
    assert lease.holder() is None


def test_a_second_delivery_waits_for_a_dead_attempts_lease_to_expire(client, fast):
    Lease(client, RUN, BUILD, "token-dead").take()          # 300 ms, never refreshed
    waiting: list[str] = []
    lease = Lease(client, RUN, BUILD, "token-a")
    started = time.monotonic()
    assert wait_for_turn(lease, waiting.append) == "run"
    assert time.monotonic() - started >= 0.2
    assert waiting == ["token-dead"]                        # told once, though it waited several rounds
    assert lease.holder() == "token-a"


def test_a_second_delivery_ends_when_the_live_attempt_writes_its_result(client, fast):
    live = Lease(client, RUN, BUILD, "token-live")
    live.take()

    def waiting(holder: str) -> None:
        assert holder == "token-live"
        live.finish(RESULT)

    lease = Lease(client, RUN, BUILD, "token-a")
    assert wait_for_turn(lease, waiting) == "done"
    assert lease.holder() is None


def test_a_second_delivery_stops_waiting_when_the_run_is_cancelled(client, fast):
    Lease(client, RUN, BUILD, "token-live").take()
    lease = Lease(client, RUN, BUILD, "token-a")
    assert wait_for_turn(lease, lambda holder: client.set(keys.cancel(RUN), "stop")) == "cancelled"


# -- the keeper ------------------------------------------------------------------------------------


def test_the_keeper_keeps_the_lease_alive(client, fast, keepers):
    lease = Lease(client, RUN, BUILD, "token-a")
    lease.take()
    stops = Stops()
    keepers(lease).watch(stops)
    time.sleep(0.7)                                        # more than two leases' lives
    assert lease.holder() == "token-a" and stops.reasons == []
    assert Lease(client, RUN, BUILD, "token-b").take() is False


def test_the_keeper_stops_the_build_when_the_run_is_cancelled(client, fast, keepers):
    lease = Lease(client, RUN, BUILD, "token-a")
    lease.take()
    keeper, stops = keepers(lease), Stops()
    keeper.watch(stops)
    time.sleep(0.1)
    assert stops.reasons == []
    client.set(keys.cancel(RUN), "stopped by --fail-fast")
    assert stops.called.wait(5)
    assert stops.reasons == ["stopped by --fail-fast"] and keeper.reason == "stopped by --fail-fast"
    assert keeper.lost is False
    assert wait_until(lambda: keeper not in threading.enumerate())     # and it ended: stop is told once


def test_the_keeper_stops_the_build_when_another_attempt_took_over(client, fast, keepers):
    lease = Lease(client, RUN, BUILD, "token-a")
    lease.take()
    keeper, stops = keepers(lease), Stops()
    keeper.watch(stops)
    # the lease expired (a frozen worker) and another delivery took it: both at once, so the keeper cannot take
    # it back in between
    client.set(lease.key, "token-b", px=30_000)
    assert stops.called.wait(5)
    assert stops.reasons == ["another worker has taken this build over"]
    assert keeper.lost is True and keeper.reason == stops.reasons[0]
    assert lease.holder() == "token-b"                     # the new attempt keeps it
    assert lease.finish(RESULT) is False                   # and the old one cannot write a result


def test_the_keeper_takes_back_an_expired_lease_nobody_took(client, fast, keepers):
    lease = Lease(client, RUN, BUILD, "token-a")
    lease.take()
    keeper, stops = keepers(lease), Stops()
    keeper.watch(stops)
    client.delete(lease.key)                               # as after a broker restarted empty
    assert wait_until(lambda: lease.holder() == "token-a")
    time.sleep(0.2)
    assert stops.reasons == [] and keeper.lost is False


def test_the_keeper_builds_on_while_the_broker_is_away(fast, keepers, monkeypatch):
    monkeypatch.setattr(attempt, "LEASE_TTL", 30.0)        # a lease that outlives the outage
    with redis_server() as server:
        client = redis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
        lease = Lease(client, RUN, BUILD, "token-a")
        lease.take()
        keeper, stops = keepers(lease), Stops()
        keeper.watch(stops)
        server.stop()
        time.sleep(0.3)                        # several failed rounds
        assert keeper in threading.enumerate() and stops.reasons == []
        server.start()
        client.set(keys.cancel(RUN), "stopped after the outage")
        assert stops.called.wait(5)
        assert stops.reasons == ["stopped after the outage"] and keeper.lost is False


def test_over_ends_the_keeper(client, fast):
    lease = Lease(client, RUN, BUILD, "token-a")
    lease.take()
    keeper, stops = Keeper(lease), Stops()
    keeper.watch(stops)
    assert keeper in threading.enumerate()
    keeper.over()
    assert wait_until(lambda: keeper not in threading.enumerate(), timeout=2)
    client.set(keys.cancel(RUN), "too late")
    time.sleep(0.2)
    assert stops.reasons == []


def test_a_keeper_that_ended_can_be_joined(client, fast):
    lease = Lease(client, RUN, BUILD, "token-a")
    lease.take()
    keeper, stops = Keeper(lease), Stops()
    keeper.watch(stops)
    keeper.over()
    keeper.join(2)
    assert not keeper.is_alive()
    assert stops.reasons == []

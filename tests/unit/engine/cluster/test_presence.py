"""Workers' cards and the deliveries they hold, against a real redis-server."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, replace
from types import SimpleNamespace

import pytest
import redis
from celery.worker import state as celery_state

from engine.cluster import keys, presence
from engine.cluster.app import UNACKED_INDEX
from engine.cluster.presence import CARD_TTL, Presence, WorkerCard, claim_name, held_deliveries, live_workers
from tests.processes import wait_until
from tests.redis_server import redis_server

CARD = WorkerCard(name="w1@host-a", labels=("kvm", "qemu", "x86_64"), slots=4, host="host-a", pid=1111,
                  started=1735689600.123456)


@pytest.fixture
def client(redis_url) -> redis.Redis:
    return redis.Redis.from_url(redis_url)



class Request:
    """What Celery keeps of a task request, as far as held_deliveries reads it (hashable: Celery keeps sets)."""

    def __init__(self, message: object):
        self.message = message


def request(tag: object) -> Request:
    return Request(SimpleNamespace(delivery_tag=tag))


# -- cards -----------------------------------------------------------------------------------------


def test_a_card_defaults_to_this_process():
    card = WorkerCard(name="w", labels=("ssh",), slots=1)
    assert card.pid > 0 and card.host and card.started > 0


def test_a_claimed_card_is_read_back_whole(client):
    assert claim_name(client, CARD) is None
    assert live_workers(client) == [CARD]
    assert 0 < client.ttl(keys.worker(CARD.name)) <= CARD_TTL


def test_a_card_offers_what_its_labels_cover():
    assert CARD.offers(frozenset({"qemu", "kvm"}))
    assert CARD.offers(frozenset())
    assert not CARD.offers(frozenset({"qemu", "amazon"}))
    assert CARD.shown() == "w1@host-a [kvm,qemu,x86_64]"


def test_a_live_worker_of_the_same_name_keeps_it(client):
    other = replace(CARD, host="host-b", pid=2222, labels=("ssh",))
    assert claim_name(client, other) is None
    assert claim_name(client, CARD) == other
    assert live_workers(client) == [other]                 # its card was left alone


def test_another_process_on_the_same_host_does_not_take_the_name(client):
    other = replace(CARD, pid=2222)
    claim_name(client, other)
    assert claim_name(client, CARD) == other


def test_the_same_process_claims_its_name_again(client):
    before = replace(CARD, labels=("ssh",), slots=1)
    claim_name(client, before)
    assert claim_name(client, CARD) is None
    assert live_workers(client) == [CARD]                  # the new card replaced the old one
    assert 0 < client.ttl(keys.worker(CARD.name)) <= CARD_TTL


def test_a_malformed_card_does_not_keep_the_name(client):
    client.set(keys.worker(CARD.name), "not a card", ex=CARD_TTL)
    assert claim_name(client, CARD) is None
    assert live_workers(client) == [CARD]


def test_a_name_freed_by_expiry_is_claimed(client):
    claim_name(client, replace(CARD, host="host-b"))
    client.delete(keys.worker(CARD.name))                  # as when a dead worker's card expires
    assert claim_name(client, CARD) is None
    assert live_workers(client) == [CARD]


def test_live_workers_are_sorted_by_name(client):
    for name in ("w3", "w1", "w2"):
        claim_name(client, replace(CARD, name=name))
    assert [card.name for card in live_workers(client)] == ["w1", "w2", "w3"]


@pytest.mark.parametrize("value", [
    b"not json",
    b"\xff\xfe\x00",
    b"[1, 2]",
    b"null",
    b'"a string"',
    b"42",
    b'{"name": "half"}',
    b'{"name": "x", "labels": 5, "slots": 1}',
    b'{"name": "x", "labels": null, "slots": 1}',
], ids=["text", "binary", "list", "null", "string", "number", "missing-fields", "number-labels", "null-labels"])
def test_live_workers_skip_what_is_not_a_card(client, value):
    client.set(keys.worker("broken"), value)
    claim_name(client, CARD)
    assert live_workers(client) == [CARD]


def test_live_workers_skip_a_card_of_another_release(client):
    newer = {**asdict(CARD), "name": "newer", "gpu": True}
    client.set(keys.worker("newer"), json.dumps(newer))
    claim_name(client, CARD)
    assert live_workers(client) == [CARD]


def test_live_workers_read_only_cards(client):
    claim_name(client, CARD)
    client.set("recipe:run:r:result:b", json.dumps(asdict(replace(CARD, name="impostor"))))
    assert live_workers(client) == [CARD]


# -- presence --------------------------------------------------------------------------------------


def test_refresh_rewrites_the_card_with_its_expiry(client, monkeypatch):
    monkeypatch.setattr(presence, "held_deliveries", lambda: [])
    client.set(keys.worker(CARD.name), "stale")
    Presence(client, CARD).refresh()
    assert live_workers(client) == [CARD]
    assert 0 < client.ttl(keys.worker(CARD.name)) <= CARD_TTL


def test_refresh_renews_the_deliveries_held_and_brings_back_none(client, monkeypatch):
    monkeypatch.setattr(presence, "held_deliveries", lambda: ["tag-1", "tag-acked"])
    client.zadd(UNACKED_INDEX, {"tag-1": 100.0, "tag-other": 200.0})
    before = time.time()
    Presence(client, CARD).refresh()
    assert before - 1 <= client.zscore(UNACKED_INDEX, "tag-1") <= time.time() + 1
    assert client.zscore(UNACKED_INDEX, "tag-acked") is None       # acknowledged meanwhile: not added back
    assert client.zscore(UNACKED_INDEX, "tag-other") == 200.0      # another worker's: left alone
    assert client.zcard(UNACKED_INDEX) == 2


def test_the_thread_keeps_the_card_up_and_stop_takes_it_down(client, monkeypatch):
    monkeypatch.setattr(presence, "EVERY", 0.05)
    monkeypatch.setattr(presence, "held_deliveries", lambda: [])
    keeper = Presence(client, CARD)
    keeper.start()
    try:
        assert wait_until(lambda: client.exists(keys.worker(CARD.name)))
        client.delete(keys.worker(CARD.name))
        assert wait_until(lambda: client.exists(keys.worker(CARD.name)))       # written again on the next round
        # stopped between rounds, not during one (test_stop_during_a_refresh_leaves_no_card)
        monkeypatch.setattr(presence, "EVERY", 30.0)
        time.sleep(0.2)
    finally:
        keeper.stop()
    keeper.join(2)
    assert not keeper.is_alive()
    assert not client.exists(keys.worker(CARD.name))


def test_stop_without_start_takes_the_card_down(client):
    claim_name(client, CARD)
    Presence(client, CARD).stop()
    assert live_workers(client) == []


def test_the_thread_outlives_an_outage(monkeypatch):
    monkeypatch.setattr(presence, "EVERY", 0.05)
    monkeypatch.setattr(presence, "held_deliveries", lambda: [])
    with redis_server() as server:
        client = redis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
        keeper = Presence(client, CARD)
        keeper.start()
        try:
            server.stop()
            time.sleep(0.2)                                # rounds that fail
            assert keeper.is_alive()
            server.start()
            client.delete(keys.worker(CARD.name))
            assert wait_until(lambda: client.exists(keys.worker(CARD.name)))
        finally:
            keeper.stop()
        keeper.join(2)
        assert not keeper.is_alive()


def test_stop_during_a_refresh_leaves_no_card(client, monkeypatch):
    monkeypatch.setattr(presence, "EVERY", 0.01)
    inside, stopped = threading.Event(), threading.Event()

    def held() -> list[str]:
        # a refresh caught between queuing the card's SET and sending it
        inside.set()
        stopped.wait(5)
        return []

    monkeypatch.setattr(presence, "held_deliveries", held)
    keeper = Presence(client, CARD)
    keeper.start()
    assert inside.wait(5)
    keeper.stop()
    stopped.set()
    keeper.join(2)
    assert not client.exists(keys.worker(CARD.name))


# -- deliveries held -------------------------------------------------------------------------------


def test_held_deliveries_are_the_running_and_reserved_requests(monkeypatch):
    monkeypatch.setattr(celery_state, "active_requests", {request("tag-b"), request(7)})
    monkeypatch.setattr(celery_state, "reserved_requests", {request("tag-a"), request("tag-b")})
    assert held_deliveries() == ["7", "tag-a", "tag-b"]


def test_held_deliveries_skip_requests_without_a_tag(monkeypatch):
    monkeypatch.setattr(celery_state, "active_requests", {request(None), object(), request("")})
    monkeypatch.setattr(celery_state, "reserved_requests", {Request(None), request("tag-1")})
    assert held_deliveries() == ["tag-1"]


def test_no_requests_no_deliveries(monkeypatch):
    monkeypatch.setattr(celery_state, "active_requests", set())
    monkeypatch.setattr(celery_state, "reserved_requests", set())
    assert held_deliveries() == []

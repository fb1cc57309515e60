"""A run's event stream on a real redis-server: what workers publish, the submitter reads, in order, whole."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from engine.cluster import keys
from engine.cluster import stream as stream_module
from engine.cluster.stream import BATCH, EventPublisher, StreamEvent, publish, read
from tests.redis_server import redis_server

RUN = "run-1"
# a broker that is never there: a Unix socket that does not exist refuses at once, and no later server can get it
NOWHERE = "unix:///nonexistent/recipe-test-broker.sock"


@pytest.fixture
def client(redis_url) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def events_of(client: redis.Redis, run: str = RUN) -> list[dict]:
    return [e.event for e in read(client, run, "0", block=0.1)]


def test_published_events_are_read_in_order_and_whole(client):
    sent = [
        {"event": "build.start", "build": "web-vm", "time": 1.5},
        {"event": "task.output", "build": "web-vm", "msg": "héllo wörld ✓ 你好", "lines": ["a", "b"]},
        {"event": "task.end", "build": "web-vm", "result": {"changed": True, "facts": {"os": {"name": "debian"}}},
         "count": 3, "nothing": None},
        {"event": "build.end", "build": "web-vm", "status": "succeeded"},
    ]
    publisher = EventPublisher(client, RUN, "worker-1", 2)
    for event in sent:
        publisher(event)
    publisher.close()
    found = read(client, RUN, "0", block=1)
    assert [e.event for e in found] == sent
    assert {(e.worker, e.attempt) for e in found} == {("worker-1", 2)}
    assert all(isinstance(e, StreamEvent) and e.id for e in found)
    assert [e.id for e in found] == sorted(e.id for e in found)


def test_close_sends_every_pending_event(client):
    publisher = EventPublisher(client, RUN, "worker-1", 1)
    for number in range(3 * BATCH + 7):                  # several batches, queued faster than they are sent
        publisher({"event": "n", "n": number})
    publisher.close()
    assert [e["n"] for e in events_of(client)] == list(range(3 * BATCH + 7))


def test_translate_is_applied_before_sending(client):
    publisher = EventPublisher(client, RUN, "worker-1", 1,
                               translate=lambda event: {**event, "msg": event["msg"].replace("s3cret", "********")})
    publisher({"event": "log", "msg": "password is s3cret"})
    publisher.close()
    assert events_of(client) == [{"event": "log", "msg": "password is ********"}]


def test_values_json_cannot_hold_are_sent_as_text(client):
    publisher = EventPublisher(client, RUN, "worker-1", 1)
    publisher({"event": "export", "path": Path("/srv/out/web.qcow2")})
    publisher.close()
    assert events_of(client) == [{"event": "export", "path": "/srv/out/web.qcow2"}]


def test_the_stream_expires_a_day_after_the_last_event(client):
    publisher = EventPublisher(client, RUN, "worker-1", 1)
    publisher({"event": "build.start"})
    publisher.close()
    assert keys.RUN_TTL - 60 < client.ttl(keys.events(RUN)) <= keys.RUN_TTL


def test_runs_have_streams_of_their_own(client):
    for run in ("run-a", "run-b"):
        publisher = EventPublisher(client, run, "worker-1", 1)
        publisher({"event": "build.start", "run": run})
        publisher.close()
    assert events_of(client, "run-a") == [{"event": "build.start", "run": "run-a"}]
    assert events_of(client, "run-b") == [{"event": "build.start", "run": "run-b"}]


def test_events_published_while_the_broker_is_away_arrive_when_it_is_back():
    with redis_server() as server:
        client = redis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
        publisher = EventPublisher(client, RUN, "worker-1", 1)
        publisher({"event": "before"})
        assert wait_for(lambda: len(events_of(client)) == 1)
        server.stop()
        for number in range(3):
            publisher({"event": "during", "n": number})
        time.sleep(0.3)                     # the publisher has tried, and failed, to send them
        server.start()                      # on the same port, with what it kept on disk
        publisher({"event": "after"})
        publisher.close(timeout=10)
        assert events_of(client) == [{"event": "before"}, *({"event": "during", "n": n} for n in range(3)),
                                     {"event": "after"}]


def test_reading_after_an_id_gives_only_newer_events(client):
    publish(client, RUN, "worker-1", 1, {"event": "one"})
    publish(client, RUN, "worker-1", 1, {"event": "two"})
    first = read(client, RUN, "0", block=1)
    assert [e.event["event"] for e in first] == ["one", "two"]
    publish(client, RUN, "worker-2", 3, {"event": "three"})
    newer = read(client, RUN, first[-1].id, block=1)
    assert [(e.event["event"], e.worker, e.attempt) for e in newer] == [("three", "worker-2", 3)]
    assert read(client, RUN, first[0].id, block=1)[0].event == {"event": "two"}


def test_reading_waits_for_a_new_event(client):
    publish(client, RUN, "worker-1", 1, {"event": "old"})
    last = read(client, RUN, "0", block=1)[-1].id
    timer = threading.Timer(0.2, publish, (client, RUN, "worker-1", 1, {"event": "new"}))
    timer.start()
    try:
        started = time.monotonic()
        found = read(client, RUN, last, block=5)
        assert [e.event for e in found] == [{"event": "new"}]
        assert time.monotonic() - started < 4
    finally:
        timer.cancel()


def test_reading_an_empty_stream_gives_nothing_after_the_block(client):
    started = time.monotonic()
    assert read(client, RUN, "0", block=0.2) == []
    assert 0.15 < time.monotonic() - started < 2


def test_publish_writes_one_event_now(client):
    publish(client, RUN, "worker-1", 0, {"event": "warning", "msg": "waiting for wörker-2's lease"})
    assert client.xlen(keys.events(RUN)) == 1
    [found] = read(client, RUN, "0", block=1)
    assert (found.worker, found.attempt, found.event) == ("worker-1", 0,
                                                          {"event": "warning", "msg": "waiting for wörker-2's lease"})


def test_a_stream_written_only_by_publish_expires_too(client):
    publish(client, RUN, "worker-1", 0, {"event": "cluster.result", "status": "interrupted"})
    assert keys.RUN_TTL - 60 < client.ttl(keys.events(RUN)) <= keys.RUN_TTL


# -- a broker away for long ------------------------------------------------------------------------


@pytest.fixture
def stuck(monkeypatch):
    """Publishers whose broker never answers, holding at most three events, each already trying to send one; let
    go at the end (they send nowhere), so no thread outlives the test."""
    monkeypatch.setattr(stream_module, "MAX_WAITING", 3)
    made: list[EventPublisher] = []

    def make() -> EventPublisher:
        publisher = EventPublisher(redis.Redis.from_url(NOWHERE), RUN, "worker-1", 1)
        publisher({"event": "first"})
        time.sleep(0.1)                     # the sending thread took it, and retries it every second
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher._send = lambda events: True
        publisher.close(timeout=5)
        assert not publisher._thread.is_alive()


def test_events_past_the_limit_do_not_hold_up_the_build(stuck):
    publisher = stuck()
    started = time.monotonic()
    for number in range(20):
        publisher({"event": "n", "n": number})
    assert time.monotonic() - started < 0.5
    assert publisher._waiting.qsize() == 3


def test_close_gives_up_after_its_timeout_when_the_broker_stays_away(stuck):
    publisher = stuck()
    for number in range(5):
        publisher({"event": "n", "n": number})
    closing = threading.Thread(target=publisher.close, kwargs={"timeout": 0.3}, daemon=True)
    closing.start()
    closing.join(1.5)
    assert not closing.is_alive()


def test_past_the_limit_the_newest_events_are_kept(monkeypatch):
    monkeypatch.setattr(stream_module, "MAX_WAITING", 3)
    with redis_server() as server:
        client = redis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
        server.stop()
        publisher = EventPublisher(client, RUN, "worker-1", 1)
        for number in range(10):
            publisher({"event": "n", "n": number})
        publisher({"event": "build.end"})
        server.start()
        publisher.close(timeout=10)
        assert events_of(client)[-1] == {"event": "build.end"}


def wait_for(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

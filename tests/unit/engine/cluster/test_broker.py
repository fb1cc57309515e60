"""The broker's URL, the clients made from it, and the patience that waits out an outage."""
from __future__ import annotations

import socket
import ssl
import time
from types import SimpleNamespace

import pytest
import redis

from engine.cluster import broker as broker_module
from engine.cluster.broker import PASSWORD_VARIABLE, Broker, Patience
from engine.errors import BuildError, UsageError
from tests.redis_server import redis_server


@pytest.fixture(autouse=True)
def no_password_in_the_environment(monkeypatch):
    """Broker.parse reads $RECIPE_BROKER_PASSWORD by default: these tests must not depend on the caller's."""
    monkeypatch.delenv(PASSWORD_VARIABLE, raising=False)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the URL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "redis://broker",
    "redis://broker.example:6379",
    "redis://10.0.0.5:6380/2",
    "redis://:s3cret@broker:6379/0",
    "redis://user:s3cret@broker/1",
    "rediss://broker.example:6380/0",
    "rediss://:s3cret@broker.example:6380/0?ssl_ca_certs=/etc/ca.pem",
])
def test_redis_urls_are_accepted_as_given(url):
    assert Broker.parse(url).url == url


@pytest.mark.parametrize("url, words", [
    ("http://broker:6379/0", "is not a Redis URL"),
    ("amqp://guest@broker//", "is not a Redis URL"),
    ("broker:6379", "is not a Redis URL"),
    ("redis:///0", "is not a Redis URL"),
    ("redis://:s3cret@/0", "is not a Redis URL"),
    ("", "is not a Redis URL"),
    ("redis://broker:port/0", "has a bad port"),
    ("redis://broker:70000/0", "has a bad port"),
])
def test_other_urls_are_usage_errors(url, words):
    with pytest.raises(UsageError, match=words) as raised:
        Broker.parse(url)
    assert raised.value.hint and "s3cret" not in str(raised.value)


@pytest.mark.parametrize("url", ["redis://:s3cret@broker:port/0", "redis://:s3cret@broker:70000/0"])
def test_a_bad_port_with_a_password_is_a_usage_error_too(url):
    with pytest.raises(UsageError, match="has a bad port") as raised:
        Broker.parse(url)
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize("url, shown", [
    ("redis://:s3cret@broker:6379/0", "redis://:********@broker:6379/0"),
    ("redis://admin:s3cret@broker.example:6380/2", "redis://admin:********@broker.example:6380/2"),
    ("redis://:s3cret@broker/3", "redis://:********@broker/3"),
    ("rediss://:s3cret@broker:6380/0?ssl_ca_certs=/etc/ca.pem", "rediss://:********@broker:6380/0?ssl_ca_certs=/etc/ca.pem"),
])
def test_shown_masks_the_password_and_keeps_the_rest(url, shown):
    assert Broker.parse(url).shown == shown


@pytest.mark.parametrize("url", ["redis://broker:6379/0", "redis://admin@broker/1", "rediss://broker.example:6380/0"])
def test_shown_leaves_a_url_without_a_password_alone(url):
    assert Broker.parse(url).shown == url


def test_shown_keeps_an_ipv6_address_in_brackets():
    assert Broker.parse("redis://:s3cret@[::1]:6379/0").shown == "redis://:********@[::1]:6379/0"


# -- the password from the environment -------------------------------------------------------------


@pytest.mark.parametrize("url, given, shown", [
    ("redis://broker:6379/0", "redis://:p%40ss%20w%2Frd@broker:6379/0", "redis://:********@broker:6379/0"),
    ("redis://admin@broker/1", "redis://admin:p%40ss%20w%2Frd@broker/1", "redis://admin:********@broker/1"),
    ("rediss://broker:6380/0?ssl_ca_certs=/ca.pem", "rediss://:p%40ss%20w%2Frd@broker:6380/0?ssl_ca_certs=/ca.pem",
     "rediss://:********@broker:6380/0?ssl_ca_certs=/ca.pem"),
    ("redis://[::1]:6379/0", "redis://:p%40ss%20w%2Frd@[::1]:6379/0", None),
])
def test_a_url_without_a_password_takes_the_environments(url, given, shown):
    broker = Broker.parse(url, environ={PASSWORD_VARIABLE: "p@ss w/rd"})
    assert broker.url == given
    assert broker.password == "p@ss w/rd"
    if shown is not None:
        assert broker.shown == shown


def test_the_environment_password_is_read_from_os_environ_by_default(monkeypatch):
    monkeypatch.setenv(PASSWORD_VARIABLE, "from-env")
    assert Broker.parse("redis://broker/0").password == "from-env"


@pytest.mark.parametrize("environ", [{}, {PASSWORD_VARIABLE: ""}], ids=["unset", "empty"])
def test_without_an_environment_password_the_url_is_kept(environ):
    assert Broker.parse("redis://broker:6379/0", environ=environ).url == "redis://broker:6379/0"


def test_a_password_in_the_url_wins_over_the_environments():
    assert Broker.parse("redis://:own@broker/0", environ={PASSWORD_VARIABLE: "env"}).password == "own"


def test_the_environment_password_keeps_an_encoded_user_name():
    broker = Broker.parse("redis://us%40er@broker/0", environ={PASSWORD_VARIABLE: "pw"})
    assert broker.url == "redis://us%40er:pw@broker/0"


def test_the_environment_password_logs_in():
    with redis_server(password="pa:ss/word") as server:
        broker = Broker.parse(f"redis://127.0.0.1:{server.port}/0", environ={PASSWORD_VARIABLE: "pa:ss/word"})
        assert broker.client(timeout=5).ping() is True


def test_the_password_is_unquoted():
    assert Broker.parse("redis://:p%40ss%2Fword@broker/0").password == "p@ss/word"
    assert Broker.parse("redis://broker/0").password is None


def test_celery_ssl_is_off_for_plain_redis():
    broker = Broker.parse("redis://broker:6379/0")
    assert broker.tls is False and broker.celery_ssl() is None


def test_celery_ssl_checks_certificates_for_rediss():
    broker = Broker.parse("rediss://broker:6380/0")
    assert broker.tls is True
    assert broker.celery_ssl() == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_celery_ssl_keeps_the_ca_file_of_the_url():
    broker = Broker.parse("rediss://:pw@broker:6380/0?ssl_ca_certs=/etc/recipe/ca.pem")
    assert broker.celery_ssl() == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/recipe/ca.pem"}


def test_celery_ssl_follows_an_explicit_none():
    assert Broker.parse("rediss://broker:6380/0?ssl_cert_reqs=none").celery_ssl() == {"ssl_cert_reqs": ssl.CERT_NONE}


# -- clients ---------------------------------------------------------------------------------------


def test_a_client_talks_to_the_broker(redis_url):
    client = Broker.parse(redis_url).client(timeout=5)
    assert client.ping() is True
    client.set("recipe:test", "x")
    assert redis.Redis.from_url(redis_url).get("recipe:test") == b"x"


def test_a_client_gives_the_password():
    with redis_server(password="pa:ss/word") as server:
        url = f"redis://:pa%3Ass%2Fword@127.0.0.1:{server.port}/0"
        assert Broker.parse(url).client(timeout=5).ping() is True
        with pytest.raises(redis.AuthenticationError):
            Broker.parse(f"redis://:wrong@127.0.0.1:{server.port}/0").client(timeout=5).ping()


# -- patience --------------------------------------------------------------------------------------


def test_patience_gives_up_after_the_timeout_and_says_so():
    port = unused_port()                        # nothing listens there: every call is refused at once
    broker = Broker.parse(f"redis://:hunter2@127.0.0.1:{port}/0")
    lost: list[str] = []
    back: list[float] = []
    patience = Patience(broker, timeout=2, lost=lost.append, back=back.append)
    calls = []
    client = broker.client(timeout=1)

    def ping():
        calls.append(time.monotonic())
        return client.ping()

    started = time.monotonic()
    with pytest.raises(BuildError) as raised:
        patience.call(ping)
    elapsed = time.monotonic() - started
    shown = f"redis://:********@127.0.0.1:{port}/0"
    assert 2 <= elapsed < 4
    assert raised.value.message.startswith(f"the broker {shown} has not answered for 2s (")
    assert "hunter2" not in str(raised.value) and raised.value.hint
    assert len(calls) == 3                      # at once, then every second
    assert len(lost) == 1 and shown in lost[0] and "waiting up to 2s" in lost[0] and "hunter2" not in lost[0]
    assert back == []


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The broker module's time, faked: sleeping moves the clock on at once."""
    now = [1000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(broker_module, "time", SimpleNamespace(monotonic=lambda: now[0], sleep=sleep))
    return now


def test_patience_retries_until_the_broker_answers(clock):
    lost: list[str] = []
    back: list[float] = []
    patience = Patience(Broker.parse("redis://:hunter2@broker:6379/0"), timeout=30, lost=lost.append,
                        back=back.append)
    failures = iter([redis.ConnectionError("Connection refused."), redis.ConnectionError("Connection reset")])

    def action() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "answer"

    assert patience.call(action) == "answer"
    assert lost == ["the broker redis://:********@broker:6379/0 does not answer (Connection refused): "
                    "waiting up to 30s for it"]
    assert back == [2.0]                        # two failures, a second's wait after each
    assert patience.since is None
    assert patience.call(lambda: 7) == 7 and len(lost) == 1 and back == [2.0]     # nothing more to tell


@pytest.mark.parametrize("error", [redis.TimeoutError("Timeout reading from socket"), ConnectionResetError(),
                                   OSError("No route to host")])
def test_patience_waits_out_every_kind_of_outage(clock, error):
    errors = [error]
    back: list[float] = []
    patience = Patience(Broker.parse("redis://broker/0"), timeout=30, back=back.append)

    def action() -> int:
        if errors:
            raise errors.pop()
        return 1

    assert patience.call(action) == 1
    assert back == [1.0]


def test_patience_does_not_hide_other_errors(clock):
    lost: list[str] = []
    patience = Patience(Broker.parse("redis://broker/0"), timeout=30, lost=lost.append)

    def action():
        raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    with pytest.raises(redis.ResponseError):
        patience.call(action)
    assert lost == [] and clock == [1000.0]


def test_patience_counts_the_timeout_from_the_start_of_the_outage(clock):
    patience = Patience(Broker.parse("redis://broker/0"), timeout=5)
    calls: list[float] = []

    def down():
        calls.append(clock[0])
        raise redis.ConnectionError("Connection refused")

    with pytest.raises(BuildError, match="has not answered for 5s"):
        patience.call(down)
    assert calls == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0, 1005.0]

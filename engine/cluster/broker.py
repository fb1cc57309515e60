"""The broker: a Redis URL, the clients made from it, and calls that wait out an outage.

`redis://[:password@]host[:port][/db]` or `rediss://...` (TLS; the server's certificate is checked against the
system's CAs, or the file in `?ssl_ca_certs=`). A URL without a password takes $RECIPE_BROKER_PASSWORD's.
Celery's queues and recipe's own keys (engine.cluster.keys) live in the same database.
"""
from __future__ import annotations

import os
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable, Mapping, TypeVar

import redis

from engine.errors import BuildError, UsageError
from engine.units import format_duration

T = TypeVar("T")
PASSWORD_VARIABLE = "RECIPE_BROKER_PASSWORD"     # the broker's password, kept out of command lines
# what a lost or restarting broker raises: from redis-py (our calls) and from kombu (Celery's publishing)
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, ConnectionError,
                                                   OSError)


@dataclass(frozen=True)
class Broker:
    url: str

    @classmethod
    def parse(cls, url: str, environ: Mapping[str, str] = os.environ) -> "Broker":
        """The broker of a URL; a URL without a password takes $RECIPE_BROKER_PASSWORD's, if set."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise UsageError(f"the broker {cls(url).shown!r} is not a Redis URL",
                             hint="redis://[:password@]host[:port][/db], or rediss://... for TLS")
        try:
            _ = parts.port           # urllib checks the port only when asked
        except ValueError:
            raise UsageError(f"the broker {cls(url).shown!r} has a bad port",
                             hint="redis://host:6379/0") from None
        password = environ.get(PASSWORD_VARIABLE)
        if password and parts.password is None:
            user = parts.netloc.rpartition("@")[0]           # as written: already percent-encoded
            netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
            url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        return cls(url)

    @property
    def shown(self) -> str:
        """The URL as it may be printed: the password masked."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.password is None:
            return self.url
        credentials, _, place = parts.netloc.rpartition("@")     # place as written: [::1]:6379, a bad port
        netloc = f"{credentials.partition(':')[0]}:********@{place}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    @property
    def password(self) -> str | None:
        return urllib.parse.unquote(urllib.parse.urlsplit(self.url).password or "") or None

    @property
    def tls(self) -> bool:
        return urllib.parse.urlsplit(self.url).scheme == "rediss"

    def client(self, timeout: float = 10.0) -> redis.Redis:
        """A client whose calls fail (rather than hang) when the broker goes: socket timeouts, keepalive."""
        return redis.Redis.from_url(self.url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                    socket_keepalive=True, health_check_interval=15)

    def celery_ssl(self) -> dict[str, object] | None:
        """Celery's broker_use_ssl for rediss://: certificates checked, as redis-py checks them."""
        if not self.tls:
            return None
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.url).query))
        options: dict[str, object] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        if query.get("ssl_ca_certs"):
            options["ssl_ca_certs"] = query["ssl_ca_certs"]
        if query.get("ssl_cert_reqs") == "none":
            options["ssl_cert_reqs"] = ssl.CERT_NONE
        return options


class Patience:
    """Calls to the broker that wait out an outage: retried every second until `timeout` seconds have passed
    since the broker was last reached, then a BuildError that says so."""

    def __init__(self, broker: Broker, timeout: float, lost: Callable[[str], None] = lambda _: None,
                 back: Callable[[float], None] = lambda _: None):
        self.broker, self.timeout = broker, timeout
        self._lost, self._back = lost, back
        self.since: float | None = None          # monotonic time the outage began; None: the broker answers

    def call(self, action: Callable[[], T]) -> T:
        while True:
            try:
                value = action()
            except OUTAGE_ERRORS as exc:
                self._wait(exc)
                continue
            if self.since is not None:
                self._back(time.monotonic() - self.since)
                self.since = None
            return value

    def _wait(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            self._lost(f"the broker {self.broker.shown} does not answer ({_reason(exc)}): waiting up to "
                       f"{format_duration(self.timeout)} for it")
        if now - self.since >= self.timeout:
            raise BuildError(f"the broker {self.broker.shown} has not answered for "
                             f"{format_duration(now - self.since)} ({_reason(exc)})",
                             hint="check that it runs at that address (or start it again), or give a longer "
                                  "--cluster-timeout; builds already sent go on, and keep their artifacts in "
                                  "their workers' store")
        time.sleep(1.0)


def _reason(exc: BaseException) -> str:
    return str(exc).strip().rstrip(".") or type(exc).__name__

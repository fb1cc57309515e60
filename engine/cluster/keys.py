"""The names of everything recipe keeps in the broker's Redis besides Celery's queues, in one place.

Every key starts with `recipe:`; what a run leaves expires a day after its last write, a bundle's blobs a week
after the last run that used them.
"""
from __future__ import annotations

PREFIX = "recipe"
RUN_TTL = 24 * 3600          # seconds: events, results, leases' bookkeeping of one run
BUNDLE_TTL = 7 * 24 * 3600   # seconds: blobs and bundle manifests, refreshed by every run that sends them


def blob(sha256: str) -> str:
    """One file's content, named by its SHA-256."""
    return f"{PREFIX}:blob:{sha256}"


def bundle(digest: str) -> str:
    """A bundle's manifest (JSON: its files' paths, digests and modes), named by its own SHA-256."""
    return f"{PREFIX}:bundle:{digest}"


def worker(name: str) -> str:
    """A live worker's card (labels, slots, host, pid), refreshed while it runs."""
    return f"{PREFIX}:worker:{name}"


WORKERS_PATTERN = f"{PREFIX}:worker:*"


def events(run: str) -> str:
    """The run's event stream: every event of every build, with the worker it happened on."""
    return f"{PREFIX}:run:{run}:events"


def cancel(run: str) -> str:
    """Set when the submitter stops the run (Ctrl-C, --fail-fast): workers stop its builds, with cleanups."""
    return f"{PREFIX}:run:{run}:cancel"


def lease(run: str, build: str) -> str:
    """Held (with a short expiry, refreshed) by the worker running that build: a second delivery waits."""
    return f"{PREFIX}:run:{run}:lease:{build}"


def attempts(run: str, build: str) -> str:
    """How many times a worker has started that build."""
    return f"{PREFIX}:run:{run}:attempts:{build}"


def result(run: str, build: str) -> str:
    """The build's result (JSON): status, counts, where its artifacts are. Written once, by the attempt that ran."""
    return f"{PREFIX}:run:{run}:result:{build}"

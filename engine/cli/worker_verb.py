"""`recipe worker --broker redis://...`: run builds sent by `recipe run --cluster` (engine.cluster.worker)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from engine.cli.arguments import positive_int
from engine.cluster.broker import Broker
from engine.cluster.worker import WorkerOptions, serve
from engine.errors import UsageError
from engine.units import parse_duration

BROKER_VARIABLE = "RECIPE_BROKER"      # the broker URL, out of `ps` when it holds a password


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser("worker", help="run the builds `recipe run --cluster` sends (a Celery worker)")
    parser.add_argument("--broker", metavar="URL", help=f"redis://[:password@]host[:port][/db] or rediss://... "
                        f"(default: ${BROKER_VARIABLE})")
    parser.add_argument("--name", help="this worker's name, unique on the broker (default: recipe@<host>)")
    parser.add_argument("--slots", type=positive_int, metavar="N",
                        help="builds at once (default: what this host's cores, memory and free disk allow)")
    parser.add_argument("--labels", action="append", default=[], metavar="LABELS",
                        help="what it offers, comma-separated, instead of what it detects: kvm (if KVM really "
                             "works), its architecture, the platforms whose programs are installed")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, metavar="DIR",
                       help="keep finished artifacts in DIR/<run>/<build>/ (default: ./output); the submitter "
                            "fetches them from there, so it must see DIR at the same path (same host, NFS)")
    where.add_argument("--store", metavar="s3://BUCKET/PREFIX",
                       help="upload finished artifacts to S3 (credentials and endpoint from the AWS environment)")
    parser.add_argument("--visibility-timeout", default="60s", metavar="DURATION",
                        help="a lost worker's builds go to another after this long (Celery's visibility_timeout; "
                             "default 60s)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def broker_from(value: str | None, option: str) -> Broker:
    url = value or os.environ.get(BROKER_VARIABLE, "")
    if not url:
        raise UsageError(f"{option} needs the broker's URL", hint=f"{option} redis://host:6379/0, or set "
                                                                 f"${BROKER_VARIABLE}")
    return Broker.parse(url)


def run(args: argparse.Namespace) -> int:
    labels = frozenset(w.strip() for value in args.labels for w in value.split(",") if w.strip())
    visibility = parse_duration(args.visibility_timeout, "--visibility-timeout")
    if visibility < 1:
        raise UsageError("--visibility-timeout must be at least 1s", hint="e.g. --visibility-timeout 60s")
    options = WorkerOptions(broker=broker_from(args.broker, "--broker"), name=args.name, slots=args.slots,
                            labels=labels or None, output=args.output, store=args.store,
                            visibility_timeout=visibility,
                            # look for dead workers' builds a few times per timeout, at most every 10 s
                            restore_every=max(1.0, min(10.0, visibility / 4)))
    return serve(options)

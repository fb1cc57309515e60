"""boto3 clients the standard way (profiles, environment, instance role), with an endpoint override.

Credentials are boto3's business: they are never read, logged or passed around here.
"""
from __future__ import annotations

from typing import Any, Callable

import boto3
from botocore.config import Config

RETRIES = Config(retries={"max_attempts": 10, "mode": "adaptive"}, max_pool_connections=32)


# botocore event handlers put on every client made here, e.g. ("before-call.ec2.RegisterImage", handler):
# how the tests inject an AWS error at one step of a real client talking to moto
EVENT_HOOKS: list[tuple[str, Callable[..., Any]]] = []


def client(service: str, region: str, profile: str | None = None, endpoint_url: str | None = None) -> Any:
    session = boto3.session.Session(profile_name=profile, region_name=region)
    made = session.client(service, endpoint_url=endpoint_url, config=RETRIES)
    for event, handler in EVENT_HOOKS:
        made.meta.events.register(event, handler)
    return made

"""What a play remembers between tasks, as JSON: kept with a cache layer, so a build resuming after task k
sees what tasks 1..k registered, set and notified, as if it had run them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.build.play import Play


class NotKept(Exception):
    """The play's state cannot be kept: a value is not JSON, or a secret's value is among the values."""


def snapshot(play: Play, secret_values: list[str]) -> dict[str, Any]:
    inventory = play.inventory
    state = {"host_vars": play.host_vars, "included_vars": play.included_vars,
             "groups": sorted(inventory.own_groups), "added": inventory.added, "members": inventory.members,
             "jobs": play.jobs.finished, "notified": sorted(play.notified), "pending": sorted(play.pending),
             "included_roles": sorted(str(path) for path in play.included_roles)}
    try:
        text = json.dumps(state, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise NotKept(f"a registered value is not plain data ({error})") from None
    if any(secret and secret in text for secret in secret_values):
        raise NotKept("a registered value holds a secret")
    return json.loads(text)


def restore(play: Play, state: dict[str, Any]) -> None:
    play.host_vars.update(state["host_vars"])
    play.included_vars.update(state["included_vars"])
    play.inventory.own_groups |= set(state["groups"])
    play.inventory.added.update(state["added"])
    play.inventory.members.update(state["members"])
    play.jobs.finished.update(state["jobs"])
    play.notified |= set(state["notified"])
    play.pending |= set(state["pending"])
    play.included_roles |= {Path(path) for path in state["included_roles"]}

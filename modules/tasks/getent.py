"""getent: look entries up in the target's name service databases (passwd, group, hosts...), as Ansible's
getent does; the entries become the fact getent_<database>. Changes nothing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._remote import maybe, quiet, text, words

COLON_DATABASES = ("passwd", "shadow", "group", "gshadow")
MESSAGES = {   # getent's exit statuses
    1: "Missing arguments, or database unknown.",
    2: "One or more supplied key could not be found in the database.",
    3: "Enumeration not supported on this database.",
}


def entries(output: str, split: str | None) -> dict[str, Any]:
    """Each line's first field -> the other fields; a key seen more than once gets a list of them."""
    found: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for line in output.splitlines():
        record = line.split(split)
        key, rest = record[0], record[1:]
        if key not in seen:
            found[key], seen[key] = rest, 1
            continue
        if seen[key] == 1:
            found[key] = [found[key]]
        found[key].append(rest)
        seen[key] += 1
    return found


class Getent(TaskModule, name="getent"):
    description = "Read entries of a name service database (passwd, group, hosts, services...) into facts"
    schema = {
        vol.Required("database"): text,
        vol.Optional("key", default=None): maybe(text),
        vol.Optional("service", default=None): maybe(text),
        vol.Optional("split", default=None): maybe(text),
        vol.Optional("fail_key", default=True): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        database: str
        key: str | None = None
        service: str | None = None
        split: str | None = None
        fail_key: bool = True

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        argv = ["getent", params.database, *([params.key] if params.key is not None else []),
                *(["-s", params.service] if params.service is not None else [])]
        res = await quiet(ctx, "exec " + words(argv))
        split = params.split if params.split is not None or params.database not in COLON_DATABASES else ":"
        fact = f"getent_{params.database}"
        if res.rc == 0:
            found = {fact: entries(res.stdout, split)}
            return Result(msg=f"{len(found[fact])} entr(ies) of {params.database}", facts=found,
                          data={"ansible_facts": found})
        if res.rc == 2 and not params.fail_key:
            missing = {fact: {params.key: None}}
            return Result(msg=MESSAGES[2], facts=missing, data={"ansible_facts": missing})
        if res.rc == 127:
            return Result(failed=True, msg="getent is not installed on the target")
        return Result(failed=True, msg=MESSAGES.get(res.rc, "Unexpected failure!"))

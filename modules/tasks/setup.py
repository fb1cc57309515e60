"""setup: gather the target's facts again, as Ansible's setup module does, with recipe's one shell probe.

The facts come back as Ansible's module returns them (`ansible_facts` with `ansible_`-prefixed keys,
plus gather_subset and module_setup), in Result.facts and in the registered result. gather_subset and
filter keep Ansible's meaning (engine.build.ansible_facts); gather_timeout bounds the probe; fact_path
is accepted, but facts.d scripts are not run (`ansible_local` is {}).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from engine.build.ansible_facts import SUBSETS, BadSubset, ansible_facts, selected_collectors
from engine.build.facts import GATHER, parse_facts
from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.errors import BuildError
from engine.recipe.schema import did_you_mean, integer
from modules.tasks._remote import tail, text

META = ("gather_subset", "module_setup")    # the two keys Ansible returns without the ansible_ prefix


def word_list(value: Any) -> list[str]:
    """Ansible's type=list of strings: a list, or one string of comma-separated items."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
        return [str(item) for item in value]
    raise vol.Invalid(f"expected a list of names or one comma-separated string, got {value!r}")


def subsets(value: Any) -> list[str]:
    names = word_list(value)
    try:
        selected_collectors(names)
    except BadSubset as exc:
        hint = did_you_mean(exc.name, SUBSETS, "use all, min, hardware, network, virtual, a collector's or a "
                                               "fact's name, or !name to leave one out")
        raise vol.Invalid(f"unknown gather_subset {exc.name!r}: {hint}") from None
    return names


def positive(value: Any) -> int:
    number = integer(value)
    if number <= 0:
        raise vol.Invalid(f"gather_timeout must be a positive number of seconds, got {value!r}")
    return number


class Setup(TaskModule, name="setup"):
    description = "Gather facts about the target (Ansible's names and values), optionally a subset or filtered"
    schema = {
        vol.Optional("gather_subset", default=["all"]): subsets,
        vol.Optional("gather_timeout", default=10): positive,
        vol.Optional("filter", default=[]): word_list,
        vol.Optional("fact_path", default="/etc/ansible/facts.d"): text,
    }

    @dataclass(frozen=True)
    class Params:          # the schema fills every default
        gather_subset: list[str]
        gather_timeout: int
        filter: list[str]
        fact_path: str

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        try:
            res = await ctx.connection.run(GATHER, timeout=params.gather_timeout)
        except BuildError as exc:         # a timeout: Ansible's gather_timeout fails the facts, not the build
            return Result(failed=True, msg=f"could not gather facts: {exc}")
        if res.rc != 0:
            return Result(failed=True, msg=f"could not gather facts (rc={res.rc}): {tail(res.stderr)}")
        facts = ansible_facts(parse_facts(res.stdout), params.gather_subset, params.filter)
        returned = {key if key in META else f"ansible_{key}": value for key, value in facts.items()}
        return Result(facts=returned, data={"ansible_facts": returned})

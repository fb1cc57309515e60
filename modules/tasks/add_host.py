"""add_host: name another host, its groups and variables, as Ansible's add_host adds one to the inventory.

A build is a play against one host, so the host is never connected to: it shows in `groups` and
`hostvars[name]` for the tasks that follow. Changed when it is new or its groups or variables change, as
Ansible's inventory reports it.
"""
from __future__ import annotations

from typing import Any, Callable

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import string, templatable

NAME_KEYS = ("name", "hostname", "host")
GROUP_KEYS = ("groups", "groupname", "group")


def _group_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return value
    raise vol.Invalid("Groups must be specified as a list.")


def _arguments(static: bool) -> Callable[[Any], Any]:
    check = templatable if static else (lambda validator: validator)

    def validate(value: Any) -> Any:
        if not isinstance(value, dict):
            raise vol.Invalid("expected a mapping: name, groups and the host's variables")
        if not any(key in value for key in NAME_KEYS):
            raise vol.Invalid("name, host or hostname needs to be provided")
        for key in NAME_KEYS:
            if key in value:
                check(string)(value[key])
        for key in GROUP_KEYS:
            if key in value:
                check(_group_list)(value[key])
        return value
    return validate


class AddHost(TaskModule, name="add_host"):
    description = "name another host with its groups and variables (groups, hostvars) for the tasks that follow"

    @classmethod
    def static_schema(cls) -> Any:
        return _arguments(static=True)

    @classmethod
    def runtime_schema(cls) -> Any:
        return _arguments(static=False)

    async def run(self, params: dict[str, Any], ctx: TaskContext) -> Result:
        name = str(next(params[key] for key in NAME_KEYS if key in params))
        groups: list[str] = []
        for group in _group_list(next((params[key] for key in GROUP_KEYS if key in params), [])):
            if group not in groups:
                groups.append(group)
        # Ansible keeps `host` and `group` as variables of the host: only these four are its own
        host_vars = {key: value for key, value in params.items()
                     if key not in ("name", "hostname", "groupname", "groups")}
        changed = ctx.inventory.would_change(name, groups, host_vars) if ctx.inventory is not None else True
        # the executor adds the host to the play's inventory from add_host, as Ansible's strategy does
        return Result(changed=changed, data={"add_host": {"host_name": name, "groups": groups, "host_vars": host_vars}})

"""group_by: put this build's host into a group named by a key, as Ansible's group_by does for the play.

A build is a play against one host: the group shows in `group_names` and `groups` for the tasks after it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import one_or_more, string


class GroupBy(TaskModule, name="group_by"):
    description = "add this host to a group (group_names, groups) for the tasks that follow"
    free_form = "key"
    schema = {vol.Required("key"): string, vol.Optional("parents", default=["all"]): one_or_more(string)}

    @dataclass(frozen=True)
    class Params:
        key: str
        parents: list[str] = field(default_factory=lambda: ["all"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        # the executor reads add_group from the result, as Ansible's strategy does
        key = params.key.replace(" ", "-")
        return Result(changed=True, data={"add_group": key, "parent_groups": list(params.parents)})

"""set_fact: define variables for the tasks that follow, on this build only."""
from __future__ import annotations

from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.recipe_schema import variable_mapping
from engine.recipe.schema import boolean
from engine.recipe.template import is_template

CACHEABLE = "cacheable"     # Ansible's fact cache: a build has none, so it is accepted and changes nothing


def _names_and_values(value: Any, templated_names: bool) -> Any:
    if not isinstance(value, dict):
        return variable_mapping(value)
    if CACHEABLE in value and not is_template(value[CACHEABLE]):
        boolean(value[CACHEABLE])
    if not any(k != CACHEABLE for k in value):
        raise vol.Invalid("set_fact needs at least one variable, as Ansible's does (No key/value pairs provided)")
    variable_mapping({k: v for k, v in value.items() if k != CACHEABLE and not (templated_names and is_template(k))})
    return value


class SetFact(TaskModule, name="set_fact"):
    description = "define variables for later tasks of this build"

    @classmethod
    def static_schema(cls) -> Any:
        return lambda value: _names_and_values(value, templated_names=True)   # set_fact: {"{{ k }}": v}

    @classmethod
    def runtime_schema(cls) -> Any:
        return lambda value: _names_and_values(value, templated_names=False)

    async def run(self, params: dict[str, Any], ctx: TaskContext) -> Result:
        values = {k: v for k, v in params.items() if k != CACHEABLE}
        return Result(changed=False, new_vars=values, data={"ansible_facts": values, "facts": values})

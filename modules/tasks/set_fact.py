"""set_fact: define variables for the tasks that follow, on this build only."""
from __future__ import annotations

from typing import Any

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.recipe_schema import variable_mapping


class SetFact(TaskModule, name="set_fact"):
    description = "define variables for later tasks of this build"

    @classmethod
    def static_schema(cls) -> Any:
        return variable_mapping

    @classmethod
    def runtime_schema(cls) -> Any:
        return variable_mapping

    async def run(self, params: dict[str, Any], ctx: TaskContext) -> Result:
        return Result(changed=False, new_vars=dict(params), data={"facts": dict(params)})

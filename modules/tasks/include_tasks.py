"""include_tasks, import_tasks, include_role, import_role: the schemas of Ansible's include keywords.

The loader reads what they name when the recipe is loaded and puts the tasks in their place
(engine.recipe.loader); an include_tasks whose file name is a template is read by the executor when it
runs. These classes only say which options each takes, so that validate checks them like any module's.
"""
from __future__ import annotations

from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean

APPLY = {vol.Optional("apply"): dict}


class IncludeTasks(TaskModule, name="include_tasks"):
    description = "run the tasks of another file here, read when this task runs"
    free_form = "file"
    schema = {vol.Required("file"): str, **APPLY, "_raw_params": str}

    async def run(self, params: Any, ctx: TaskContext) -> Result:  # the executor includes before calling this
        return Result()


class ImportTasks(IncludeTasks, name="import_tasks"):
    description = "run the tasks of another file here, read when the recipe is loaded"
    schema = {vol.Required("file"): str, "_raw_params": str}


class IncludeRole(TaskModule, name="include_role"):
    description = "run a role's tasks here, its condition checked once"
    free_form = "name"
    schema = {vol.Required("name"): str, "tasks_from": str, "vars_from": str, "defaults_from": str,
              "handlers_from": str, "public": boolean, "allow_duplicates": boolean, "rolespec_validate": boolean,
              **APPLY}

    async def run(self, params: Any, ctx: TaskContext) -> Result:  # the loader put the role's tasks in its place
        return Result()


class ImportRole(IncludeRole, name="import_role"):
    description = "run a role's tasks here, its keywords passed to each"

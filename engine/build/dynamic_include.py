"""An include_tasks whose file name is a template, read when it runs: `include_tasks: "{{ ansible_os_family }}.yml"`.

The file is looked for as Ansible looks: beside the file that includes it, in the role's tasks/, in the
recipe's directory. It is checked as validate checks any task file before anything in it runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import BuildError, RecipeError
from engine.recipe.loader import Loader, include_spec
from engine.recipe.model import Task
from engine.recipe.recipe_schema import task_validator
from engine.recipe.schema import each, validate
from engine.recipe.tasks import Inherit, make_task
from engine.recipe.yamlpos import YMap


def _candidates(task: Task, name: str) -> list[Path]:
    if Path(name).is_absolute():
        return [Path(name)]
    dirs = [Path(task.position.file).parent]
    if task.origin.role_dir is not None:
        dirs.append(task.origin.role_dir / "tasks")
    dirs.append(task.origin.base_dir)
    return [d / name for d in dict.fromkeys(dirs)]


def load_include(task: Task, args: Any) -> Task:
    """The included file's tasks as one block, with what the include's `apply:` names passed to them."""
    spec = include_spec(args, None)
    name = spec.get("file")
    if not isinstance(name, str) or not name:
        raise BuildError(f"{task.path}.include_tasks: the file name rendered to {name!r}",
                         hint="include_tasks takes a file name", position=task.args_position or task.position)
    candidates = _candidates(task, name)
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise BuildError(f"{task.path}.include_tasks: {name!r} not found",
                         hint="looked in " + ", ".join(str(c.parent) for c in candidates),
                         position=task.args_position or task.position)
    try:
        tasks = Loader().load_task_file(path.resolve(), task.args_position or task.position)
        _, problems = validate(each(task_validator(handler=False)), tasks)
        if problems:
            raise RecipeError(problems)
    except RecipeError as exc:
        first = exc.problems[0]
        raise BuildError(f"{task.path}.include_tasks {name}: {first.message}", hint=first.hint,
                         position=first.position) from None
    node = YMap(pos=tasks.pos)
    apply = spec.get("apply")
    if isinstance(apply, dict):
        node.update(apply)
    node["block"] = tasks
    return make_task(node, f"{task.path}.include_tasks", task.origin, Inherit())


__all__ = ["load_include"]

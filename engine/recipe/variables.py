"""Variables from outside the recipe: --var k=v, --var-file f.yml, RECIPE_VAR_k."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.errors import Position, Problem, RecipeError
from engine.recipe.schema import IDENTIFIER
from engine.recipe.yamlpos import YMap, YSeq, load_yaml_file, parse_yaml

ENV_PREFIX = "RECIPE_VAR_"


def _scalar(text: str, where: str) -> Any:
    """A value typed as YAML would type it, so --var port=8080 is the number 8080."""
    try:
        value = parse_yaml(text, where) if text.strip() else ""
    except RecipeError:
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def cli_vars(assignments: Iterable[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    problems = []
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        where = Position(f"--var {assignment}")
        if not sep or not IDENTIFIER.match(name):
            problems.append(Problem(where, "--var takes name=value with a valid variable name",
                                    hint="e.g. --var http_port=8080"))
            continue
        values[name] = _scalar(text, "--var")
    if problems:
        raise RecipeError(problems)
    return values


def file_vars(paths: Iterable[Path]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in paths:
        data = load_yaml_file(path, Position(f"--var-file {path}"), "variable file")
        if data is None:
            continue
        if not isinstance(data, YMap):
            raise RecipeError.at(getattr(data, "pos", Position(str(path), 1, 1)),
                                 "a variable file must be a mapping of names to values")
        values.update(data)
    return values


def env_vars(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    return {key[len(ENV_PREFIX):]: _scalar(value, key) for key, value in environ.items()
            if key.startswith(ENV_PREFIX) and IDENTIFIER.match(key[len(ENV_PREFIX):])}


def recipe_vars_file_paths(document: YMap, base: Path) -> list[Path]:
    """The files a recipe's `vars_files:` names (what a bundle for a cluster worker must carry)."""
    names = document.get("vars_files")
    names = [names] if isinstance(names, str) else names if isinstance(names, list) else []
    return [base / name for name in names if isinstance(name, str) and "{{" not in name]


def recipe_vars_files(document: YMap, base: Path) -> dict[str, Any]:
    """A recipe's `vars_files:`, as a play's: read in order, later files win; names relative to the recipe."""
    names = document.get("vars_files")
    names = [names] if isinstance(names, str) else names if isinstance(names, list) else []
    values: dict[str, Any] = {}
    for index, name in enumerate(names):
        where = document.value_pos.get("vars_files") if not isinstance(names, YSeq) else names.item_pos[index]
        if not isinstance(name, str):
            continue   # the schema reports it
        if "{{" in name:
            raise RecipeError.at(where, "vars_files takes fixed file names, not templates",
                                 hint="name the file, or load it in a task with include_vars")
        data = load_yaml_file(base / name, where, "variable file")
        if isinstance(data, YMap):
            values.update(data)
        elif data is not None:
            raise RecipeError.at(getattr(data, "pos", where), "a variable file must be a mapping of names to values")
    return values

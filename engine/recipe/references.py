"""Checks that need the whole recipe: names used in templates are defined, notify
targets and only/except sources exist, and files a task names on this machine
are there. Each problem points at the YAML node at fault.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from engine.errors import Position, Problem
from engine.recipe.loader import LoadedRecipe, names_a
from engine.recipe.model import Origin, Variables
from engine.recipe.schema import did_you_mean, format_path
from engine.recipe.template import GLOBAL_NAMES, is_template, names_used, unsafe_access
from engine.recipe.yamlpos import YMap, YSeq
from engine.registry import TASK_MODULES

EXPRESSION_KEYS = ("when", "changed_when", "failed_when", "until")
BUILTIN_NAMES = frozenset({"build", "facts", "item", "loop", "result", "failed_task", "lookup", "omit"})


def _task_lists(loaded: LoadedRecipe) -> Iterator[tuple[str, Any, Origin]]:
    doc = loaded.document
    for key in ("tasks", "handlers", "verify"):
        if isinstance(doc.get(key), YSeq):
            yield key, doc[key], Origin(base_dir=loaded.path.parent)
    for role in loaded.roles:
        origin = role.origin(loaded.path.parent)
        yield f"roles[{role.name}].tasks", role.tasks, origin
        yield f"roles[{role.name}].handlers", role.handlers, origin


def _walk_tasks(tasks: Any, path: str) -> Iterator[tuple[YMap, str]]:
    if not isinstance(tasks, YSeq):
        return
    for index, task in enumerate(tasks):
        if isinstance(task, YMap):
            task_path = f"{path}[{index}]"
            yield task, task_path
            for key in ("block", "rescue", "always"):
                yield from _walk_tasks(task.get(key), f"{task_path}.{key}")


def _leaves(node: Any, path: list, position: Position | None) -> Iterator[tuple[list, Position | None, Any]]:
    if isinstance(node, YMap):
        for key, value in node.items():
            yield from _leaves(value, [*path, key], node.value_pos.get(key, position))
    elif isinstance(node, YSeq):
        for index, value in enumerate(node):
            yield from _leaves(value, [*path, index], node.item_pos[index] if index < len(node.item_pos) else position)
    else:
        yield path, position, node


def _defined_names(loaded: LoadedRecipe, variables: Variables, secret_names: frozenset[str]) -> set[str]:
    names = set(variables.names()) | set(secret_names) | BUILTIN_NAMES
    for role in loaded.roles:
        names |= set(role.vars) | set(role.params)
    for _, tasks, _ in _task_lists(loaded):
        for task, _ in _walk_tasks(tasks, ""):
            if isinstance(task.get("register"), str):
                names.add(task["register"])
            if isinstance(task.get("vars"), dict):
                names |= set(task["vars"])
            if isinstance(task.get("set_fact"), dict):
                names |= set(task["set_fact"])
            control = task.get("loop_control")
            if isinstance(control, dict) and isinstance(control.get("loop_var"), str):
                names.add(control["loop_var"])
    return names


def _undefined(value: Any, expression: bool, known: set[str]) -> list[str]:
    try:
        used = names_used(value, expression=expression)
    except Exception:  # a syntax error: the schema reports it
        return []
    return sorted(name for name in used if name not in known and name not in GLOBAL_NAMES)


def check_references(loaded: LoadedRecipe, variables: Variables, secret_names: frozenset[str]) -> list[Problem]:
    known = _defined_names(loaded, variables, secret_names)
    problems = []
    doc = loaded.document
    sources = set(doc["sources"]) if isinstance(doc.get("sources"), dict) else set()
    handler_names = _handler_names(loaded)
    for list_path, tasks, origin in _task_lists(loaded):
        for task, task_path in _walk_tasks(tasks, list_path):
            problems += _task_reference_problems(task, task_path, known, sources, handler_names)
            problems += _local_file_problems(task, task_path, origin)
    for layer_name, layer in (("vars", doc.get("vars")),):
        if isinstance(layer, YMap):
            problems += _template_problems(layer, [layer_name], known, expression_keys=())
    for role in loaded.roles:   # a role's variables are only rendered where they are used: the sandbox's check here
        for layer_name, layer in (("vars", role.params), ("defaults", role.defaults), ("vars/main.yml", role.vars)):
            if isinstance(layer, YMap):
                problems += _template_problems(layer, [], None, (), f"roles[{role.name}].{layer_name}")
    return problems


def _names(value: Any) -> list:
    """notify, only, listen: one name or a list of them (anything else the schema reports)."""
    if isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, list) else []


def _handler_names(loaded: LoadedRecipe) -> set[str]:
    names: set[str] = set()
    handler_lists = [loaded.document.get("handlers"), *(role.handlers for role in loaded.roles)]
    for handlers in handler_lists:
        for task, _ in _walk_tasks(handlers, ""):
            if isinstance(task.get("name"), str):
                names.add(task["name"])
            names.update(n for n in _names(task.get("listen")) if isinstance(n, str))
    return names


def _task_reference_problems(task: YMap, path: str, known: set[str], sources: set[str],
                             handler_names: set[str]) -> list[Problem]:
    shallow = YMap(pos=task.pos)   # children of blocks are walked on their own
    for key, value in task.items():
        if key not in ("block", "rescue", "always"):
            shallow[key] = value
            shallow.value_pos[key] = task.value_pos[key]
    problems = _template_problems(shallow, [], known, EXPRESSION_KEYS, path)
    notify = task.get("notify")
    for index, target in enumerate(_names(notify)):
        if isinstance(target, str) and target not in handler_names and not is_template(target):
            where = task.value_pos.get("notify")
            if isinstance(notify, YSeq):
                where = notify.item_pos[index]
            problems.append(Problem(where, f"no handler named {target!r}", path=f"{path}.notify",
                                    hint=did_you_mean(target, handler_names, "define it under handlers:")))
    for key in ("only", "except"):
        for name in _names(task.get(key)):
            if isinstance(name, str) and sources and name not in sources:
                problems.append(Problem(task.value_pos.get(key), f"no source named {name!r}", path=f"{path}.{key}",
                                        hint=did_you_mean(name, sources, "sources: " + ", ".join(sorted(map(str, sources))))))
    return problems


def _local_file_problems(task: YMap, path: str, origin: Origin) -> list[Problem]:
    """Files a task names on this machine (copy src, template src) must exist before anything runs."""
    module = next((k for k in task if k in TASK_MODULES), None)
    args = task.get(module) if module else None
    if not isinstance(args, YMap):
        return []
    problems = []
    for option, kind in TASK_MODULES.get(module).local_files.items():
        name = args.get(option)
        if not isinstance(name, str) or is_template(name):
            continue
        candidates = [Path(name)] if Path(name).is_absolute() else [d / name for d in origin.search_dirs(kind)]
        if not any(names_a("file", c) for c in candidates):
            searched = ", ".join(str(c.parent) for c in candidates)
            problems.append(Problem(args.value_pos.get(option), f"{kind[:-1]} {name!r} not found",
                                    path=f"{path}.{module}.{option}", hint=f"looked in {searched}"))
    return problems


def _template_problems(node: YMap, base: list, known: set[str] | None, expression_keys: tuple[str, ...],
                       path_prefix: str = "") -> list[Problem]:
    """Templates that reach what the sandbox refuses, and (unless known is None) names nothing defines."""
    problems = []
    for path, position, value in _leaves(node, base, node.pos):
        if not isinstance(value, str):
            continue
        expression = bool(path) and path[0] in expression_keys and not is_template(value)
        where = format_path(path)
        full = f"{path_prefix}.{where}" if path_prefix and where else (path_prefix or where)
        if expression or is_template(value):
            refused = unsafe_access(value, expression=expression)
            if refused:
                problems.append(Problem(position, f"refused by the template sandbox: {refused}", path=full,
                                        hint="templates may not reach Python internals"))
        for name in _undefined(value, expression, known) if known is not None else ():
            problems.append(Problem(position, f"undefined variable {name!r}", path=full,
                                    hint=did_you_mean(name, known - BUILTIN_NAMES,
                                                      "define it under vars:, pass --var, or use | default(...)")))
    return problems

"""The keys of a build's cache layers: one per top-level task, each a hash of the key before it and of
everything that decides what the task does to the machine.

What goes into a task's key:
- the task as compiled, blocks and imported roles included, without its position (moving a task down a
  file, or editing a comment above it, changes nothing it does);
- the content of the local files it may read: every literal path among its options that names a file or
  folder beside the recipe or in its role, and the whole files/ and templates/ folders when a path is a
  template or a file lookup reads one;
- the variables its templates read (and those their values read in turn), as written; a secret only as an
  HMAC of its value under a key of this user's cache (engine.cache.layer_store), never in clear;
- the recipe's handlers, become and the run's tags (they decide what a task runs).

Facts are not in a task's key: the first layer's key holds the base image and the VM settings they come
from. The machine's names are (its hostname, and the play's inventory_hostname), for the tasks that read a
fact or a host variable: two recipes share the layers of their common tasks, except those.

What differs between two runs of the same tasks on the same machine is not cacheable, and neither is
anything after it: a task reading build.id or build.timestamp, the time (now(), date_time, uptime), a fact
each build gets afresh (machine_id, the SSH host keys), or a lookup other than file and template (env, pipe,
password, url...).
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.recipe.model import Origin, Recipe, Task
from engine.recipe.template import all_names_read, is_template, lookups_called

FORMAT = 1                                  # what a layer holds; a new format makes every old key unused
UNPOSITIONED = ("position", "args_position", "path")
FILE_LOOKUPS = frozenset({"file", "template", "fileglob", "first_found"})
# what differs between two boots of one image: the time, and what each build gets afresh (RotateKeys)
VOLATILE = re.compile(r"(?:\b|(?<=ansible_))"
                      r"(?:date_time|uptime_seconds|memfree_mb|epoch|iso8601|machine_id|ssh_host_key\w*)\b")
HOST_NAMES = frozenset({"inventory_hostname", "inventory_hostname_short", "hostvars", "groups", "group_names",
                        "play_hosts", "ansible_play_hosts", "ansible_play_batch"})
BUILD_ATTRIBUTE = re.compile(r"\bbuild\b(?:\s*\.\s*(\w+)|\s*\[\s*['\"](\w+)['\"]\s*\])?")
STABLE_BUILD_FIELDS = frozenset({"recipe", "source", "name"})
EXPRESSIONS = frozenset({"when", "changed_when", "failed_when", "until"})   # bare Jinja expressions
# options whose absolute paths name files on the build host (an absolute path elsewhere is the machine's)
LOCAL_OPTIONS = frozenset({"src", "playbook", "manifest", "modules", "hiera_config", "cookbooks", "roles",
                           "data_bags", "environments", "requirements", "roles_path", "collections_path", "file"})


@dataclass(frozen=True)
class KeyInputs:
    recipe: Recipe
    build_vars: Mapping[str, Any]           # the `build` variable: its recipe, source and name may be used
    hmac_key: bytes
    host: tuple[str, str] = ("", "")        # the machine's hostname and the play's inventory_hostname
    tags: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


@dataclass(frozen=True)
class TaskKey:
    key: str | None                         # None: this task, and every one after it, runs every time
    why_not: str = ""                       # why not, for the console


def digest(material: Any) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def task_keys(first: str, tasks: tuple[Task, ...], inputs: KeyInputs) -> list[TaskKey]:
    """The key of the layer after each task; `first` is the key of the booted machine's layer."""
    variables = _merged(inputs.recipe)
    common = {"format": FORMAT, "handlers": [_canonical(handler.task) for handler in inputs.recipe.handlers],
              "become": inputs.recipe.become, "tags": inputs.tags}
    keys: list[TaskKey] = []
    parent: str | None = first
    for task in tasks:
        if parent is None:
            keys.append(TaskKey(None, keys[-1].why_not))
            continue
        why_not = uncacheable(task)
        if why_not:
            keys.append(TaskKey(None, why_not))
            parent = None
            continue
        material = {"parent": parent, "common": common, "task": _canonical(task), "files": _files(task),
                    "vars": _variables(task, variables, inputs), "host": inputs.host if _reads_host(task) else None}
        parent = digest(material)
        keys.append(TaskKey(parent))
    return keys


def uncacheable(task: Task) -> str:
    """Why the task's effect may differ between two runs of it, or an empty string."""
    if not _cached(task):
        return "it says cache: false"
    for text, expression in _strings(task):
        names = all_names_read(text, expression)
        reads_facts = bool(names & {"ansible_facts", "facts"} or _fact_names(names))
        if "now" in names or (reads_facts and VOLATILE.search(text)):
            return "it reads the time"
        if "build" in names:
            for match in BUILD_ATTRIBUTE.finditer(text):
                field = match.group(1) or match.group(2)
                if field not in STABLE_BUILD_FIELDS:
                    return f"it reads build.{field}" if field else "it reads the build variable"
        other = lookups_called(text if not expression else "{{ " + text + " }}") - FILE_LOOKUPS
        if other:
            return f"it calls the {', '.join(sorted(other))} lookup"
    return ""


def _reads_host(task: Task) -> bool:
    """Whether the task reads a fact or a variable naming the host (their values differ between recipes)."""
    for text, expression in _strings(task):
        names = all_names_read(text, expression)
        if names & ({"ansible_facts", "facts"} | HOST_NAMES) or _fact_names(names):
            return True
    return False


def _cached(task: Task) -> bool:
    return task.cache and all(_cached(inner) for inner in (*task.block, *task.rescue, *task.always))


def _fact_names(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith("ansible_")}


def _strings(value: Any, expression: bool = False) -> Iterator[tuple[str, bool]]:
    """Every string of a task, its blocks' and its options' included, and whether it is a bare expression."""
    if isinstance(value, str):
        yield value, expression
    elif isinstance(value, Task):
        for field in dataclasses.fields(value):
            if field.name not in UNPOSITIONED and field.name != "origin":
                yield from _strings(getattr(value, field.name), field.name in EXPRESSIONS)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item, expression)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _strings(item, expression)


def _canonical(value: Any) -> Any:
    if isinstance(value, Task):
        return {field.name: _canonical(getattr(value, field.name)) for field in dataclasses.fields(value)
                if field.name not in UNPOSITIONED}
    if isinstance(value, Origin):                # where its files are is not what they hold (see _files)
        return {"role": value.role, "collection": value.collection, "role_vars": _canonical(value.role_vars)}
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(json.dumps(_canonical(item), sort_keys=True, default=str) for item in value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def _origins(task: Task) -> list[Origin]:
    """The task's origin and its blocks' (a block may hold an imported role's tasks), each once."""
    found = [task.origin]
    for inner in (*task.block, *task.rescue, *task.always):
        found += [origin for origin in _origins(inner) if origin not in found]
    return found


def _files(task: Task) -> dict[str, str]:
    """Content hashes of the local files the task may read, by path relative to where they were found."""
    found: dict[str, str] = {}
    templated = any(is_template(text) for text, _ in _strings(task.args)) or bool(lookups_called(task.args))
    for origin in _origins(task):
        roots = [origin.role_dir, origin.role_dir / "tasks"] if origin.role_dir else []
        roots += [origin.base_dir]
        for kind in ("files", "templates"):
            roots += origin.search_dirs(kind)
        for text, expression in _strings(task):
            if expression or is_template(text) or "\n" in text or not text or len(text) > 4096 or \
                    Path(text).is_absolute():
                continue
            for root in roots:
                candidate = root / text
                if _is_local(candidate, origin):
                    found.update(_hashes(candidate, origin))
                    break
        if templated:
            for root in roots:
                if root.name in ("files", "templates") and root.is_dir():
                    found.update(_hashes(root, origin))
        for text in _absolute_local_paths(task.args):
            if Path(text).exists():
                found.update(_hashes(Path(text), origin))
    return dict(sorted(found.items()))


def _absolute_local_paths(args: Any) -> Iterator[str]:
    if not isinstance(args, Mapping):
        return
    for option, value in args.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if option in LOCAL_OPTIONS:
            yield from (each for each in values if isinstance(each, str) and Path(each).is_absolute()
                        and not is_template(each))


def _is_local(path: Path, origin: Origin) -> bool:
    try:
        return path.exists() and path.resolve() != origin.base_dir.resolve()
    except (OSError, ValueError):
        return False


def _hashes(path: Path, origin: Origin) -> Iterator[tuple[str, str]]:
    base = origin.role_dir or origin.base_dir
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        try:
            name = str(file.resolve().relative_to(base.resolve()))
        except ValueError:
            name = str(file.resolve())
        yield name, hashlib.sha256(file.read_bytes()).hexdigest()


def _merged(recipe: Recipe) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in recipe.variables.layers():
        merged.update(layer)
    return merged


def _variables(task: Task, variables: Mapping[str, Any], inputs: KeyInputs) -> dict[str, Any]:
    """The values of the variables the task's templates read, and of those their values read in turn."""
    seen: dict[str, Any] = {}
    todo = [name for text, expression in _strings(task) for name in all_names_read(text, expression)]
    for origin in _origins(task):
        todo += [name for text, _ in _strings(origin.role_vars) for name in all_names_read(text)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name == "build":
            seen[name] = {field: inputs.build_vars.get(field) for field in sorted(STABLE_BUILD_FIELDS)}
        elif name in inputs.recipe.secrets:
            value = json.dumps(variables.get(name), sort_keys=True, default=str).encode()
            seen[name] = "hmac:" + hmac.new(inputs.hmac_key, value, hashlib.sha256).hexdigest()
        elif name in variables:
            seen[name] = _canonical(variables[name])
            todo += [inner for text, _ in _strings(variables[name]) for inner in all_names_read(text)]
    return seen

"""Read a recipe and everything it pulls in: included task files and roles.

The result is still YAML data (YMap/YSeq with positions); the schema and the
model come after. Includes are expanded here, statically, so that `validate`
sees every task; an include becomes a block carrying the include's keywords.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.errors import Position, Problem, RecipeError
from engine.recipe.model import Origin
from engine.recipe.schema import type_name
from engine.recipe.yamlpos import YMap, YSeq, load_yaml_file

INCLUDE_KEYS = ("import_tasks", "include_tasks")
TASK_LIST_KEYS = ("block", "rescue", "always")
LIBRARY_ROLES = Path(__file__).resolve().parents[2] / "playbooks" / "roles"


@dataclass
class LoadedRole:
    """A role as found on disk, with the place the recipe named it."""

    name: str
    directory: Path
    referenced_at: Position
    params: YMap                                 # vars given where the role is named
    tasks: YSeq
    handlers: YSeq
    defaults: YMap
    vars: YMap
    argument_specs: YMap | None

    def origin(self, base_dir: Path) -> Origin:
        """Where this role's tasks look for files, and the variables they see."""
        return Origin(base_dir=base_dir, role=self.name, role_dir=self.directory,
                      role_vars=MappingProxyType({**self.vars, **self.params}))


@dataclass
class LoadedRecipe:
    path: Path
    document: YMap
    roles: list[LoadedRole] = field(default_factory=list)
    files_read: list[Path] = field(default_factory=list)

    def digest(self) -> str:
        sha = hashlib.sha256()
        for path in self.files_read:
            sha.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
        return sha.hexdigest()


class Loader:
    def __init__(self, roles_path: list[Path] | None = None):
        env_path = [Path(p) for p in os.environ.get("RECIPE_ROLES_PATH", "").split(os.pathsep) if p]
        self.roles_path = [*(roles_path or []), *env_path]
        self.files_read: list[Path] = []
        self.problems: list[Problem] = []

    def load(self, path: Path) -> LoadedRecipe:
        path = path.resolve() if path.exists() else path
        document = self._read(path, None, "recipe")
        if not isinstance(document, YMap):
            raise RecipeError.at(getattr(document, "pos", Position(str(path), 1, 1) if document is not None
                                         else Position(str(path))),
                                 "a recipe must be a mapping (name:, sources:, tasks:, ...)",
                                 hint="see playbooks/examples/hello-ssh.yml for the shape of a recipe")
        base = path.parent
        for key in ("tasks", "handlers", "verify"):
            if isinstance(document.get(key), YSeq):
                document[key] = self._expand(document[key], base, [path])
        loaded = LoadedRecipe(path=path, document=document)
        if isinstance(document.get("roles"), YSeq):
            loaded.roles = self._load_roles(document["roles"], base)
        loaded.files_read = list(dict.fromkeys(self.files_read))
        if self.problems:
            raise RecipeError(self.problems)
        return loaded

    def _read(self, path: Path, referenced_at: Position | None, what: str) -> Any:
        data = load_yaml_file(path, referenced_at, what)
        self.files_read.append(path)
        return data

    # -- includes -----------------------------------------------------------

    def _expand(self, tasks: YSeq, base: Path, chain: list[Path]) -> YSeq:
        """Replace include entries by blocks of the included tasks, recursively."""
        out = YSeq(pos=tasks.pos)
        for index, task in enumerate(tasks):
            position = tasks.item_pos[index]
            if isinstance(task, YMap):
                task = self._expand_task(task, base, chain)
            out.append(task)
            out.item_pos.append(position)
        return out

    def _expand_task(self, task: YMap, base: Path, chain: list[Path]) -> YMap:
        for key in TASK_LIST_KEYS:
            if isinstance(task.get(key), YSeq):
                task[key] = self._expand(task[key], base, chain)
        include_keys = [k for k in INCLUDE_KEYS if k in task]
        if not include_keys:
            return task
        key = include_keys[0]
        target = task[key]
        where = task.value_pos[key]
        if not isinstance(target, str):
            self.problems.append(Problem(where, f"{key} takes a file name", hint="e.g. import_tasks: common.yml"))
            return task
        if "{{" in target:
            self.problems.append(Problem(where, f"{key} needs a fixed file name, not a template",
                                         hint="includes are read when the recipe is validated"))
            return task
        path = _resolved(base / target)
        if path is None:
            self.problems.append(Problem(where, f"{key}: {target[:80]!r} is not a usable file name",
                                         hint="a path the system can open: no NUL byte, no name over 255 characters"))
            return task
        if path in chain:
            cycle = " -> ".join(p.name for p in [*chain[chain.index(path):], path])
            self.problems.append(Problem(where, f"include loop: {cycle}",
                                         hint="a file may not include itself, directly or through others"))
            return task
        try:
            included = self._read(path, where, "included task file")
        except RecipeError as exc:
            self.problems.extend(exc.problems)
            return task
        if included is None:
            included = YSeq(pos=Position(str(path), 1, 1))
        if not isinstance(included, YSeq):
            self.problems.append(Problem(getattr(included, "pos", Position(str(path), 1, 1)),
                                         f"an included task file must be a list of tasks, got {type_name(included)}"))
            return task
        block = YMap(pos=task.pos)
        for k, v in task.items():
            if k != key:
                block[k] = v
                block.key_pos[k], block.value_pos[k] = task.key_pos[k], task.value_pos[k]
        block["block"] = self._expand(included, path.parent, [*chain, path])
        block.key_pos["block"] = task.key_pos[key]
        block.value_pos["block"] = included.pos
        return block

    # -- roles ----------------------------------------------------------------

    def role_dirs(self, base: Path) -> list[Path]:
        return [base / "roles", *self.roles_path, LIBRARY_ROLES]

    def _load_roles(self, entries: YSeq, base: Path) -> list[LoadedRole]:
        roles = []
        for index, entry in enumerate(entries):
            where = entries.item_pos[index]
            name, params = self._role_reference(entry, where)
            if name is None:
                continue
            directory = next((d / name for d in self.role_dirs(base) if names_a("dir", d / name)), None)
            if directory is None:
                searched = ", ".join(str(d) for d in self.role_dirs(base))
                self.problems.append(Problem(where, f"role {name!r} not found",
                                             hint=f"looked in {searched}; add --roles-path or RECIPE_ROLES_PATH"))
                continue
            try:
                roles.append(self._load_role(name, directory.resolve(), where, params))
            except RecipeError as exc:
                self.problems.extend(exc.problems)
        return roles

    def _role_reference(self, entry: Any, where: Position) -> tuple[str | None, YMap]:
        if isinstance(entry, str):
            return entry, YMap(pos=where)
        if isinstance(entry, YMap) and isinstance(entry.get("role"), str):
            params = entry.get("vars", YMap(pos=where))
            return entry["role"], params if isinstance(params, YMap) else YMap(pos=where)
        # the schema reports the shape; nothing to load
        return None, YMap(pos=where)

    def _load_role(self, name: str, directory: Path, where: Position, params: YMap) -> LoadedRole:
        def optional(relative: str, expect: type, empty: Any) -> Any:
            path = directory / relative
            if not path.exists():
                return empty
            data = self._read(path, where, f"role file {relative}")
            if data is None:
                return empty
            if not isinstance(data, expect):
                kind = "a list" if expect is YSeq else "a mapping"
                raise RecipeError.at(getattr(data, "pos", Position(str(path), 1, 1)),
                                     f"{relative} of role {name!r} must be {kind}, got {type_name(data)}")
            return data

        file_pos = Position(str(directory), 1, 1)
        tasks = optional("tasks/main.yml", YSeq, YSeq(pos=file_pos))
        handlers = optional("handlers/main.yml", YSeq, YSeq(pos=file_pos))
        specs = optional("meta/argument_specs.yml", YMap, None)
        return LoadedRole(
            name=name, directory=directory, referenced_at=where, params=params,
            tasks=self._expand(tasks, directory / "tasks", [directory / "tasks/main.yml"]),
            handlers=self._expand(handlers, directory / "handlers", [directory / "handlers/main.yml"]),
            defaults=optional("defaults/main.yml", YMap, YMap(pos=file_pos)),
            vars=optional("vars/main.yml", YMap, YMap(pos=file_pos)),
            argument_specs=specs,
        )


def _resolved(path: Path) -> Path | None:
    """path made absolute, or None when the name cannot be one (a NUL byte, too long)."""
    try:
        return path.resolve()
    except (OSError, ValueError):
        return None


def names_a(kind: str, path: Path) -> bool:
    """Whether path names a "file" or a "dir"; a name the system refuses (too long, a NUL byte) names neither."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except (OSError, ValueError):
        return False


def load_recipe(path: Path, roles_path: list[Path] | None = None) -> LoadedRecipe:
    if not path.exists():
        raise RecipeError.at(Position(str(path)), f"recipe file not found: {path}",
                             hint="give the path of a .yml recipe, e.g. recipe run web.yml")
    return Loader(roles_path).load(path)

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
from typing import Any, Iterator, Mapping

from engine.errors import Position, Problem, RecipeError
from engine.recipe.collections import collection_role_dirs, split_role_fqcn
from engine.recipe.kv import parse_kv
from engine.recipe.model import Origin
from engine.recipe.recipe_schema import INCLUDE_MARK, ROLE_CHOICE_MARK, ROLE_MARK
from engine.recipe.role_choice import loop_role_names
from engine.recipe.schema import type_name
from engine.recipe.template import is_template
from engine.recipe.yamlpos import YMap, YSeq, load_yaml_file
from engine.registry import TASK_MODULES

INCLUDE_KEYS = ("import_tasks", "include_tasks")
ROLE_INCLUDE_KEYS = ("import_role", "include_role")
# the role files include_role/import_role may pick instead of <folder>/main.yml
ROLE_ENTRY_KEYS = ("tasks_from", "handlers_from", "vars_from", "defaults_from")
EMPTY_ENTRY: Mapping[str, str] = MappingProxyType({})
TASK_LIST_KEYS = ("block", "rescue", "always")
TASK_SECTIONS = ("pre_tasks", "tasks", "post_tasks", "handlers", "verify")
# What a role entry (`- role: x`) and a meta/main.yml dependency may say besides the role and its variables;
# any other key is a variable of the role, as Ansible takes it (`- {role: x, http_port: 80}`).
ROLE_KEYWORDS = ("when", "tags", "become", "become_user", "become_method", "remote_user", "environment", "no_log",
                 "check_mode", "diff", "ignore_errors", "delegate_to", "any_errors_fatal", "vars")
ROLE_NAME_KEYS = ("role", "name")
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
    keywords: YMap = field(default_factory=YMap)  # when, tags, become, ... written where the role is named
    key: str = ""                                # unique among the recipe's roles: what ROLE_MARK names
    inline: bool = False                         # named by include_role/import_role: runs where it is named
    included: bool = False                       # named by include_role: its handlers exist once it has run

    @property
    def collection(self) -> str | None:
        """The collection ("ns.col") of a role named ns.col.<role> and found in an ansible_collections folder."""
        parts = split_role_fqcn(self.name)
        return parts[0] if parts and "ansible_collections" in self.directory.parts else None

    def origin(self, base_dir: Path) -> Origin:
        """Where this role's tasks look for files, and the variables they see."""
        short = self.name.rsplit(".", 1)[-1] if self.collection else self.name
        return Origin(base_dir=base_dir, role=short, role_dir=self.directory, collection=self.collection,
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
        self.roles: list[LoadedRole] = []
        self.base = Path(".")
        self.playbook_dir: Path | None = None    # the recipe's folder, once a recipe is loaded

    def load(self, path: Path) -> LoadedRecipe:
        path = path.resolve() if path.exists() else path
        document = self._read(path, None, "recipe")
        if not isinstance(document, YMap):
            raise RecipeError.at(getattr(document, "pos", Position(str(path), 1, 1) if document is not None
                                         else Position(str(path))),
                                 "a recipe must be a mapping (name:, sources:, tasks:, ...)",
                                 hint="see playbooks/examples/hello-ssh.yml for the shape of a recipe")
        self.base = self.playbook_dir = path.parent
        if isinstance(document.get("roles"), YSeq):
            self._load_roles(document["roles"])
        for key in TASK_SECTIONS:
            if isinstance(document.get(key), YSeq):
                document[key] = self._expand(document[key], self.base, [path])
        loaded = LoadedRecipe(path=path, document=document, roles=self.roles)
        loaded.files_read = list(dict.fromkeys(self.files_read))
        if self.problems:
            raise RecipeError(self.problems)
        return loaded

    def load_task_file(self, path: Path, where: Position) -> YSeq:
        """One task file, its static includes expanded: what an include_tasks read at run time brings."""
        tasks = self._read(path, where, "included task file")
        tasks = tasks if tasks is not None else YSeq(pos=Position(str(path), 1, 1))
        if not isinstance(tasks, YSeq):
            raise RecipeError.at(getattr(tasks, "pos", Position(str(path), 1, 1)),
                                 f"an included task file must be a list of tasks, got {type_name(tasks)}")
        expanded = self._expand(tasks, path.parent, [path])
        if self.problems:
            raise RecipeError(self.problems)
        return expanded

    def _read(self, path: Path, referenced_at: Position | None, what: str) -> Any:
        data = load_yaml_file(path, referenced_at, what)
        self.files_read.append(path)
        return data

    # -- includes -----------------------------------------------------------

    def _expand(self, tasks: YSeq, base: Path, chain: list[Path], role_tasks: Path | None = None) -> YSeq:
        """Replace include entries by blocks of the included tasks, recursively. In a role, a file not beside
        the including one is looked for in the role's tasks/, as Ansible does (a handler including a task)."""
        out = YSeq(pos=tasks.pos)
        for index, task in enumerate(tasks):
            position = tasks.item_pos[index]
            if isinstance(task, YMap):
                task = self._expand_task(task, base, chain, role_tasks)
            out.append(task)
            out.item_pos.append(position)
        return out

    def _expand_task(self, task: YMap, base: Path, chain: list[Path], role_tasks: Path | None) -> YMap:
        task = _action_form(task)
        for key in TASK_LIST_KEYS:
            if isinstance(task.get(key), YSeq):
                task[key] = self._expand(task[key], base, chain, role_tasks)
        include_keys = [k for k in task if TASK_MODULES.canonical(k) in INCLUDE_KEYS + ROLE_INCLUDE_KEYS
                        or k in INCLUDE_KEYS + ROLE_INCLUDE_KEYS]
        if not include_keys:
            return task
        key = include_keys[0]
        kind = TASK_MODULES.canonical(key) or key
        spec = include_spec(task[key], task.get("args"))
        where = task.value_pos[key]
        if kind in ROLE_INCLUDE_KEYS:
            return self._role_block(task, key, kind, spec, where)
        target = spec.get("file")
        if not isinstance(target, str):
            self.problems.append(Problem(where, f"{key} takes a file name", hint="e.g. import_tasks: common.yml"))
            return task
        if is_template(target):
            if kind == "include_tasks":
                return task            # resolved when it runs, with the facts and variables of the moment
            self.problems.append(Problem(where, f"{key} needs a fixed file name, not a template",
                                         hint="import_tasks is read when the recipe is loaded; include_tasks "
                                              "takes a file name that is only known when it runs"))
            return task
        if not names_a("file", base / target):
            # then, as Ansible's search goes on: the role's tasks/, beside the playbook (the recipe)
            base = next((folder for folder in (role_tasks, self.playbook_dir)
                         if folder is not None and names_a("file", folder / target)), base)
        included = self._included_tasks(target, base, chain, where, key)
        if included is None:
            return task
        path, tasks = included
        return _as_block(task, key, kind, spec, self._expand(tasks, path.parent, [*chain, path], role_tasks))

    def _included_tasks(self, target: str, base: Path, chain: list[Path], where: Position,
                        key: str) -> tuple[Path, YSeq] | None:
        path = _resolved(base / target)
        if path is None:
            self.problems.append(Problem(where, f"{key}: {target[:80]!r} is not a usable file name",
                                         hint="a path the system can open: no NUL byte, no name over 255 characters"))
            return None
        if path in chain:
            cycle = " -> ".join(p.name for p in [*chain[chain.index(path):], path])
            self.problems.append(Problem(where, f"include loop: {cycle}",
                                         hint="a file may not include itself, directly or through others"))
            return None
        try:
            included = self._read(path, where, "included task file")
        except RecipeError as exc:
            self.problems.extend(exc.problems)
            return None
        if included is None:
            included = YSeq(pos=Position(str(path), 1, 1))
        if not isinstance(included, YSeq):
            self.problems.append(Problem(getattr(included, "pos", Position(str(path), 1, 1)),
                                         f"an included task file must be a list of tasks, got {type_name(included)}"))
            return None
        return path, included

    # -- roles ----------------------------------------------------------------

    def role_dirs(self, base: Path) -> list[Path]:
        return [base / "roles", *self.roles_path, LIBRARY_ROLES]

    def _load_roles(self, entries: YSeq) -> None:
        for index, entry in enumerate(entries):
            reference = role_reference(entry, entries.item_pos[index])
            # a role named twice with the same variables runs once, as in Ansible
            if reference is not None and not self._already_added(reference):
                self._add_role(reference, inline=False, chain=[])

    def _find_role(self, name: str, where: Position, near: Path | None = None) -> Path | None:
        # a dependency or include_role may name a role beside the one naming it, as Ansible looks there too
        # a collection's role (ns.col.role) first, as Ansible looks
        candidates = collection_role_dirs(name, self.base)
        dirs = self.role_dirs(self.base) + ([near] if near else [])
        candidates += [d / name for d in dirs]
        directory = next((c for c in candidates if names_a("dir", c)), None)
        if directory is None:
            searched = ", ".join(str(d) for d in [*(c.parent for c in candidates[:-len(dirs)]), *dirs])
            self.problems.append(Problem(where, f"role {name!r} not found",
                                         hint=f"looked in {searched}; add --roles-path or RECIPE_ROLES_PATH"))
        return directory.resolve() if directory else None

    def _add_role(self, reference: "RoleReference", inline: bool, chain: list[str],
                  near: Path | None = None, entry: Mapping[str, str] = EMPTY_ENTRY) -> list[LoadedRole]:
        """Load a role and, before it, the roles its meta/main.yml depends on: the roles added, in run order."""
        directory = self._find_role(reference.name, reference.where, near)
        if directory is None:
            return []
        if reference.name in chain:
            self.problems.append(Problem(reference.where, "role dependency loop: " + " -> ".join([*chain, reference.name]),
                                         hint="a role may not depend on itself, directly or through others"))
            return []
        added: list[LoadedRole] = []
        try:
            meta = self._optional(directory, "meta/main.yml", YMap, None, reference)
            for dependency in _dependencies(meta):
                if not self._already_added(dependency):
                    # a dependency runs under the condition and tags of the role that needs it
                    dependency.keywords = _with_parent_keywords(reference.keywords, dependency.keywords)
                    added += self._add_role(dependency, inline, [*chain, reference.name], directory.parent)
            role = self._load_role(reference, directory, entry)
        except RecipeError as exc:
            self.problems.extend(exc.problems)
            return added
        role.inline = inline
        role.key = f"{role.name}#{len(self.roles)}"
        self.roles.append(role)
        return [*added, role]

    def _already_added(self, reference: "RoleReference") -> bool:
        """A dependency named again with the same variables runs once (Ansible's default, allow_duplicates
        false)."""
        return any(r.name == reference.name and dict(r.params) == dict(reference.params) for r in self.roles)

    def _optional(self, directory: Path, relative: str, expect: type, empty: Any, reference: "RoleReference") -> Any:
        path = directory / relative
        if not path.exists():
            return empty
        data = self._read(path, reference.where, f"role file {relative}")
        if data is None:
            return empty
        if not isinstance(data, expect):
            kind = "a list" if expect is YSeq else "a mapping"
            raise RecipeError.at(getattr(data, "pos", Position(str(path), 1, 1)),
                                 f"{relative} of role {reference.name!r} must be {kind}, got {type_name(data)}")
        return data

    def _load_role(self, reference: "RoleReference", directory: Path, entry: Mapping[str, str]) -> LoadedRole:
        """The role's files; `entry` names other ones than main.yml, as include_role's tasks_from,
        handlers_from, vars_from and defaults_from do."""
        file_pos = Position(str(directory), 1, 1)
        files = {kind: f"{kind}/{_yml(entry.get(f'{kind}_from', 'main'))}"
                 for kind in ("tasks", "handlers", "vars", "defaults")}
        for kind, relative in files.items():      # a file named by *_from must be there, as Ansible requires
            if is_template(entry.get(f"{kind}_from")):
                raise RecipeError.at(reference.where, f"{kind}_from takes a fixed file name, not a template",
                                     hint="a role's files are read when the recipe is loaded")
            if f"{kind}_from" in entry and not (directory / relative).is_file():
                raise RecipeError.at(reference.where, f"role {reference.name!r} has no {relative}",
                                     hint=f"{kind}_from names a file in the role's {kind}/ folder")
        tasks = self._optional(directory, files["tasks"], YSeq, YSeq(pos=file_pos), reference)
        handlers = self._optional(directory, files["handlers"], YSeq, YSeq(pos=file_pos), reference)
        return LoadedRole(
            name=reference.name, directory=directory, referenced_at=reference.where, params=reference.params,
            tasks=self._expand(tasks, directory / "tasks", [directory / files["tasks"]], directory / "tasks"),
            handlers=self._expand(handlers, directory / "handlers", [directory / files["handlers"]],
                                  directory / "tasks"),
            defaults=self._optional(directory, files["defaults"], YMap, YMap(pos=file_pos), reference),
            vars=self._optional(directory, files["vars"], YMap, YMap(pos=file_pos), reference),
            argument_specs=self._optional(directory, "meta/argument_specs.yml", YMap, None, reference),
            keywords=reference.keywords,
        )

    def _role_block(self, task: YMap, key: str, kind: str, spec: dict, where: Position) -> YMap:
        """include_role/import_role: the role's tasks as a block that runs with the role's origin."""
        name = spec.get("name")
        names = loop_role_names(task, name) if isinstance(name, str) and kind == "include_role" else None
        if not isinstance(name, str) or (is_template(name) and names is None):
            self.problems.append(Problem(where, f"{key} takes a fixed role name (name: x), or one its loop's items "
                                                f"name (name: \"{{{{ item }}}}\", loop: [a, b])",
                                         hint="roles are read when the recipe is loaded"))
            return task
        if not is_template(name):
            tasks = self._role_tasks(name, where, spec, kind)
            return task if tasks is None else _as_block(task, key, kind, spec, tasks)
        choices = YSeq(pos=where)
        for candidate in names or []:
            tasks = self._role_tasks(candidate, where, spec, kind)
            if tasks is None:
                return task
            choice = YMap(pos=where)
            choice[ROLE_CHOICE_MARK], choice["block"] = candidate, tasks
            choice.key_pos.update({ROLE_CHOICE_MARK: where, "block": where})
            choice.value_pos.update({ROLE_CHOICE_MARK: where, "block": tasks.pos})
            choices.append(choice)
            choices.item_pos.append(where)
        block = _as_block(task, key, kind, spec, choices)
        block[ROLE_CHOICE_MARK] = name
        block.key_pos[ROLE_CHOICE_MARK] = block.value_pos[ROLE_CHOICE_MARK] = where
        return block

    def _role_tasks(self, name: str, where: Position, spec: dict, kind: str) -> YSeq | None:
        """The named role's tasks, after its dependencies', each a block running as its own role."""
        reference = RoleReference(name=name, where=where, params=YMap(pos=where), keywords=YMap(pos=where))
        entry = {key: str(value) for key, value in spec.items() if key in ROLE_ENTRY_KEYS and value is not None}
        roles = self._add_role(reference, inline=True, chain=[], entry=entry)
        if not roles or roles[-1].name != name:
            return None
        for role in roles:
            role.included = kind == "include_role"
        tasks = YSeq(pos=roles[-1].tasks.pos)
        for role in roles:
            tasks.append(role_block(role))
            tasks.item_pos.append(where)
        return tasks


def _yml(name: str) -> str:
    """A role file as *_from names it: `alternate` or `alternate.yml`."""
    return name if name.endswith((".yml", ".yaml", ".json")) else f"{name}.yml"


@dataclass
class RoleReference:
    name: str
    where: Position
    params: YMap
    keywords: YMap


def role_reference(entry: Any, where: Position) -> RoleReference | None:
    """`- x`, `- role: x`, `- {name: x, vars: {...}, when: ..., some_var: 1}` (None: the schema reports it)."""
    if isinstance(entry, str):
        return RoleReference(entry, where, YMap(pos=where), YMap(pos=where))
    if not isinstance(entry, YMap):
        return None
    name = next((entry[k] for k in ROLE_NAME_KEYS if isinstance(entry.get(k), str)), None)
    if name is None:
        return None
    params, keywords = YMap(pos=entry.pos), YMap(pos=entry.pos)
    for key, value in entry.items():
        if key in ROLE_NAME_KEYS:
            continue
        if key == "vars" and isinstance(value, YMap):
            _copy_items(value, params)
            continue
        target = keywords if key in ROLE_KEYWORDS else params
        target[key] = value
        target.key_pos[key], target.value_pos[key] = entry.key_pos[key], entry.value_pos[key]
    return RoleReference(name, where, params, keywords)


def _with_parent_keywords(parent: YMap, own: YMap) -> YMap:
    """A dependency's keywords: its own, with the `when` and `tags` of the role naming it added."""
    merged = YMap(pos=own.pos)
    _copy_items(parent, merged)
    _copy_items(own, merged)
    for key in ("when", "tags"):
        if key in parent and key in own:
            merged[key] = YSeq([*_as_list(parent[key]), *_as_list(own[key])], pos=own.pos)
            merged[key].item_pos.extend([own.pos] * len(merged[key]))
    return merged


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list) else [value]


def _copy_items(source: YMap, target: YMap) -> None:
    for key, value in source.items():
        target[key] = value
        target.key_pos[key], target.value_pos[key] = source.key_pos[key], source.value_pos[key]


def _dependencies(meta: YMap | None) -> list[RoleReference]:
    entries = meta.get("dependencies") if isinstance(meta, YMap) else None
    if not isinstance(entries, YSeq):
        return []
    return [ref for i, e in enumerate(entries) if (ref := role_reference(e, entries.item_pos[i])) is not None]


def include_spec(value: Any, args: Any) -> dict[str, Any]:
    """An include's options however written: `x.yml`, `file=x.yml`, `{file: x.yml, apply: {...}}`, + `args:`."""
    spec: dict[str, Any] = {}
    if isinstance(args, dict):
        spec.update(args)
    if isinstance(value, dict):
        spec.update(value)
    elif isinstance(value, str):
        parsed = parse_kv(value) if "=" in value and not is_template(value.split("=")[0]) else None
        if parsed is not None and not parsed.free_form:
            spec.update(parsed.options)
        else:
            spec["file"] = value
    if "file" not in spec and "_raw_params" in spec:
        spec["file"] = spec.pop("_raw_params")
    return spec


ACTION_KEYS = ("action", "local_action")


def _action_form(task: YMap) -> YMap:
    """Ansible's older `action: copy src=a dest=b` (and `local_action:`, which runs on this host) as the
    module key it stands for: {copy: "src=a dest=b"}."""
    key = next((k for k in ACTION_KEYS if k in task), None)
    if key is None:
        return task
    value = task[key]
    if isinstance(value, str):
        module, _, args = value.strip().partition(" ")
        args_value: Any = args.strip() or None
    elif isinstance(value, YMap) and isinstance(value.get("module"), str):
        module = value["module"]
        args_value = YMap(pos=value.pos)
        for k, v in value.items():
            if k != "module":
                args_value[k] = v
                args_value.key_pos[k], args_value.value_pos[k] = value.key_pos[k], value.value_pos[k]
    else:
        return task       # the schema reports what it cannot read
    out = YMap(pos=task.pos)
    for k, v in task.items():
        target = module if k == key else k
        out[target] = args_value if k == key else v
        out.key_pos[target], out.value_pos[target] = task.key_pos[k], task.value_pos[k]
    if key == "local_action":
        out["delegate_to"] = "localhost"
        out.key_pos["delegate_to"] = out.value_pos["delegate_to"] = task.key_pos[key]
    return out


def role_block(role: LoadedRole) -> YMap:
    """A role's tasks as one block that runs as the role (its files, its variables)."""
    block = YMap(pos=role.referenced_at)
    block[ROLE_MARK] = role.key
    block["block"] = role.tasks
    for key in (ROLE_MARK, "block"):
        block.key_pos[key] = block.value_pos[key] = role.referenced_at
    return block


def _as_block(task: YMap, key: str, kind: str, spec: dict, tasks: YSeq) -> YMap:
    """The include's task as a block of the included tasks, keeping its keywords; `apply:` wraps the tasks in
    an inner block, so that what it names reaches them while the include's own keywords stay its own."""
    block = YMap(pos=task.pos)
    for k, v in task.items():
        if k not in (key, "args"):
            block[k] = v
            block.key_pos[k], block.value_pos[k] = task.key_pos[k], task.value_pos[k]
    apply = spec.get("apply")
    if isinstance(apply, YMap) and apply:
        inner = YMap(pos=apply.pos)
        _copy_items(apply, inner)
        inner["block"] = tasks
        inner.key_pos["block"] = inner.value_pos["block"] = tasks.pos
        seq = YSeq([inner], pos=tasks.pos)
        seq.item_pos.append(apply.pos)
        tasks = seq
    if kind in ("include_tasks", "include_role"):
        block[INCLUDE_MARK] = kind
        block.key_pos[INCLUDE_MARK] = block.value_pos[INCLUDE_MARK] = task.key_pos[key]
    block["block"] = tasks
    block.key_pos["block"] = task.key_pos[key]
    block.value_pos["block"] = tasks.pos
    return block


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


def walk_task_nodes(loaded: LoadedRecipe) -> Iterator[tuple[str, YMap, Position]]:
    """Every task mapping of the recipe and its roles, blocks' included: (path, node, position)."""
    def walk(tasks: Any, path: str) -> Iterator[tuple[str, YMap, Position]]:
        if isinstance(tasks, YSeq):
            for index, task in enumerate(tasks):
                if isinstance(task, YMap):
                    here = f"{path}[{index}]"
                    yield here, task, task.pos
                    for key in TASK_LIST_KEYS:
                        yield from walk(task.get(key), f"{here}.{key}")

    for key in TASK_SECTIONS:
        yield from walk(loaded.document.get(key), key)
    for role in loaded.roles:
        yield from walk(role.tasks, f"roles[{role.name}].tasks")
        yield from walk(role.handlers, f"roles[{role.name}].handlers")


def load_recipe(path: Path, roles_path: list[Path] | None = None) -> LoadedRecipe:
    if not path.exists():
        raise RecipeError.at(Position(str(path)), f"recipe file not found: {path}",
                             hint="give the path of a .yml recipe, e.g. recipe run web.yml")
    return Loader(roles_path).load(path)

"""Checks that need the whole recipe: names used in templates are defined, notify
targets and only/except sources exist, and files a task names on this machine
are there. Each problem points at the YAML node at fault.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import voluptuous as vol

from engine.errors import Position, Problem, RecipeError
from engine.recipe.kv import parse_kv
from engine.recipe.loader import LoadedRecipe, names_a, walk_task_nodes
from engine.recipe.model import Origin, Variables
from engine.recipe.recipe_schema import ROLE_MARK
from engine.recipe.schema import boolean, did_you_mean, format_path
from engine.recipe.template import GLOBAL_NAMES, guarded_names, is_template, names_used, unsafe_access
from engine.recipe.yamlpos import YMap, YSeq, load_yaml_file
from engine.registry import TASK_MODULES

EXPRESSION_KEYS = ("when", "changed_when", "failed_when", "until")
BUILTIN_NAMES = frozenset({"build", "facts", "item", "loop", "result", "failed_task", "lookup", "query", "q", "omit",
                           # Ansible's magic variables (engine.build.play) and what a loop or a rescue defines
                           "vars", "hostvars", "groups", "group_names", "inventory_hostname",
                           "inventory_hostname_short", "playbook_dir", "role_path", "role_name", "play_hosts",
                           "ansible_loop", "ansible_index_var", "ansible_loop_var", "ansible_failed_task",
                           "ansible_failed_result", "environment", "ansible_managed"})
# Facts are named ansible_*; modules that return facts make these top-level variables too.
FACT_PREFIXES = ("ansible_", "getent_", "discovered_")
FACT_NAMES = frozenset({"packages", "services"})
VARS_EXTENSIONS = (".yml", ".yaml", ".json")


def _known(name: str, known: set[str]) -> bool:
    return name in known or name.startswith(FACT_PREFIXES) or name in FACT_NAMES


def _task_lists(loaded: LoadedRecipe) -> Iterator[tuple[str, Any, Origin]]:
    doc = loaded.document
    for key in ("pre_tasks", "tasks", "post_tasks", "handlers", "verify"):
        if isinstance(doc.get(key), YSeq):
            yield key, doc[key], Origin(base_dir=loaded.path.parent)
    for role in loaded.roles:
        origin = role.origin(loaded.path.parent)
        yield f"roles[{role.name}].tasks", role.tasks, origin
        yield f"roles[{role.name}].handlers", role.handlers, origin


def _walk_tasks(tasks: Any, path: str, origin: Origin | None = None,
                roles: dict[str, Origin] | None = None) -> Iterator[tuple[YMap, str, Origin | None]]:
    """Every task inside tasks, blocks' included, with the origin it runs with (a role's, inside an
    include_role)."""
    if not isinstance(tasks, YSeq):
        return
    for index, task in enumerate(tasks):
        if isinstance(task, YMap):
            task_path = f"{path}[{index}]"
            here = (roles or {}).get(task.get(ROLE_MARK), origin) if task.get(ROLE_MARK) else origin
            yield task, task_path, here
            for key in ("block", "rescue", "always"):
                yield from _walk_tasks(task.get(key), f"{task_path}.{key}", here, roles)


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
        names |= set(role.vars) | set(role.params) | set(role.defaults) | _vars_dir_names(role.directory / "vars")
    names |= _vars_dir_names(loaded.path.parent / "vars")
    for _, tasks, _ in _task_lists(loaded):
        for task, _, _ in _walk_tasks(tasks, ""):
            names |= _names_task_defines(task)
            if _is_dynamic_include(task):
                names |= _names_candidates_define(Path(task.pos.file).parent)
    return names


def _when_guards(tasks: Any, inherited: frozenset[str] = frozenset(),
                 found: dict[int, set[str]] | None = None) -> dict[int, set[str]]:
    """Per task, the names its `when` (or an enclosing block's) checks are defined (`when: x is defined`):
    the task may use them, it only runs when they are."""
    found = {} if found is None else found
    if not isinstance(tasks, YSeq):
        return found
    for task in tasks:
        if not isinstance(task, YMap):
            continue
        conditions = task.get("when")
        here = inherited | frozenset(name for c in (conditions if isinstance(conditions, list) else [conditions])
                                     if isinstance(c, str) for name in guarded_names(c))
        found[id(task)] = set(here)
        for key in ("block", "rescue", "always"):
            _when_guards(task.get(key), here, found)
    return found


def _is_dynamic_include(task: YMap) -> bool:
    return any(TASK_MODULES.canonical(k) == "include_tasks" and is_template(task[k] if isinstance(task[k], str)
                                                                            else str(task[k])) for k in task)


def _names_candidates_define(directory: Path) -> set[str]:
    """What the task files an include_tasks may pick when it runs (those beside it) define."""
    names: set[str] = set()
    for path in sorted(directory.glob("*.y*ml")):
        try:
            data = load_yaml_file(path)
        except RecipeError:
            continue    # the include reports a broken file if it picks it
        for task, _, _ in _walk_tasks(data, ""):
            names |= _names_task_defines(task)
    return names


def _names_task_defines(task: YMap) -> set[str]:
    """What a task makes defined for those after it: register, vars, set_fact, include_vars' name, loop names."""
    names: set[str] = set()
    for key in ("register",):
        if isinstance(task.get(key), str):
            names.add(task[key])
    if isinstance(task.get("vars"), dict):
        names |= set(task["vars"])
    for key in task:
        module = TASK_MODULES.canonical(key)
        args = task[key]
        if module == "set_fact":
            names |= set(args) if isinstance(args, dict) else set(parse_kv(args).options) if isinstance(args, str) else set()
        if module == "include_vars" and isinstance(args, dict) and isinstance(args.get("name"), str):
            names.add(args["name"])
    control = task.get("loop_control")
    if isinstance(control, dict):
        names |= {control[k] for k in ("loop_var", "index_var") if isinstance(control.get(k), str)}
    return names


def _defines_names_at_run_time(loaded: LoadedRecipe) -> bool:
    """A set_fact whose names are templates (`"{{ item.key }}": ...`), or an include_vars of a file outside any
    vars/ directory or of a whole directory, defines names validate cannot know."""
    for _, tasks, _ in _task_lists(loaded):
        for task, _, _ in _walk_tasks(tasks, ""):
            for key, args in task.items():
                module = TASK_MODULES.canonical(key)
                if module == "set_fact" and isinstance(args, dict) and any(is_template(k) for k in args):
                    return True
                if module == "include_vars" and not _in_a_vars_dir(args):
                    return True
    return False


def _in_a_vars_dir(args: Any) -> bool:
    name = args.get("file") if isinstance(args, dict) else args
    if isinstance(args, dict) and ("dir" in args or "name" in args and "file" not in args):
        return False
    return isinstance(name, str) and "/" not in name.strip("./")


def _vars_dir_names(directory: Path) -> set[str]:
    """Names the files of a vars/ directory define: what an include_vars of one of them may bring, whichever
    it picks when it runs (include_vars: "{{ ansible_os_family }}.yml")."""
    names: set[str] = set()
    if not names_a("dir", directory):
        return names
    for path in sorted(directory.rglob("*")):
        if path.suffix in VARS_EXTENSIONS and path.is_file():
            try:
                data = load_yaml_file(path)
            except RecipeError:
                continue    # include_vars reports a broken file when it reads it
            if isinstance(data, dict):
                names |= {k for k in data if isinstance(k, str)}
    return names


def _undefined(value: Any, expression: bool, known: set[str]) -> list[str]:
    try:
        used = names_used(value, expression=expression)
    except Exception:  # a syntax error: the schema reports it
        return []
    return sorted(name for name in used if not _known(name, known) and name not in GLOBAL_NAMES)


def _failure_handled(tasks: Any, inherited: bool = False, found: set[int] | None = None) -> set[int]:
    """The tasks whose failure is handled (inside the `block` of a block with a rescue, or under ignore_errors):
    they may use an undefined name on purpose, as Ansible's own tests do to check that it fails."""
    found = set() if found is None else found
    if not isinstance(tasks, YSeq):
        return found
    for task in tasks:
        if not isinstance(task, YMap):
            continue
        handled = inherited or task.get("ignore_errors") is True
        if handled:
            found.add(id(task))
        _failure_handled(task.get("block"), handled or bool(task.get("rescue")), found)
        for key in ("rescue", "always"):
            _failure_handled(task.get(key), handled, found)
    return found


def _makes_local_files(loaded: LoadedRecipe) -> bool:
    """Whether a task runs on this machine (delegate_to: localhost), where it may make a file a later task
    copies: Ansible's own tests make their sources so."""
    return any(task.get("delegate_to") in ("localhost", "127.0.0.1") or "local_action" in task
               for _, task, _ in walk_task_nodes(loaded))


def local_file_notes(loaded: LoadedRecipe) -> list[Problem]:
    """The local files not found, when a task on this machine may make them before they are used: notes."""
    if not _makes_local_files(loaded):
        return []
    roles = {role.key: role.origin(loaded.path.parent) for role in loaded.roles}
    return [Problem(p.position, f"{p.message} now (a task delegated to localhost may make it first)", path=p.path,
                    hint=p.hint)
            for list_path, tasks, origin in _task_lists(loaded)
            for task, task_path, task_origin in _walk_tasks(tasks, list_path, origin, roles)
            for p in _local_file_problems(task, task_path, task_origin or origin)]


def check_references(loaded: LoadedRecipe, variables: Variables, secret_names: frozenset[str]) -> list[Problem]:
    known: set[str] | None = _defined_names(loaded, variables, secret_names)
    if _defines_names_at_run_time(loaded):
        known = None      # which names exist is only known when it runs: undefined ones fail their task then
    problems = []
    doc = loaded.document
    sources = set(doc["sources"]) if isinstance(doc.get("sources"), dict) else set()
    handler_names = _handler_names(loaded)
    roles = {role.key: role.origin(loaded.path.parent) for role in loaded.roles}
    files_made_here = _makes_local_files(loaded)     # then a missing one is a note (local_file_notes)
    for list_path, tasks, origin in _task_lists(loaded):
        guards, handled = _when_guards(tasks), _failure_handled(tasks)
        for task, task_path, task_origin in _walk_tasks(tasks, list_path, origin, roles):
            seen = None if known is None or id(task) in handled else known | guards.get(id(task), set())
            problems += _task_reference_problems(task, task_path, seen, sources, handler_names)
            if id(task) not in handled and not files_made_here:   # else it fails the task when it runs
                problems += _local_file_problems(task, task_path, task_origin or origin)
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
    """What a notify may name: handlers' names and listen topics, a role's also as `role : name`."""
    names: set[str] = set()
    handler_lists = [(loaded.document.get("handlers"), set()),
                     *((role.handlers, {role.name, role.name.rsplit(".", 1)[-1]}) for role in loaded.roles)]
    for handlers, prefixes in handler_lists:
        for task, _, _ in _walk_tasks(handlers, ""):
            own = {task["name"]} if isinstance(task.get("name"), str) else set()
            own.update(n for n in _names(task.get("listen")) if isinstance(n, str))
            names |= own | {f"{prefix} : {name}" for prefix in prefixes for name in own}
    return names


def _task_reference_problems(task: YMap, path: str, known: set[str] | None, sources: set[str],
                             handler_names: set[str]) -> list[Problem]:
    shallow = YMap(pos=task.pos)   # children of blocks are walked on their own
    for key, value in task.items():
        # a name is rendered only to be shown or matched (a handler's): Ansible shows an undefined one as written
        if key not in ("block", "rescue", "always", "name"):
            shallow[key] = value
            shallow.value_pos[key] = task.value_pos[key]
    # known None: sandbox checks only (see _failure_handled); a task that never runs (when: false) is not checked
    never_runs = task.get("when") is False
    problems = _template_problems(shallow, [], None if never_runs else known, EXPRESSION_KEYS, path)
    if isinstance(task.get("name"), str):     # the sandbox's checks only
        named = YMap({"name": task["name"]}, pos=task.pos)
        named.value_pos["name"] = task.value_pos["name"]
        problems += _template_problems(named, [], None, (), path)
    notify = task.get("notify")
    for index, target in enumerate(_names(notify)):
        templated = any(is_template(name) for name in handler_names)   # known only when it runs
        if isinstance(target, str) and target not in handler_names and not is_template(target) and not templated:
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
    if not isinstance(args, YMap) or TASK_MODULES.get(module) is None or _is_true(args.get("remote_src")):
        return []     # remote_src: src is a path on the target
    problems = []
    for option, kind in TASK_MODULES.get(module).local_files.items():
        for name, where, at in _named_files(args, option):
            candidates = [Path(name)] if Path(name).is_absolute() else \
                [d / name for d in origin.search_dirs(kind, task.pos.file)]
            if not any(names_a("file", c) or (kind == "files" and names_a("dir", c)) for c in candidates):
                searched = ", ".join(str(c.parent) for c in candidates)
                problems.append(Problem(where, f"{kind[:-1]} {name!r} not found",
                                        path=f"{path}.{module}.{option}{at}", hint=f"looked in {searched}"))
    return problems


def _named_files(args: YMap, option: str) -> list[tuple[str, Any, str]]:
    """(name, position, path suffix) of each local file an option names: one string, or a list of them
    (puppet_apply's modules, chef_solo's cookbooks); templates are checked when they are rendered."""
    value = args.get(option)
    if isinstance(value, str):
        named = [(value, args.value_pos.get(option), "")]
    elif isinstance(value, YSeq):
        named = [(item, value.item_pos[i], f"[{i}]") for i, item in enumerate(value) if isinstance(item, str)]
    else:
        named = []
    return [entry for entry in named if not is_template(entry[0])]


def _is_true(value: Any) -> bool:
    try:
        return boolean(value) is True
    except vol.Invalid:
        return False


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

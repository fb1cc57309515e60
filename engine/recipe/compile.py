"""From a recipe file to a Recipe: load, check everything, build the frozen model.

Every problem found is reported at once: schema errors, undefined variables,
unknown handlers and sources, role argument specs, and the rendered sources
and exports of each build.
"""
from __future__ import annotations

import secrets as random_tokens
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import voluptuous as vol

from engine.errors import Position, Problem, RecipeError
from engine.recipe.foreign import foreign_hint, foreign_lookup_hint, is_foreign_module
from engine.recipe.loader import TASK_LIST_KEYS, LoadedRecipe, LoadedRole, load_recipe, role_block, walk_task_nodes
from engine.recipe.model import Build, BuildInfo, Export, Handler, Origin, Recipe, Source, SshSettings, Task, Variables
from engine.recipe.recipe_schema import (INCLUDE_MARK, RECIPE_SCHEMA, ROLE_MARK, module_arguments, module_errors,
                                         ssh_schema, task_validator)
from engine.recipe.tasks import Inherit, listify, make_task
from engine.recipe.references import check_references, local_file_notes
from engine.recipe.role_specs import check_role_arguments
from engine.recipe.schema import duration, each, format_path, plugin_failure, problems_from, strict, validate
from engine.recipe.lookups import is_known_lookup
from engine.recipe.template import Scope, TemplateFailure, lookups_called, render
from engine.recipe.variables import cli_vars, env_vars, file_vars, recipe_vars_file_paths, recipe_vars_files
from engine.recipe.yamlpos import YMap, YSeq
from engine.registry import DEFAULT_DISK_EXPORT, DISK_FORMATS, EVERYTHING, EXPORTS, PLATFORMS, TASK_MODULES, load_plugins
from engine.secrets import Redactor

if TYPE_CHECKING:   # the contracts are looked up in engine.registry; these names only type them
    from engine.artifacts.export import Exporter
    from engine.build.platform import Platform


@dataclass(frozen=True)
class CompileOptions:
    var_assignments: tuple[str, ...] = ()
    var_files: tuple[Path, ...] = ()
    roles_path: tuple[Path, ...] = ()
    environ: Mapping[str, str] | None = None
    started: float = field(default_factory=time.time)
    placeholder_ids: bool = False      # validate and render: no run, so no real build ids
    build_ids: Mapping[str, str] = field(default_factory=dict)   # source -> id: a cluster worker builds as submitted


def compile_recipe(path: Path, options: CompileOptions = CompileOptions(),
                   redactor: Redactor | None = None) -> Recipe:
    load_plugins()
    loaded = load_recipe(path, list(options.roles_path))
    doc = loaded.document
    _, problems = validate(RECIPE_SCHEMA, doc)
    variables = _variables(loaded, options)
    secrets = doc.get("secrets")
    secret_names = frozenset(s for s in secrets if isinstance(s, str)) if isinstance(secrets, list) else frozenset()
    if redactor is not None:
        redactor.add(_secret_values(variables, secret_names))
    problems += check_references(loaded, variables, secret_names)
    problems += [p for role in loaded.roles for p in _role_problems(role, variables)]
    builds, build_problems = _builds(doc, variables, options)
    problems += build_problems
    if problems:
        raise RecipeError(_unique(problems))
    return Recipe(
        name=doc["name"], path=loaded.path, digest=loaded.digest(), description=doc.get("description", ""),
        variables=variables, secrets=secret_names, become=doc.get("become", False) is True,
        tasks=_all_tasks(loaded), handlers=_all_handlers(loaded), builds=tuple(builds),
        verify=tuple(make_task(t, f"verify[{i}]", Origin(base_dir=loaded.path.parent), _play_inherit(doc))
                     for i, t in enumerate(doc.get("verify") or [])),
        gather_facts=doc.get("gather_facts", True) is not False,
        notes=tuple(_notes(loaded) + local_file_notes(loaded)),
        force_handlers=doc.get("force_handlers", False) is True,
        cache_max_age=duration((doc.get("cache") or {})["max_age"]) if (doc.get("cache") or {}).get("max_age")
        else None,
        final_flushes=1 if doc.get("post_tasks") else 2,   # with post_tasks, the flush after tasks is a task
        files_read=tuple(dict.fromkeys([*loaded.files_read, *recipe_vars_file_paths(doc, loaded.path.parent)])),
        role_dirs=tuple(dict.fromkeys(role.directory for role in loaded.roles)),
    )


def _notes(loaded: LoadedRecipe) -> list[Problem]:
    """What will fail if it runs without making the recipe invalid: modules and lookups recipe does not have, in
    tasks that may never run (another system's branch); what a module says will fail."""
    notes = []
    for path, task, position in walk_task_nodes(loaded):
        for key in task:
            if is_foreign_module(key):
                notes.append(Problem(position, f"{key}: {foreign_hint(key)}", path=path))
            elif key in TASK_MODULES:
                notes += _module_notes(path, task, key)
        shallow = {key: value for key, value in task.items() if key not in TASK_LIST_KEYS}
        for name in sorted(n for n in lookups_called(shallow) if not is_known_lookup(n)):
            notes.append(Problem(position, foreign_lookup_hint(name), path=path))
    return notes


def _module_notes(path: str, task: YMap, module: str) -> list[Problem]:
    """The module's own notes, and its misuse under ignore_errors (on purpose: Ansible's tests check the error)."""
    args = module_arguments(task, module)
    notes = [Problem(task.value_pos.get(module, task.pos), note, path=f"{path}.{module}")
             for note in TASK_MODULES.get(module).notes(args)]
    errors = module_errors(module, args) if task.get("ignore_errors") is True else []
    if errors:
        notes += [Problem(p.position, f"this task will fail: {p.message}; ignore_errors lets the build go on",
                          path=f"{path}.{p.path}", hint=p.hint)
                  for p in problems_from(vol.MultipleInvalid(errors), task)]
    return notes


def _role_problems(role: LoadedRole, variables: Variables) -> list[Problem]:
    problems = []
    for kind, handler in (("tasks", False), ("handlers", True)):
        label = f"roles[{role.name}].{kind}"
        root = YMap({label: getattr(role, kind)}, pos=role.referenced_at)
        root.value_pos[label] = getattr(role, kind).pos
        problems += validate({label: each(task_validator(handler))}, root)[1]
    return problems + check_role_arguments(role, variables)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# -- variables ------------------------------------------------------------------

def _variables(loaded: LoadedRecipe, options: CompileOptions) -> Variables:
    defaults: dict[str, Any] = {}
    for role in loaded.roles:
        defaults.update(role.defaults)
    recipe_vars = loaded.document.get("vars")
    return Variables(
        role_defaults=MappingProxyType(defaults),
        recipe=MappingProxyType(dict(recipe_vars) if isinstance(recipe_vars, dict) else {}),
        vars_files=MappingProxyType(recipe_vars_files(loaded.document, loaded.path.parent)),
        files=MappingProxyType(file_vars(options.var_files)),
        cli=MappingProxyType(cli_vars(options.var_assignments)),
        env=MappingProxyType(env_vars(options.environ)),
    )


def _secret_values(variables: Variables, names: frozenset[str]) -> list[Any]:
    scope = Scope(variables.layers(), {"build": {}, "facts": {}})
    values = []
    for name in names:
        if name in scope:
            values.append(scope.raw(name))
            try:
                values.append(scope[name])
            except TemplateFailure:
                pass
    return values


# -- builds: sources and exports, rendered per build ------------------------------------

def _build_info(recipe: str, source: str, options: CompileOptions) -> BuildInfo:
    if source in options.build_ids:
        return BuildInfo(id=options.build_ids[source], source=source, recipe=recipe, timestamp=int(options.started))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(options.started))
    suffix = "0000" if options.placeholder_ids else random_tokens.token_hex(2)
    return BuildInfo(id=f"{stamp}-{suffix}", source=source, recipe=recipe, timestamp=int(options.started))


def _render_located(node: Any, scope: Scope, path: list, fallback: Position | None = None) -> tuple[Any, list[Problem]]:
    problems: list[Problem] = []

    def walk(value: Any, at: list, position: Position | None) -> Any:
        if isinstance(value, YMap):
            return {k: walk(v, [*at, k], value.value_pos.get(k, position)) for k, v in value.items()}
        if isinstance(value, YSeq):
            return [walk(v, [*at, i], value.item_pos[i]) for i, v in enumerate(value)]
        try:
            return render(value, scope)
        except TemplateFailure as exc:
            problems.append(Problem(position, exc.message, path=format_path(at), hint=exc.hint))
            return value

    return walk(node, path, getattr(node, "pos", fallback)), problems


def _builds(doc: YMap, variables: Variables, options: CompileOptions) -> tuple[list[Build], list[Problem]]:
    sources = doc.get("sources")
    if not isinstance(sources, YMap) or not isinstance(doc.get("name"), str):
        return [], []
    builds, problems = [], []
    for name, entry in sources.items():
        named = entry.get("platform") if isinstance(entry, dict) else None
        platform = PLATFORMS.get(named) if isinstance(named, str) else None
        if platform is None:
            continue  # the schema reported it
        info = _build_info(doc["name"], name, options)
        # playbook_dir: a lookup('file', ...) in a source's options reads from the recipe's folder, as in a task
        scope = Scope(variables.layers(), {**platform.template_vars, "build": info.as_vars(), "facts": {},
                                           "playbook_dir": str(Path(doc.pos.file).parent)})
        rendered, found = _render_located(entry, scope, ["sources", name])
        problems += found
        ssh = ssh_schema(platform.ssh_required)
        owner = f"the {platform.name} platform"
        schema = strict({vol.Required("platform"): str, (vol.Required("ssh") if platform.ssh_required else "ssh"): ssh,
                         **guarded(platform.schema, owner)}, what="option")
        valid, found = validate(vol.All(schema, guard(platform.check, owner)), rendered, root=doc,
                                prefix=["sources", name])
        problems += found
        exports, found = _exports(doc, scope)
        problems += found
        if found or problems:
            continue
        options_only = {k: v for k, v in valid.items() if k not in ("platform", "ssh")}
        try:
            config = platform.configure(options_only, Path(doc.pos.file).parent)
        except Exception as exc:   # a plug-in's bug: reported at the source, not as a traceback
            problems.append(_configure_failure(entry.pos, owner, exc, f"sources.{name}"))
            continue
        source = Source(name=name, platform=platform.name, position=entry.pos, config=config,
                        ssh=SshSettings(**valid.get("ssh", {})))
        builds.append(Build(info=info, source=source, exports=tuple(for_platform(exports, platform))))
    return builds, problems


def _configure_failure(position: Position | None, owner: str, exc: Exception, path: str) -> Problem:
    failure = plugin_failure(owner, exc)
    return Problem(position, failure.msg, path=path, hint=failure.hint)


def guard(validator: Any, owner: str) -> Any:
    """A plug-in's validator, with an unexpected exception (a bug of the plug-in: a list where it only
    thought of strings) turned into an invalid value at the option's line:column instead of a traceback."""
    compiled = vol.Schema(validator, extra=vol.ALLOW_EXTRA)   # as strict() compiles it

    def check(value: Any) -> Any:
        try:
            return compiled(value)
        except vol.Invalid:
            raise
        except Exception as exc:
            raise plugin_failure(owner, exc) from None

    return check


def guarded(schema: dict, owner: str) -> dict:
    return {key: guard(validator, owner) for key, validator in schema.items()}


def for_platform(exports: list[Export], platform: type[Platform]) -> list[Export]:
    """The exports of one build on this platform.

    A platform with no local disk (amazon) makes its image remotely: of the recipe's exports it takes the
    ones that read everything (manifest, checksum), so one recipe can export a qcow2 locally and an AMI.
    An image platform's build always keeps its disk, as Packer's builders do: when no export writes a disk
    format, a compacted qcow2 comes first, as if `qcow2: {}` were listed, so the manifest lists it."""
    if not platform.has_disk:
        return [e for e in exports if EVERYTHING in getattr(EXPORTS.get(e.kind), "consumes", ())]
    if platform.produces_image and not any(DISK_FORMATS & getattr(EXPORTS.get(e.kind), "produces", frozenset())
                                           for e in exports):
        return [default_disk_export(), *exports]
    return exports


def default_disk_export() -> Export:
    exporter = EXPORTS.get(DEFAULT_DISK_EXPORT)
    assert exporter is not None, f"the {DEFAULT_DISK_EXPORT} export is not installed"
    defaults = vol.Schema(strict(exporter.schema, what="option"))({})
    return Export(kind=DEFAULT_DISK_EXPORT, position=None, config=exporter.configure(defaults))


def chain_options(exporter: type[Exporter]) -> dict:
    """Options every export that reads an earlier export's files has (see engine.artifacts.export_chain)."""
    if not exporter.consumes or EVERYTHING in exporter.consumes:
        return {}
    return {vol.Optional("keep_input", default=True): bool}


def _exports(doc: YMap, scope: Scope) -> tuple[list[Export], list[Problem]]:
    entries = doc.get("exports")
    if not isinstance(entries, YSeq):
        return [], []
    exports, problems = [], []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in EXPORTS:
            continue  # the schema reported it
        (kind, raw), = entry.items()
        exporter = EXPORTS.get(kind)
        rendered, found = _render_located(raw if raw is not None else YMap(), scope, ["exports", index, kind],
                                          getattr(entry, "value_pos", {}).get(kind, entries.item_pos[index]))
        owner = f"the {kind} export"
        schema = {**guarded(exporter.schema, owner), **chain_options(exporter)}
        valid, schema_found = validate(vol.All(strict(schema, what="option"), guard(exporter.check, owner)), rendered,
                                       root=doc, prefix=["exports", index, kind])
        problems += found + schema_found
        if not found and not schema_found:
            keep_input = valid.pop("keep_input", True)
            try:
                config = exporter.configure(valid)
            except Exception as exc:   # a plug-in's bug: reported at the export, not as a traceback
                problems.append(_configure_failure(entries.item_pos[index], owner, exc, f"exports[{index}].{kind}"))
                continue
            exports.append(Export(kind=kind, position=entries.item_pos[index], config=config, keep_input=keep_input))
    return exports, problems


# -- the model ---------------------------------------------------------------------

PLAY_KEYWORDS = ("become", "become_user", "become_method", "remote_user", "environment", "no_log", "tags")


def _play_inherit(doc: YMap) -> Inherit:
    """What the recipe's top level says for every task, as a play's keywords do."""
    return Inherit().around({k: doc[k] for k in PLAY_KEYWORDS if k in doc})


def _flush(path: str, origin: Origin, position: Position) -> Task:
    """Ansible runs the handlers notified so far after pre_tasks, and after roles and tasks."""
    return Task(position=position, path=path, origin=origin, module="meta", args="flush_handlers",
                tags=frozenset({"always"}))   # as Ansible tags its implicit flushes: --tags never skips them


def _all_tasks(loaded: LoadedRecipe) -> tuple[Task, ...]:
    base = loaded.path.parent
    doc = loaded.document
    origin = Origin(base_dir=base)
    play = _play_inherit(doc)
    role_origins = _role_origins(loaded)

    def section(key: str) -> list[Task]:
        return [make_task(t, f"{key}[{i}]", origin, play, role_origins) for i, t in enumerate(doc.get(key) or [])]

    tasks = section("pre_tasks")
    if tasks:
        tasks.append(_flush("pre_tasks", origin, doc.pos))
    for role in loaded.roles:
        if not role.inline:
            node = role_block(role)
            _copy_keywords(role.keywords, node)
            tasks.append(make_task(node, f"roles[{role.name}]", role.origin(base), play, role_origins))
    tasks += section("tasks")
    post = section("post_tasks")
    if post:
        tasks += [_flush("tasks", origin, doc.pos), *post]
    return tuple(tasks)


def _copy_keywords(keywords: YMap, node: YMap) -> None:
    for key, value in keywords.items():
        node[key] = value
        node.key_pos[key], node.value_pos[key] = keywords.key_pos.get(key, node.pos), keywords.value_pos.get(key, node.pos)


def _role_origins(loaded: LoadedRecipe) -> Any:
    origins = {role.key: role.origin(loaded.path.parent) for role in loaded.roles}
    return origins.__getitem__


def _all_handlers(loaded: LoadedRecipe) -> tuple[Handler, ...]:
    base = loaded.path.parent
    play = _play_inherit(loaded.document)
    role_origins = _role_origins(loaded)
    # Ansible's order: the roles' handlers, the play's, then those an include_role adds when it runs
    def of_roles(included: bool) -> list[tuple[Any, str, Origin, bool]]:
        return [(role.handlers, f"roles[{role.name}].handlers", role.origin(base), included)
                for role in loaded.roles if role.included == included]

    lists = [*of_roles(False), (loaded.document.get("handlers") or [], "handlers", Origin(base_dir=base), False),
             *of_roles(True)]
    handlers: list[Handler] = []
    group = 0
    for entries, where, origin, included in lists:
        after_plain = False
        for i, node in enumerate(entries):
            # Ansible's handler blocks: a block is one, and so are the plain handlers next to each other
            plain = not _is_block(node)
            group += 0 if plain and after_plain else 1
            after_plain = plain
            handlers += [replace(h, group=group, included=included)
                         for h in _handlers_of(node, f"{where}[{i}]", origin, play, role_origins)]
    return tuple(handlers)


def _is_block(node: Any) -> bool:
    """A block entry (or what import_tasks brought), not a task nor an include."""
    return isinstance(node, dict) and "block" in node and INCLUDE_MARK not in node \
        and not any(k in TASK_MODULES for k in node)


def _handlers_of(node: Any, path: str, origin: Origin, inherit: Inherit, role_origins: Any) -> list[Handler]:
    """A handler entry as Ansible reads it: a block, or what import_tasks brought, is each of its tasks a
    handler (notified by its own name); an include_tasks with a name is one handler running the file."""
    if _is_block(node):
        here = inherit.around(node)
        if node.get(ROLE_MARK):
            origin = role_origins(node[ROLE_MARK])
        return [h for i, child in enumerate(node.get("block") or [])
                for h in _handlers_of(child, f"{path}.block[{i}]", origin, here, role_origins)]
    return [Handler(task=make_task(node, path, origin, inherit, role_origins), listen=listify(node.get("listen")))]


__all__ = ["CompileOptions", "compile_recipe"]

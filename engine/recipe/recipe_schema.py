"""The schema of a recipe file: top-level keys, task keywords, and the dispatch to module schemas.

Sources and exports are checked after rendering (their values may use vars and
build values); tasks are checked before rendering, with a template accepted
wherever a value is expected, and again by the module when the task runs.
"""
from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

from engine.recipe.schema import (HintedInvalid, boolean, did_you_mean, duration, each, expression, identifier, integer, matches,
                                  one_or_more, plugin_failure, positive_number, strict, string, templatable, type_name)
from engine.recipe.foreign import is_foreign_module
from engine.recipe.lookups import LOOKUP_NAMES
from engine.recipe.template import is_template
from engine.registry import EXPORTS, PLATFORMS, TASK_MODULES

RECIPE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
RESERVED_NAMES = frozenset({"build", "facts", "item", "loop", "result", "failed_task", "vars"})

SSH_OPTIONS = {
    "user": str,
    "host": str,
    "port": vol.All(int, vol.Range(min=1, max=65535)),
    "password": str,
    "private_key_file": str,
    "host_key": str,
    "known_hosts": str,
    "connect_timeout": positive_number,
}


def ssh_schema(required: tuple[str, ...] = ()) -> Any:
    return strict({(vol.Required(k) if k in required else k): v for k, v in SSH_OPTIONS.items()}, what="ssh option")


def variable_mapping(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise vol.Invalid(f"expected a mapping of variable names to values, got {type_name(value)}")
    errors = []
    for name in value:
        try:
            identifier(name)
            if name in RESERVED_NAMES:
                raise HintedInvalid(f"{name!r} is a reserved name", hint="pick another variable name")
        except vol.Invalid as exc:
            exc.prepend([name])
            exc.at_key = True  # type: ignore[attr-defined]
            errors.append(exc)
    if errors:
        raise vol.MultipleInvalid(errors)
    return value


def loop_value(value: Any) -> Any:
    if isinstance(value, list):
        return value
    if is_template(value):
        return templatable(str)(value)
    raise HintedInvalid(f"loop takes a list, got {type_name(value)}", hint='e.g. loop: [a, b] or loop: "{{ names }}"')


def _block(value: Any) -> Any:
    return each(task_validator(handler=False))(value)


def environment_value(value: Any) -> Any:
    """environment: a mapping of names to values, a template giving one, or a list of those (Ansible merges)."""
    if isinstance(value, list):
        return [environment_value(item) for item in value]
    if is_template(value):
        return templatable(str)(value)
    if not isinstance(value, dict):
        raise HintedInvalid(f"environment takes a mapping, got {type_name(value)}",
                            hint="e.g. environment: {http_proxy: http://proxy:3128}")
    return value


def tag_names(value: Any) -> Any:
    """tags: a name, a list of names, or "a, b" (Ansible splits on commas)."""
    return one_or_more(string)(value)


BECOME_METHODS = ("sudo", "su")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def delegate_host(value: Any) -> Any:
    """delegate_to: the build host (localhost) or the machine being built; no other host exists in a build."""
    if is_template(value):
        return templatable(str)(value)
    if value in LOCAL_HOSTS:
        return value
    raise HintedInvalid(f"delegate_to {value!r}: a build has no inventory, only the machine and this host",
                        hint="delegate_to: localhost runs the task on the build host; to run a play against other "
                             "hosts, use the ansible_playbook task")


def flag(value: Any) -> Any:
    """A keyword Ansible lets a template decide (ignore_errors: "{{ ansible_check_mode }}")."""
    return templatable(boolean)(value)


LOOP_CONTROL = strict({"loop_var": templatable(identifier), "label": str, "index_var": templatable(identifier), "extended": boolean,
                       "extended_allitems": boolean, "pause": templatable(positive_number)}, what="loop_control option")

KEYWORDS: dict[str, Any] = {
    "name": str,
    "when": one_or_more(expression),
    "loop": loop_value,
    "loop_control": LOOP_CONTROL,
    "register": identifier,
    "vars": variable_mapping,
    "args": templatable(dict),
    "become": flag,
    "become_user": str,
    "become_method": vol.In(BECOME_METHODS, msg=f"become_method takes one of {', '.join(BECOME_METHODS)}"),
    "become_flags": str,
    "remote_user": str,
    "environment": environment_value,
    "delegate_to": delegate_host,
    "delegate_facts": flag,
    "run_once": flag,
    "no_log": flag,
    "diff": flag,
    "any_errors_fatal": flag,
    "ignore_unreachable": flag,
    "tags": tag_names,
    "notify": one_or_more(str),
    "changed_when": one_or_more(expression),
    "failed_when": one_or_more(expression),
    "ignore_errors": flag,
    "only": one_or_more(matches(SOURCE_NAME, "source name")),
    "except": one_or_more(matches(SOURCE_NAME, "source name")),
    "retries": templatable(vol.All(integer, vol.Range(min=0))),
    "until": expression,
    "delay": templatable(positive_number),
    "timeout": positive_number,
    "check_mode": flag,
    "cache": boolean,                   # false: this task, and every one after it, run in every build
    "throttle": templatable(integer),
    "connection": vol.In(["local", "ssh", "smart", "paramiko"], msg="connection takes local or ssh in a build"),
    "async": templatable(positive_number),
    "poll": vol.All(integer, vol.Range(min=0)),
    "module_defaults": vol.Schema({str: dict}),
    "debugger": str,
    "collections": one_or_more(str),
    "block": _block,
    "rescue": _block,
    "always": _block,
}
# Internal marks the loader puts on the block an include became (never written by hand).
INCLUDE_MARK = "__include__"
ROLE_MARK = "__role__"
# include_role with a templated name: the template on the include, the role's name on each block it may run
ROLE_CHOICE_MARK = "__role_choice__"
INTERNAL_KEYWORDS = {INCLUDE_MARK: str, ROLE_MARK: str, ROLE_CHOICE_MARK: str}
HANDLER_KEYWORDS = {"listen": one_or_more(str)}
INCLUDE_HINT = "import_tasks and include_tasks are expanded when the recipe is loaded"


def with_lookup(key: Any) -> str | None:
    """The lookup a `with_<name>:` keyword loops over, or None."""
    if isinstance(key, str) and key.startswith("with_") and key[5:] in LOOKUP_NAMES:
        return key[5:]
    return None


def _handler_block(value: Any) -> Any:
    return each(task_validator(handler=True))(value)


def task_validator(handler: bool) -> Any:
    keywords = {**KEYWORDS, **INTERNAL_KEYWORDS, **(HANDLER_KEYWORDS if handler else {})}
    if handler:   # the tasks of a block under handlers are handlers too (listen:)
        keywords.update({key: _handler_block for key in ("block", "rescue", "always")})

    def validate(task: Any) -> Any:
        if not isinstance(task, dict):
            raise HintedInvalid(f"a task must be a mapping, got {type_name(task)}",
                                hint="e.g. - {name: Say hello, shell: echo hello}")
        errors: list[vol.Invalid] = []
        modules = _module_keys(task, keywords, errors)
        _check_shape(task, modules, errors)
        present = {k: v for k, v in task.items() if k in keywords}
        try:
            vol.Schema({k: keywords[k] for k in present})(present)
        except vol.MultipleInvalid as exc:
            errors.extend(exc.errors)
        # a task whose failure ignore_errors handles may misuse its module on purpose (Ansible's own tests check
        # the message): it fails when it runs, and validate notes it (engine.recipe.compile)
        for module in modules[:1] if task.get("ignore_errors") is not True else ():
            errors.extend(module_errors(module, module_arguments(task, module)))
        if errors:
            raise vol.MultipleInvalid(errors)
        return task

    return validate


def _module_keys(task: dict, keywords: dict, errors: list[vol.Invalid]) -> list[str]:
    modules = []
    for key in task:
        if key in keywords or with_lookup(key):
            continue
        if key in TASK_MODULES or is_foreign_module(key):
            modules.append(key)
            continue
        choices = [*TASK_MODULES.names(), *keywords]
        errors.append(HintedInvalid(f"unknown module or keyword {key!r}", path=[key], at_key=True,
                                    hint=did_you_mean(key, choices, "modules: " + ", ".join(TASK_MODULES.names()))))
    return modules


def _check_shape(task: dict, modules: list[str], errors: list[vol.Invalid]) -> None:
    if len(modules) > 1:
        errors.append(HintedInvalid(f"a task runs one module, this one names {', '.join(modules)}",
                                    path=[modules[1]], at_key=True, hint="split it into one task per module"))
    if modules and "block" in task:
        errors.append(HintedInvalid("a task cannot have both a module and a block", path=["block"], at_key=True))
    if not modules and "block" not in task and all(k in KEYWORDS or k == "listen" or with_lookup(k) for k in task):
        errors.append(HintedInvalid("this task has no module", hint="add one, e.g. shell: echo hello"))
    for key in ("rescue", "always"):
        if key in task and "block" not in task:
            errors.append(HintedInvalid(f"{key} goes with block", path=[key], at_key=True))
    loops = [k for k in task if k == "loop" or with_lookup(k)]
    if "loop_control" in task and not loops:
        errors.append(HintedInvalid("loop_control without loop", path=["loop_control"], at_key=True,
                                    hint="add loop: or remove it"))
    if len(loops) > 1:
        errors.append(HintedInvalid(f"a task has one loop, this one has {', '.join(loops)}", path=[loops[1]],
                                    at_key=True, hint="keep one of them"))


def module_arguments(task: dict, module: str) -> Any:
    """A module's arguments: what is written under its name, with the task's `args:` merged in (Ansible's
    way to give options to a free-form module: `command: ls` + `args: {chdir: /tmp}`)."""
    module_class = TASK_MODULES.get(module)
    if module_class is None:
        return task[module]
    args = module_class.normalize(task[module])
    extra = task.get("args")
    if isinstance(extra, dict) and isinstance(args, dict):
        return {**module_class.normalize(dict(extra)), **args}
    return args


def module_errors(module: str, args: Any) -> list[vol.Invalid]:
    module_class = TASK_MODULES.get(module)
    if module_class is None:
        return []      # a module recipe does not run (engine.recipe.foreign): validate notes it
    try:
        vol.Schema(module_class.static_schema())(args)
    except vol.MultipleInvalid as exc:
        for error in exc.errors:
            error.prepend([module])
        return list(exc.errors)
    except vol.Invalid as exc:
        exc.prepend([module])
        return [exc]
    except Exception as exc:   # a bug of the module's schema (a list where it thought only of strings): no traceback
        return [plugin_failure(f"the {module} module", exc, path=[module])]
    return []


ROLE_ENTRY_KEYWORDS = ("when", "tags", "become", "become_user", "become_method", "remote_user", "environment",
                       "no_log", "check_mode", "diff", "ignore_errors", "delegate_to", "any_errors_fatal")


def role_reference(value: Any) -> Any:
    """`- x`, or `- role: x` (or name: x) with vars:, the keywords Ansible allows on a role, and any other key as
    a variable of the role, as Ansible takes it."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise HintedInvalid(f"a role entry is a role name or a mapping, got {type_name(value)}",
                            hint="e.g. - role: nginx or - {role: nginx, vars: {http_port: 80}}")
    if not any(isinstance(value.get(k), str) for k in ("role", "name")):
        raise HintedInvalid("required key 'role' is missing", hint="e.g. - role: nginx")
    schema = {k: KEYWORDS[k] for k in ROLE_ENTRY_KEYWORDS if k in value}
    if "vars" in value:
        schema["vars"] = variable_mapping
    vol.Schema(schema, extra=vol.ALLOW_EXTRA)(value)
    return value


def source_entry(value: Any) -> Any:
    """Only the shape here; the platform's schema checks the options once rendered."""
    if not isinstance(value, dict):
        raise vol.Invalid(f"a source must be a mapping with a platform, got {type_name(value)}")
    if "platform" not in value:
        raise HintedInvalid("required key 'platform' is missing",
                            hint="platforms: " + ", ".join(PLATFORMS.names()))
    platform = value["platform"]
    if not isinstance(platform, str):
        raise HintedInvalid(f"platform takes a platform name, got {type_name(platform)}", path=["platform"],
                            hint="platforms: " + ", ".join(PLATFORMS.names()))
    if platform not in PLATFORMS:
        raise HintedInvalid(f"unknown platform {platform!r}", path=["platform"],
                            hint=did_you_mean(str(platform), PLATFORMS.names(),
                                              "platforms: " + ", ".join(PLATFORMS.names())))
    return value


def sources_mapping(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        raise HintedInvalid("sources must be a mapping of at least one source name to its settings",
                            hint="e.g. sources: {local: {platform: qemu, ...}}")
    errors = []
    for name, entry in value.items():
        try:
            matches(SOURCE_NAME, "source name")(name)
        except vol.Invalid as exc:
            exc.prepend([name])
            exc.at_key = True  # type: ignore[attr-defined]
            errors.append(exc)
        try:
            source_entry(entry)
        except vol.Invalid as exc:
            exc.prepend([name])
            errors.append(exc)
    if errors:
        raise vol.MultipleInvalid(errors)
    return value


def export_entry(value: Any) -> Any:
    if not isinstance(value, dict) or len(value) != 1:
        raise HintedInvalid("an export is a mapping with one key, the export kind",
                            hint="e.g. - qcow2: {compress: true}")
    (kind,) = value
    if kind not in EXPORTS:
        raise HintedInvalid(f"unknown export {kind!r}", path=[kind], at_key=True,
                            hint=did_you_mean(str(kind), EXPORTS.names(),
                                              "exports: " + (", ".join(EXPORTS.names()) or "none installed")))
    return value


RECIPE_SCHEMA = strict({
    vol.Required("name"): matches(RECIPE_NAME, "recipe name"),
    "description": str,
    "vars": variable_mapping,
    "secrets": each(identifier),
    "become": flag,
    "become_user": str,
    "become_method": KEYWORDS["become_method"],
    "remote_user": str,
    "environment": environment_value,
    "no_log": flag,
    "vars_files": one_or_more(str),
    "gather_facts": boolean,
    "any_errors_fatal": flag,
    "force_handlers": boolean,
    "cache": strict({"max_age": duration}, what="cache option"),
    "tags": tag_names,
    "collections": one_or_more(str),
    vol.Required("sources"): sources_mapping,
    "roles": each(role_reference),
    "pre_tasks": each(task_validator(handler=False)),
    "tasks": each(task_validator(handler=False)),
    "post_tasks": each(task_validator(handler=False)),
    "handlers": each(task_validator(handler=True)),
    "verify": each(task_validator(handler=False)),
    "exports": each(export_entry),
}, what="top-level key")

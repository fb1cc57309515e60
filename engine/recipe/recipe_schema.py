"""The schema of a recipe file: top-level keys, task keywords, and the dispatch to module schemas.

Sources and exports are checked after rendering (their values may use vars and
build values); tasks are checked before rendering, with a template accepted
wherever a value is expected, and again by the module when the task runs.
"""
from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

from engine.recipe.schema import (HintedInvalid, did_you_mean, each, expression, identifier, matches, one_or_more,
                                  plugin_failure, positive_number, strict, templatable, type_name)
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


KEYWORDS: dict[str, Any] = {
    "name": str,
    "when": one_or_more(expression),
    "loop": loop_value,
    "loop_control": strict({"loop_var": identifier, "label": str}, what="loop_control option"),
    "register": identifier,
    "vars": variable_mapping,
    "become": bool,
    "become_user": str,
    "notify": one_or_more(str),
    "changed_when": one_or_more(expression),
    "failed_when": one_or_more(expression),
    "ignore_errors": bool,
    "only": one_or_more(matches(SOURCE_NAME, "source name")),
    "except": one_or_more(matches(SOURCE_NAME, "source name")),
    "retries": vol.All(int, vol.Range(min=0)),
    "until": expression,
    "delay": positive_number,
    "timeout": positive_number,
    "check_mode": bool,
    "block": _block,
    "rescue": _block,
    "always": _block,
}
HANDLER_KEYWORDS = {"listen": one_or_more(str)}
INCLUDE_HINT = "import_tasks and include_tasks are expanded when the recipe is loaded"


def task_validator(handler: bool) -> Any:
    keywords = {**KEYWORDS, **(HANDLER_KEYWORDS if handler else {})}

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
        for module in modules[:1]:
            errors.extend(_module_errors(module, task[module]))
        if errors:
            raise vol.MultipleInvalid(errors)
        return task

    return validate


def _module_keys(task: dict, keywords: dict, errors: list[vol.Invalid]) -> list[str]:
    modules = []
    for key in task:
        if key in keywords:
            continue
        if key in TASK_MODULES:
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
    if not modules and "block" not in task and all(k in KEYWORDS or k == "listen" for k in task):
        errors.append(HintedInvalid("this task has no module", hint="add one, e.g. shell: echo hello"))
    for key in ("rescue", "always"):
        if key in task and "block" not in task:
            errors.append(HintedInvalid(f"{key} goes with block", path=[key], at_key=True))
    for key in ("loop_control",):
        if key in task and "loop" not in task:
            errors.append(HintedInvalid(f"{key} without loop", path=[key], at_key=True, hint="add loop: or remove it"))


def _module_errors(module: str, args: Any) -> list[vol.Invalid]:
    module_class = TASK_MODULES.get(module)
    assert module_class is not None
    try:
        vol.Schema(module_class.static_schema())(module_class.normalize(args))
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


def role_reference(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return strict({vol.Required("role"): str, "vars": variable_mapping}, what="role option")(value)


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
    "become": bool,
    vol.Required("sources"): sources_mapping,
    "roles": each(role_reference),
    "tasks": each(task_validator(handler=False)),
    "handlers": each(task_validator(handler=True)),
    "verify": each(task_validator(handler=False)),
    "exports": each(export_entry),
}, what="top-level key")

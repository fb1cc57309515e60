"""A role's meta/argument_specs.yml, checked like a schema (Ansible's format).

argument_specs:
  main:
    options:
      ssh_port: {type: int, default: 22, required: false, choices: [22, 2222]}

The values checked are what the role would see: its defaults, the recipe's
and the command line's variables, and the vars it is called with. A value
that is still a template is checked once it runs, not here.
"""
from __future__ import annotations

from typing import Any

import voluptuous as vol

from engine.errors import Problem
from engine.recipe.loader import LoadedRole
from engine.recipe.model import Variables
from engine.recipe.schema import boolean, did_you_mean, integer, type_name
from engine.recipe.template import is_template
from engine.recipe.yamlpos import YMap

TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "path": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
    "list": (list,), "dict": (dict,), "raw": (object,),
}


def _options(role: LoadedRole) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The options of the role's main entry point, and what is wrong with the file's shape."""
    specs = role.argument_specs
    if not isinstance(specs, dict):
        return None, []
    node: Any = specs
    path = []
    for key in ("argument_specs", "main", "options"):
        parent, node = node, node.get(key)
        path.append(key)
        if node is None:
            return {}, []
        if not isinstance(node, dict):
            where = parent.value_pos.get(key) if isinstance(parent, YMap) else None
            return {}, [Problem(where or getattr(specs, "pos", None), f"expected a mapping, got {type_name(node)}",
                                path=".".join(path), hint="argument_specs: {main: {options: {name: {type: str}}}}")]
    problems = []
    for name, spec in node.items():
        spec = spec if isinstance(spec, dict) else {}
        kind, choices = spec.get("type", "str"), spec.get("choices")
        bad = None
        if not isinstance(kind, str) or kind not in TYPES:
            bad = ("type", f"type must be one of {', '.join(TYPES)}, got {kind!r}")
        elif choices is not None and not isinstance(choices, list):
            bad = ("choices", f"choices must be a list, got {type_name(choices)}")
        if bad:
            where = spec.value_pos.get(bad[0]) if isinstance(spec, YMap) else None
            problems.append(Problem(where or getattr(node, "pos", None), bad[1],
                                    path=f"argument_specs.main.options.{name}.{bad[0]}"))
    return (node if not problems else {}), problems


def _type_ok(value: Any, type_name_: str) -> bool:
    """Whether Ansible's argument spec validation takes value as type_name_: it converts where it can
    (`false` for a str is "False", "640000" for an int is 640000, "a,b" for a list is two items)."""
    converter = CONVERTERS.get(type_name_)
    if converter is None:
        return isinstance(value, TYPES.get(type_name_, (object,)))
    try:
        converter(value)
    except (vol.Invalid, ValueError, TypeError):
        return False
    return True


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    return float(value)


def _to_list(value: Any) -> list:
    if isinstance(value, (list, str, int, float)) and not isinstance(value, bool):
        return value if isinstance(value, list) else str(value).split(",")
    raise ValueError(value)


def _to_dict(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and (value.startswith("{") or "=" in value):
        return {}
    raise ValueError(value)


def _to_str(value: Any) -> str:
    return str(value)      # Ansible's str conversion takes any value (a list becomes "[1]")


def _to_int(value: Any) -> int:
    return int(value) if isinstance(value, bool) else integer(value)


CONVERTERS = {"str": _to_str, "path": _to_str, "int": _to_int, "bool": boolean, "float": _to_float, "list": _to_list,
              "dict": _to_dict}


def check_role_arguments(role: LoadedRole, variables: Variables) -> list[Problem]:
    options, problems = _options(role)
    if options is None or problems:
        return problems
    where = role.referenced_at
    for name in role.params:
        if name not in options:
            problems.append(Problem(role.params.key_pos.get(name, where),
                                    f"role {role.name!r} takes no argument {name!r}", path=f"roles[{role.name}].vars",
                                    hint=did_you_mean(name, options, "arguments: " + ", ".join(map(str, options)))))
    layers = [role.defaults, *variables.layers()[1:], role.params]
    for name, spec in options.items():
        spec = spec if isinstance(spec, dict) else {}
        present = [layer for layer in layers if name in layer]
        if not present:
            if spec.get("required"):
                problems.append(Problem(where, f"role {role.name!r} requires the argument {name!r}",
                                        path=f"roles[{role.name}]",
                                        hint=f"pass it: roles: [{{role: {role.name}, vars: {{{name}: ...}}}}]"))
            continue
        value = present[-1][name]
        if is_template(value):
            continue
        kind = spec.get("type", "str")
        if not _type_ok(value, kind):
            problems.append(Problem(_value_position(role, name, where), f"role {role.name!r} argument {name!r} "
                                    f"must be of type {kind}, got {type_name(value)}", path=f"roles[{role.name}].vars.{name}"))
        elif spec.get("choices") and value not in spec["choices"]:
            problems.append(Problem(_value_position(role, name, where), f"role {role.name!r} argument {name!r} "
                                    f"must be one of {spec['choices']}, got {value!r}", path=f"roles[{role.name}].vars.{name}"))
    return problems


def _value_position(role: LoadedRole, name: str, fallback: Any) -> Any:
    if name in role.params:
        return role.params.value_pos.get(name, fallback)
    return fallback

"""One table per Packer plug-in says what becomes of each of its options.

A rule takes the option's translated value and puts it into the recipe part
being assembled (an option, a task keyword), or says in a comment why nothing
is needed (a note) or why nothing can be done (a leftover). An option no table
knows is a leftover. The tables are in builders, provisioners and post_processors.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from modules.importers.packer.draft import Comment, Part
from modules.importers.packer.expressions import Untranslatable
from modules.importers.packer.files import PathMapper
from modules.importers.packer.template import Plugin, Value

WHOLE_EXPRESSION = re.compile(r"^\{\{ (.*) \}\}$")     # a value that is one Jinja expression
GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


@dataclass
class Assembly:
    """A recipe part being put together from one plug-in's options (local to one mapping, then frozen)."""

    plugin: Plugin
    paths: PathMapper
    options: dict[str, Any] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    exports: list[Part] = field(default_factory=list)      # what a builder makes by itself (an OVF), as exports

    def set(self, dotted: str, value: Any) -> None:
        """Set an option; a dotted name (ssh.user) sets it inside a mapping."""
        *outer, last = dotted.split(".")
        target = self.options
        for key in outer:
            target = target.setdefault(key, {})
        target[last] = value

    def export(self, kind: str, options: dict[str, Any], why: str) -> None:
        self.exports.append(Part({kind: options}, comments=(Comment.note(why),)))

    def note(self, text: str) -> None:
        self.comments.append(Comment.note(text))

    def leftover(self, name: str, value: Value, why: str) -> None:
        self.comments.append(Comment.not_imported(value.position, name, why, value.source))


Rule = Callable[[Assembly, str, Value], None]


def apply(table: dict[str, Rule], assembly: Assembly, skip: tuple[str, ...] = ()) -> None:
    """Every option of the plug-in through its rule, in the template's order."""
    for name, value in assembly.plugin.settings:
        if name in skip:
            continue
        rule = table.get(name)
        if rule is None:
            assembly.leftover(name, value, f"Packer's {assembly.plugin.type} option {name} has no recipe equivalent")
        elif not value.translated and getattr(rule, "reads_value", True):
            assembly.leftover(name, value, value.problem)
        else:
            try:
                rule(assembly, name, value)
            except Untranslatable as exc:
                assembly.leftover(name, value, str(exc))


# -- rules ---------------------------------------------------------------------------------

def to(dotted: str, convert: Callable[[Any], Any] = lambda v: v) -> Rule:
    """The option becomes recipe's option `dotted`, converted."""
    def rule(assembly: Assembly, name: str, value: Value) -> None:
        assembly.set(dotted, convert(value.data))
    return rule


def to_path(dotted: str) -> Rule:
    """A file on the build host: named from the recipe's folder."""
    def rule(assembly: Assembly, name: str, value: Value) -> None:
        assembly.set(dotted, path_of(assembly.paths, value.data))
    return rule


def path_of(paths: PathMapper, data: Any) -> Any:
    if isinstance(data, list):
        return [path_of(paths, item) for item in data]
    return paths.local(str(data)) if isinstance(data, str) else data


def note(text: str) -> Rule:
    """Nothing to carry over: the comment says why (whatever the value, even one Jinja cannot say)."""
    def rule(assembly: Assembly, name: str, value: Value) -> None:
        assembly.note(f"{name}: {text}")
    rule.reads_value = False          # type: ignore[attr-defined]
    return rule


def skip() -> Rule:
    """Nothing to carry over, and nothing worth a comment (the plug-in's own name, a default restated)."""
    def rule(assembly: Assembly, name: str, value: Value) -> None:
        return None
    rule.reads_value = False          # type: ignore[attr-defined]
    return rule


def leftover(why: str) -> Rule:
    def rule(assembly: Assembly, name: str, value: Value) -> None:
        assembly.leftover(name, value, why)
    return rule


def only_if(expected: Any, why: str) -> Rule:
    """Fine when the option says what recipe does anyway; a leftover otherwise."""
    def rule(assembly: Assembly, name: str, value: Value) -> None:
        if value.data != expected:
            assembly.leftover(name, value, why)
    return rule


# -- conversions ---------------------------------------------------------------------------

def seconds(data: Any) -> Any:
    """A Go duration ("5m", "1h30m", "90s") in seconds; a number is taken as seconds."""
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return data
    text = str(data).strip()
    if "{{" in text:
        raise Untranslatable("a duration from a variable: recipe takes seconds, Packer a Go duration (5m)")
    parts = GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise Untranslatable(f"{text!r} is not a duration")
    total = sum(float(number) * UNITS[unit] for number, unit in parts)
    return int(total) if total == int(total) else total


def integer(data: Any) -> Any:
    """A number option: Packer reads "2" (a JSON template's variables are all text) as 2, and so does this."""
    if isinstance(data, str):
        whole = WHOLE_EXPRESSION.match(data)
        if whole:
            return f"{{{{ ({whole.group(1)}) | int }}}}"
        if data.strip().isdigit():
            return int(data)
    return data


def boolean(data: Any) -> Any:
    """A flag option: "true" (from a JSON template's variable) is true, as Packer reads it."""
    if isinstance(data, str):
        whole = WHOLE_EXPRESSION.match(data)
        if whole:
            return f"{{{{ ({whole.group(1)}) | bool }}}}"
        if data.strip().lower() in ("true", "false"):
            return data.strip().lower() == "true"
    return data


def as_list(data: Any) -> list:
    return data if isinstance(data, list) else [data]


def key_values(data: Any) -> dict[str, str]:
    """["K=V", ...] (environment_vars, ansible_env_vars) as a mapping."""
    mapping = {}
    for item in as_list(data):
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise Untranslatable(f"{item!r} is not KEY=VALUE")
        mapping[key] = value
    return mapping

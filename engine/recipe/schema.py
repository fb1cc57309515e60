"""voluptuous helpers that report every error with its path, position and a hint.

voluptuous collects errors across the keys of a mapping; the helpers here make
lists and unknown keys behave the same way, let a template string stand where
a typed value is expected (it is checked again once rendered), and turn the
collected errors into Problems that point at YAML positions.
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Callable, Iterable

import voluptuous as vol

from engine.errors import Problem
from engine.recipe.template import is_template, syntax_problem
from engine.recipe.yamlpos import locate
from engine.units import duration_seconds


class HintedInvalid(vol.Invalid):
    """An Invalid that also says what to do about it."""

    def __init__(self, message: str, path: list | None = None, hint: str = "", at_key: bool = False):
        super().__init__(message, path=path)
        self.hint = hint
        self.at_key = at_key


def plugin_failure(owner: str, exc: Exception, path: list | None = None) -> HintedInvalid:
    """A plug-in's unexpected exception (a bug: a list where it only thought of strings), as an invalid value
    reported at its line:column like any other, instead of a traceback."""
    return HintedInvalid(f"{owner} failed on this value ({type(exc).__name__}: {exc})", path=path,
                         hint=f"this is a bug in {owner}; please report it")


def close_match(name: str, choices: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(name: str, choices: Iterable[str], fallback: str = "") -> str:
    match = close_match(name, choices)
    return f"did you mean {match!r}?" if match else fallback


def key_names(schema: dict) -> list[str]:
    return [str(getattr(key, "schema", key)) for key in schema]


def strict(schema: dict, what: str = "key") -> Callable[[Any], Any]:
    """A mapping schema whose unknown keys are errors with a did-you-mean hint."""
    inner = vol.Schema(schema, extra=vol.ALLOW_EXTRA)
    allowed = key_names(schema)

    def validate(value: Any) -> Any:
        if not isinstance(value, dict):
            raise vol.Invalid(f"expected a mapping, got {type_name(value)}")
        errors: list[vol.Invalid] = []
        for key in value:
            if str(key) not in allowed:
                errors.append(HintedInvalid(f"unknown {what} {key!r}", path=[key], at_key=True,
                                            hint=did_you_mean(key, allowed, "allowed: " + ", ".join(allowed))))
        try:
            result = inner(value)
        except vol.MultipleInvalid as exc:
            errors.extend(exc.errors)
            result = value
        if errors:
            raise vol.MultipleInvalid(errors)
        return result

    validate.keys = allowed  # type: ignore[attr-defined]
    return validate


def each(validator: Any) -> Callable[[Any], list]:
    """A list whose every item is validated, with every failing item reported."""
    compiled = vol.Schema(validator)

    def validate(value: Any) -> list:
        if not isinstance(value, list):
            raise vol.Invalid(f"expected a list, got {type_name(value)}")
        errors: list[vol.Invalid] = []
        result = []
        for index, item in enumerate(value):
            try:
                result.append(compiled(item))
            except vol.MultipleInvalid as exc:
                for error in exc.errors:
                    error.prepend([index])
                    errors.append(error)
            except vol.Invalid as exc:
                exc.prepend([index])
                errors.append(exc)
        if errors:
            raise vol.MultipleInvalid(errors)
        return result

    return validate


def one_or_more(validator: Any) -> Callable[[Any], list]:
    """A single value or a list of them; always a list afterwards."""
    many = each(validator)

    def validate(value: Any) -> list:
        return many(value if isinstance(value, list) else [value])

    return validate


def templatable(validator: Any) -> Callable[[Any], Any]:
    """validator, or a template string (its syntax checked); it is validated again once rendered."""
    compiled = vol.Schema(validator)

    def validate(value: Any) -> Any:
        if is_template(value):
            problem = syntax_problem(value)
            if problem:
                raise HintedInvalid(f"template syntax error: {problem}",
                                    hint="check the braces and quotes of the expression")
            return value
        return compiled(value)

    return validate


def expression(value: Any) -> Any:
    """A bare Jinja expression, as `when:` takes it; booleans pass as they are."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise vol.Invalid(f"expected an expression (a string) or a boolean, got {type_name(value)}")
    problem = syntax_problem(value) if is_template(value) else syntax_problem(value, expression=True)
    if problem:
        raise HintedInvalid(f"expression syntax error: {problem}",
                            hint="write when: as a bare expression, e.g. when: answer == 42")
    return value


IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def identifier(value: Any) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise HintedInvalid(f"{value!r} is not a valid variable name",
                            hint="use letters, digits and underscores, not starting with a digit")
    return value


def matches(pattern: re.Pattern, description: str) -> Callable[[Any], str]:
    def validate(value: Any) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise HintedInvalid(f"{value!r} is not a valid {description}", hint=f"use {pattern.pattern}")
        return value
    return validate


def file_mode(value: Any) -> str:
    """A permission mode: an octal string ("0644"), symbolic ("u+x"), or a number as YAML 1.1 reads an
    unquoted `0644` (420), which Ansible applies as the mode bits it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 0o7777:
            return f"0{value:o}"
        raise HintedInvalid(f"mode {value} is out of range", hint='use an octal string like "0644"')
    if isinstance(value, str) and (re.match(r"^0?[0-7]{3,4}$", value) or
                                   re.match(r"^([ugoa]*[-+=][rwxXst]*)(,[ugoa]*[-+=][rwxXst]*)*$", value)):
        return value
    raise HintedInvalid(f"{value!r} is not a file mode", hint='use an octal string like "0644" or "u+x"')


TRUE_WORDS = frozenset({"yes", "on", "1", "true", "y", "t"})
FALSE_WORDS = frozenset({"no", "off", "0", "false", "n", "f"})


def boolean(value: Any) -> bool:
    """A boolean as Ansible's modules take one: true/false, yes/no, on/off, 1/0, in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value in (0.0, 1.0):   # Ansible's booleans include 1.0 and 0.0
        return bool(value)
    word = str(value).strip().lower() if isinstance(value, (str, int, float)) else None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise HintedInvalid(f"expected a boolean, got {value!r}", hint="use true or false (yes/no also work)")


def integer(value: Any) -> int:
    """An integer as Ansible's modules take one: 8080, "8080" or 8080.0."""
    if isinstance(value, bool):
        raise vol.Invalid(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.match(r"^\s*[-+]?\d+\s*$", value):
        return int(value)
    raise vol.Invalid(f"expected an integer, got {type_name(value)} {value!r}")


def string(value: Any) -> str:
    """A string as Ansible's modules take one: a YAML number or boolean is taken as its text."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise vol.Invalid(f"expected a string, got {type_name(value)}")


def positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise vol.Invalid(f"expected a number of seconds (0 or more), got {value!r}")
    return float(value)


def duration(value: Any) -> float:
    """Seconds of `90s`, `30m`, `12h`, `7d`."""
    try:
        if isinstance(value, str):
            return duration_seconds(value)
    except ValueError:
        pass
    raise HintedInvalid(f"{value!r} is not a duration", hint="e.g. 7d, 12h, 30m or 90s")


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    for kind, name in ((bool, "a boolean"), (dict, "a mapping"), (list, "a list"), (str, "a string"),
                       (int, "an integer"), (float, "a number")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def format_path(path: Iterable[Any]) -> str:
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += ("." if text else "") + str(step)
    return text


def problems_from(exc: vol.Invalid, root: Any, prefix: Iterable[Any] = ()) -> list[Problem]:
    """Every error inside exc as a Problem positioned against root (a YMap/YSeq tree)."""
    errors = exc.errors if isinstance(exc, vol.MultipleInvalid) else [exc]
    problems = []
    for error in errors:
        path = [*prefix, *error.path]
        at_key = getattr(error, "at_key", False)
        message = _message(error)
        problems.append(Problem(locate(root, path, at_key=at_key), message, path=format_path(path),
                                hint=getattr(error, "hint", "") or _default_hint(error)))
    return sorted(problems, key=lambda p: (p.position.file, p.position.line, p.position.column) if p.position else ("", 0, 0))


def _message(error: vol.Invalid) -> str:
    message = error.error_message or error.msg
    if message == "required key not provided":
        return f"required key {error.path[-1]!r} is missing" if error.path else "a required key is missing"
    if message == "extra keys not allowed":
        return f"unknown key {error.path[-1]!r}" if error.path else message
    return message


def _default_hint(error: vol.Invalid) -> str:
    if isinstance(error, vol.RequiredFieldInvalid):
        return "add it"
    return ""


def validate(schema: Any, data: Any, root: Any = None, prefix: Iterable[Any] = ()) -> tuple[Any, list[Problem]]:
    """Validate data; return the validated value and every problem found."""
    try:
        return vol.Schema(schema)(data), []
    except vol.Invalid as exc:
        return data, problems_from(exc, root if root is not None else data, prefix)

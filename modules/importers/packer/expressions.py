"""Translated expressions: what Packer's HCL2 and Go templates become in Jinja.

Both translators (hcl_expressions, go_templates) build the same three shapes:
a literal, a Jinja expression, or a string template mixing text and
expressions. data() turns one into a recipe value: a literal as itself (its
text escaped, since recipe renders every string), an expression as
"{{ expr }}" (which keeps its type in recipe), a template as a string.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Union

ENV_LOOKUP = re.compile(r"lookup\('env', '([^']*)'\)")
# Jinja's delimiters in literal text ("${#list[@]}" in a shell line opens a comment): each is written as a
# Jinja string that renders to itself
JINJA_DELIMITERS = re.compile(r"\{\{|\{%|\{#")


class Untranslatable(Exception):
    """A part of a template with no Jinja equivalent: the value is kept as a comment instead."""


class InvalidReference(Exception):
    """A reference Packer itself would refuse (var.x with no variable x): the template is invalid."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Lit:
    value: Any


@dataclass(frozen=True)
class Code:
    text: str                 # a Jinja expression


@dataclass(frozen=True)
class Tpl:
    parts: tuple[Union[str, Code], ...]   # literal text and expressions, in order


@dataclass(frozen=True)
class Struct:
    """A list or a mapping with expressions inside ([var.a, "b"])."""

    items: tuple[Any, ...]            # Exprs; for a mapping, (key, Expr) pairs
    is_map: bool = False


Expr = Union[Lit, Code, Tpl, Struct]


def escape(text: str) -> str:
    return JINJA_DELIMITERS.sub(lambda m: "{{ '" + m.group(0) + "' }}", text)


def literal_code(value: Any) -> str:
    """value as a Jinja literal."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(literal_code(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal_code(str(k))}: {literal_code(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return _string_code(value)
    return json.dumps(value)


def _string_code(text: str) -> str:
    """A Jinja string constant. recipe keeps backslashes in constants as Ansible does (engine.recipe.jinja_lexer):
    '\\1' reaches a filter as a backreference, so nothing is escaped; a quote is avoided by choosing the other,
    or by joining pieces when the text holds both."""
    if text.endswith("\\"):
        raise Untranslatable("a text ending in a backslash, which a Jinja constant cannot end with here")
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return " ~ ".join(_string_code(piece) for piece in re.split(r"(')", text) if piece)


def code(expr: Expr) -> str:
    """expr as a Jinja expression (to use inside another one)."""
    if isinstance(expr, Code):
        return expr.text
    if isinstance(expr, Lit):
        return literal_code(expr.value)
    if isinstance(expr, Struct):
        if expr.is_map:
            return "{" + ", ".join(f"{literal_code(k)}: {code(v)}" for k, v in expr.items) + "}"
        return "[" + ", ".join(code(v) for v in expr.items) + "]"
    pieces = [literal_code(p) if isinstance(p, str) else f"({p.text})" for p in expr.parts if p != ""]
    return " ~ ".join(pieces) or "''"


def structure(items: list[Expr], keys: list[str] | None = None) -> Expr:
    """A list (or, with keys, a mapping) of translated items: a literal when every item is one."""
    if all(isinstance(item, Lit) for item in items):
        values = [item.value for item in items]
        return Lit(dict(zip(keys, values, strict=True)) if keys is not None else values)
    return Struct(tuple(zip(keys, items, strict=True)) if keys is not None else tuple(items), is_map=keys is not None)


def template(parts: list[Union[str, Expr]]) -> Expr:
    """A string made of text and expressions: a literal when nothing is left to evaluate, the expression
    itself when it is alone (so it keeps its type, as HCL's "${var.cpus}" does)."""
    flat: list[Union[str, Code]] = []
    for part in parts:
        if isinstance(part, Struct):
            part = Code(code(part))
        if isinstance(part, Lit):
            part = part.value if isinstance(part.value, str) else json.dumps(part.value)
        if isinstance(part, Tpl):
            flat.extend(part.parts)
        elif isinstance(part, str) and flat and isinstance(flat[-1], str):
            flat[-1] += part
        elif part != "":
            flat.append(part)
    if not flat:
        return Lit("")
    if len(flat) == 1:
        return Lit(flat[0]) if isinstance(flat[0], str) else flat[0]
    return Tpl(tuple(flat))


def data(expr: Expr) -> Any:
    """The recipe value of expr."""
    if isinstance(expr, Lit):
        return _escaped(expr.value)
    if isinstance(expr, Code):
        return "{{ " + expr.text + " }}"
    if isinstance(expr, Struct):
        return {k: data(v) for k, v in expr.items} if expr.is_map else [data(v) for v in expr.items]
    return "".join(escape(p) if isinstance(p, str) else "{{ " + p.text + " }}" for p in expr.parts)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    return value


def env_lookup(name: str) -> Code:
    """Packer's env("X") / {{env `X`}}: the same environment variable, read when the recipe is rendered."""
    return Code(f"lookup('env', {literal_code(name)})")


def env_reads(value: Any) -> tuple[str, ...]:
    """The environment variables a translated value reads (in json's text, the lookups' quotes stay as written)."""
    return tuple(dict.fromkeys(ENV_LOOKUP.findall(json.dumps(value, default=str))))

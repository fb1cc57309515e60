"""Sandboxed Jinja: every field is rendered once, undefined names are errors.

A string that is exactly one expression ("{{ ports }}") renders to the value's
own type (a list stays a list); any other string renders to a string. Variables
are looked up lazily through a Scope, so a variable is rendered only when a
template uses it and a variable that refers to itself is reported, not looped.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, meta
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.filters import FILTERS, TESTS

_SINGLE_EXPRESSION = re.compile(r"^\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\Z", re.S)


class TemplateFailure(Exception):
    """A template could not be rendered; the caller adds the position and path."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value or "{#" in value)


def _new_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True,
                                        autoescape=False)
    env.filters.update(FILTERS)
    env.tests.update(TESTS)
    return env


ENV = _new_environment()
GLOBAL_NAMES = frozenset(ENV.globals)


class Scope(Mapping):
    """Variables for one template evaluation, looked up and rendered on demand.

    layers go from lowest to highest precedence; fixed values (build, facts,
    loop items, registered results) are data and are never rendered.
    """

    def __init__(self, layers: Iterable[Mapping[str, Any]], fixed: Mapping[str, Any] | None = None):
        self._layers = [layer for layer in layers if layer]
        self._fixed = dict(fixed or {})
        self._rendered: dict[str, Any] = {}
        self._in_progress: list[str] = []

    def child(self, extra_layers: Iterable[Mapping[str, Any]] = (), fixed: Mapping[str, Any] | None = None) -> "Scope":
        return Scope([*self._layers, *extra_layers], {**self._fixed, **(fixed or {})})

    def raw(self, name: str) -> Any:
        if name in self._fixed:
            return self._fixed[name]
        for layer in reversed(self._layers):
            if name in layer:
                return layer[name]
        raise KeyError(name)

    def __getitem__(self, name: str) -> Any:
        if name in self._fixed:
            return self._fixed[name]
        if name in self._rendered:
            return self._rendered[name]
        value = self.raw(name)
        if name in self._in_progress:
            chain = " -> ".join([*self._in_progress[self._in_progress.index(name):], name])
            raise TemplateFailure(f"variable {name!r} refers to itself ({chain})",
                                  hint="break the cycle by giving one of them a plain value")
        self._in_progress.append(name)
        try:
            rendered = render(value, self)
        finally:
            self._in_progress.pop()
        self._rendered[name] = rendered
        return rendered

    def __contains__(self, name: object) -> bool:
        return name in self._fixed or any(name in layer for layer in self._layers)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in [self._fixed, *reversed(self._layers)]:
            for name in layer:
                if name not in seen:
                    seen.add(name)
                    yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _run(template_source: str, scope: Scope, expression: bool) -> Any:
    if expression:
        problem = syntax_problem(template_source, expression=True)
        if problem:  # parse alone first: the wrapper below would garble the message
            raise TemplateFailure(f"template syntax error: {problem}",
                                  hint="check the braces and quotes of the expression")
        template = ENV.from_string("{% set __value__ = (" + template_source + ") %}")
    else:
        template = ENV.from_string(template_source)
    context = template.new_context(scope, shared=True)
    if expression:
        for _ in template.root_render_func(context):
            pass
        value = context.vars["__value__"]
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return value
    return "".join(template.root_render_func(context))


def _translate(exc: Exception, scope: Scope) -> TemplateFailure:
    if isinstance(exc, TemplateFailure):
        return exc
    if isinstance(exc, UndefinedError):
        name = _undefined_name(str(exc))
        if name:
            return TemplateFailure(f"undefined variable {name!r}", hint=suggest(name, scope))
        return TemplateFailure(str(exc), hint="define it under vars:, or guard it with | default(...)")
    if isinstance(exc, SecurityError):
        return TemplateFailure(f"refused by the template sandbox: {exc}",
                               hint="templates may not reach Python internals")
    if isinstance(exc, TemplateSyntaxError):
        return TemplateFailure(f"template syntax error: {exc.message}",
                               hint="check the braces and quotes of the expression")
    if isinstance(exc, TemplateError):
        return TemplateFailure(f"template error: {exc}")
    return TemplateFailure(f"template error: {type(exc).__name__}: {exc}")


def _undefined_name(message: str) -> str:
    found = re.match(r"'([^']+)' is undefined", message)
    return found.group(1) if found else ""


def suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "define it under vars:, pass it with --var, or guard it with | default(...)"


def render(value: Any, scope: Scope) -> Any:
    """Render strings anywhere inside value; containers are rebuilt, other values returned as is."""
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            single = _SINGLE_EXPRESSION.match(value)
            if single:
                return _run(single.group("expr"), scope, expression=True)
            return _run(value, scope, expression=False)
        except Exception as exc:  # every Jinja failure becomes one kind of error
            raise _translate(exc, scope) from None
    if isinstance(value, Mapping):
        return {render(k, scope): render(v, scope) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(item, scope) for item in value]
    return value


def render_text(text: str, scope: Scope) -> str:
    """A whole template file's text, always rendered to a string."""
    try:
        return _run(text, scope, expression=False)
    except Exception as exc:
        raise _translate(exc, scope) from None


def evaluate(expression: str | bool, scope: Scope) -> Any:
    """Evaluate a bare expression as `when:` and `until:` take it (no braces)."""
    if isinstance(expression, bool):
        return expression
    text = str(expression).strip()
    single = _SINGLE_EXPRESSION.match(text)
    if single:  # people write when: "{{ x }}" too
        text = single.group("expr")
    try:
        return _run(text, scope, expression=True)
    except Exception as exc:
        raise _translate(exc, scope) from None


def names_used(value: Any, expression: bool = False) -> set[str]:
    """Top-level variable names a template (or a structure of them) reads."""
    names: set[str] = set()
    if isinstance(value, str):
        if expression:
            source = "{{ " + value + " }}"
        elif is_template(value):
            source = value
        else:
            return names
        ast = ENV.parse(source)
        names |= meta.find_undeclared_variables(ast)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            names |= names_used(key) | names_used(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            names |= names_used(item)
    return names - GLOBAL_NAMES


def syntax_problem(value: str, expression: bool = False) -> str:
    """The syntax error of a template, or an empty string when it parses."""
    source = "{{ " + value + " }}" if expression else value
    try:
        ENV.parse(source)
    except TemplateSyntaxError as exc:
        return exc.message or "syntax error"
    return ""


__all__ = ["Scope", "TemplateFailure", "render", "evaluate", "names_used", "syntax_problem", "is_template",
           "suggest"]

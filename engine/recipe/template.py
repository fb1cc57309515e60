"""Sandboxed Jinja: every field is rendered once, undefined names are errors.

A string that is exactly one expression ("{{ ports }}") renders to the value's
own type (a list stays a list); any other string renders to a string. Variables
are looked up lazily through a Scope, so a variable is rendered only when a
template uses it and a variable that refers to itself is reported, not looped.
"""
from __future__ import annotations

import datetime
import difflib
import functools
import math
import re
import string
from _string import formatter_field_name_split
from collections.abc import Callable, Mapping
from typing import Any, Iterable, Iterator

from jinja2 import FileSystemLoader, StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.lexer import Lexer
from jinja2.filters import FILTERS as DEFAULT_FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.recipe.filters import FILTERS, TESTS
from engine.recipe.jinja_lexer import backslashes, lexer_for
from engine.recipe.limits import MAX_SIZE
from engine.recipe.limits import TooLarge as _TooLarge
from engine.recipe.limits import refuse_size as _refuse_size
from engine.recipe.lookups import GLOBALS as LOOKUP_GLOBALS
from engine.recipe.yamlpos import UnsafeText

_SINGLE_EXPRESSION = re.compile(r"^\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\Z", re.S)


class TemplateFailure(Exception):
    """A template could not be rendered; the caller adds the position and path."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class SandboxRefusal(TemplateFailure):
    """The sandbox refused what a template does: reach Python internals, or make a huge value."""


def is_template(value: Any) -> bool:
    return (isinstance(value, str) and not isinstance(value, UnsafeText)
            and ("{{" in value or "{%" in value or "{#" in value))


MAX_POWER_BITS = 100_000  # 2 ** 100000 is the largest power a template may compute
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _unsafe_name(name: Any) -> bool:
    """A name no template needs: dunder (__class__) and name-mangled (_Class__attr) attributes.

    The sandbox refuses every attribute that starts with "_" when it runs; but `x._id` is also how a
    template reads a mapping's "_id" key, so only these are refused before it runs."""
    return isinstance(name, str) and name.startswith("_") and "__" in name


def _check_width(number: Any, what: str) -> None:
    if isinstance(number, int) and not isinstance(number, bool) and number > MAX_SIZE:
        raise _refuse_size(what)


def _check_percent_format(text: str) -> None:
    for match in _PERCENT_SPEC.finditer(text):
        for group in match.groups():
            if group == "*":
                raise _TooLarge("a '*' width in a % format is not allowed in templates")
            if group:
                _check_width(int(group), "this % format")


def _check_format_string(text: str) -> None:
    """str.format fields: attributes reached by a field ('{0.__class__}') and widths ('{:999999999}')."""
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return   # str.format itself reports it
    for _, field, spec, _ in fields:
        if field:
            try:
                _, rest = formatter_field_name_split(field)
                for _is_attribute, part in rest:
                    if _unsafe_name(part):
                        raise SecurityError(f"access to attribute {part!r} in the format field {{{field}}} is unsafe")
            except ValueError:
                pass
        if spec:
            if "{" in spec:
                raise _TooLarge("a nested field in a format spec is not allowed in templates")
            for number in re.findall(r"\d+", spec):
                _check_width(int(number), "this format field")


class RecipeSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, made strict: an unsafe access is an error at once (never an Undefined a
    `default` or `is defined` would hide), and operations that would make huge values are refused."""

    intercepted_binops = frozenset({"*", "**", "%"})

    @property
    def lexer(self) -> Lexer:      # Jinja's is a property too: Ansible's backslash rule (engine.recipe.jinja_lexer)
        return lexer_for(self)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Undefined):   # `x.y is defined` and `x.y | default(1)` work on an undefined x, as in
            return self.undefined(hint=obj._undefined_hint, obj=obj._undefined_obj,   # Ansible; using it fails
                                  name=obj._undefined_name, exc=obj._undefined_exception)   # naming x
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Undefined):
            return self.getattr(obj, "")
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_string(value.__self__)
        return wrapped

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's names)
        if getattr(__obj, "__name__", None) in _PADDING_METHODS and isinstance(getattr(__obj, "__self__", None), str):
            for number in [*args, *kwargs.values()]:
                _check_width(number, f"str.{__obj.__name__}()")
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) and len(sequence) * times > MAX_SIZE:
                    raise _refuse_size(f"{type(sequence).__name__} * {times}")
        elif operator == "**":
            if (isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0
                    and right * math.log2(abs(left)) > MAX_POWER_BITS):
                raise _TooLarge(f"{left} ** {right} is too large a number for a template")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return super().call_binop(context, operator, left, right)


def _checked_format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_percent_format(str(value))
    return DEFAULT_FILTERS["format"](value, *args, **kwargs)


def _checked_width(name: str, position: int, keyword: str) -> Any:
    original = DEFAULT_FILTERS[name]

    @functools.wraps(original)     # keeps Jinja's marks (pass_environment and the like)
    def checked(*args: Any, **kwargs: Any) -> Any:
        width = args[position] if len(args) > position else kwargs.get(keyword)
        _check_width(width, f"the {name} filter")
        return original(*args, **kwargs)

    return checked


def now(utc: bool = False, fmt: str | None = None) -> Any:
    """Ansible's now(): the time on the build host, as a datetime or formatted with strftime's fmt."""
    moment = datetime.datetime.now(datetime.timezone.utc) if utc else datetime.datetime.now()
    return moment.strftime(fmt) if fmt else moment


_UNDEFINED_TESTS = frozenset({"defined", "undefined"})


def _refusing_undefined(test: Callable[..., Any]) -> Callable[..., Any]:
    """Ansible 2.19: a test of an undefined value is an error (`r.missing is false` fails the task); only the
    tests that ask whether it is defined take one."""
    position = 1 if getattr(test, "jinja_pass_arg", None) else 0    # after the context/environment Jinja passes

    @functools.wraps(test)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if len(args) > position and isinstance(args[position], Undefined):
            args[position]._fail_with_undefined_error()
        return test(*args, **kwargs)
    return checked


def _new_environment() -> RecipeSandbox:
    env = RecipeSandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters.update(FILTERS)
    env.filters.update({"format": _checked_format, "center": _checked_width("center", 1, "width"),
                        "indent": _checked_width("indent", 1, "width")})
    env.tests.update(TESTS)
    env.tests.update({name: _refusing_undefined(test) for name, test in env.tests.items()
                      if name not in _UNDEFINED_TESTS})
    env.globals.update(LOOKUP_GLOBALS)      # lookup(), query(), q()
    env.globals["now"] = now
    return env


ENV = _new_environment()
GLOBAL_NAMES = frozenset(ENV.globals)


class _WithGlobals(Mapping):
    """What a template sees: the scope's variables, then Jinja's globals (range, dict, namespace, ...).

    A template's context normally copies its globals and variables into one dict; a Scope renders its
    variables lazily, so it is looked up through this instead."""

    def __init__(self, scope: Mapping[str, Any]):
        self._scope = scope

    def __getitem__(self, name: str) -> Any:
        if name in self._scope:
            return self._scope[name]
        return ENV.globals[name]

    def __contains__(self, name: object) -> bool:
        return name in self._scope or name in ENV.globals

    def __iter__(self) -> Iterator[str]:
        yield from self._scope
        yield from (name for name in ENV.globals if name not in self._scope)

    def __len__(self) -> int:
        return sum(1 for _ in self)


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


@functools.lru_cache(maxsize=16)
def _environment(options: tuple[tuple[str, Any], ...]) -> ImmutableSandboxedEnvironment:
    """ENV with a template file's own syntax settings (the template module's trim_blocks, delimiters...), and
    `searchpath`: the folders its {% import %} and {% include %} find templates in."""
    settings = dict(options)
    searchpath = settings.pop("searchpath", ())
    if searchpath:
        settings["loader"] = FileSystemLoader(list(searchpath))
    return ENV.overlay(**settings) if settings else ENV


def _with_embedded_templates(env: ImmutableSandboxedEnvironment, source: str, scope: Scope) -> nodes.Template:
    """The compiled conditional with each string constant that holds a template rendered first, as Ansible
    2.19 still does in conditionals (`that: "x == '{{ home }}/x'"`; deprecated, to go in ansible-core 2.23)."""
    ast = env.parse(source)
    for const in ast.find_all(nodes.Const):
        if isinstance(const.value, str) and ("{{" in const.value or "{%" in const.value):
            const.value = _run(const.value, scope, expression=False)
    return ast


def _run(template_source: str, scope: Scope, expression: bool,
         env: ImmutableSandboxedEnvironment | None = None, embedded: bool = False) -> Any:
    env = env or ENV
    if expression:
        problem = syntax_problem(template_source, expression=True)
        if problem:  # parse alone first: the wrapper below would garble the message
            raise TemplateFailure(f"template syntax error: {problem}",
                                  hint="check the braces and quotes of the expression")
        source = "{% set __value__ = (" + template_source + ") %}"
        template = env.from_string(_with_embedded_templates(env, source, scope) if embedded else source)
    else:
        template = env.from_string(template_source)
    context = template.new_context(_WithGlobals(scope), shared=True)
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
    if isinstance(exc, _TooLarge):
        return SandboxRefusal(f"refused by the template sandbox: {exc}", hint="templates may not make values this large")
    if isinstance(exc, SecurityError):
        return SandboxRefusal(f"refused by the template sandbox: {exc}", hint="templates may not reach Python internals")
    if isinstance(exc, RecursionError):
        return TemplateFailure(f"template error: {TOO_DEEP}", hint="split it into smaller expressions")
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
    close = difflib.get_close_matches(name, [k for k in known if isinstance(k, str)], n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "define it under vars:, pass it with --var, or guard it with | default(...)"


def _single_expression(value: str) -> str | None:
    """The expression of a string that is exactly one `{{ ... }}`, braces inside it included
    (`{{ {'a': {'b': 1}} }}` is a dict, as in Ansible); None for any other string."""
    single = _SINGLE_EXPRESSION.match(value)
    if single:
        return single.group("expr")
    text = value
    if not (text.startswith("{{") and text.endswith("}}")):
        return None
    try:
        body = ENV.parse(text).body
    except (TemplateSyntaxError, RecursionError):
        return None
    if len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1 \
            and not isinstance(body[0].nodes[0], nodes.TemplateData):
        return text[2:-2]
    return None


def _render_string(value: str, scope: Scope) -> Any:
    single = _single_expression(value)
    # Ansible's Jinja drops one trailing newline before it renders, and puts it back only on a string
    # result: "{{ port }}\n" is the number 80, "{{ name }}\n" the name and a newline
    newline = single is None and value.endswith("\n")
    if newline:
        single = _single_expression(value[:-1])
    with backslashes("all" if single is not None else "variables"):
        if single is None:
            return _run(value, scope, expression=False)
        result = _run(single, scope, expression=True)
    return result + "\n" if newline and isinstance(result, str) else result


def render(value: Any, scope: Scope) -> Any:
    """Render strings anywhere inside value; containers are rebuilt, other values returned as is."""
    if isinstance(value, str):
        if not is_template(value) or isinstance(value, UnsafeText):
            return value
        try:
            return _render_string(value, scope)
        except Exception as exc:  # every Jinja failure becomes one kind of error
            raise _translate(exc, scope) from None
    if isinstance(value, Mapping):
        return {render(k, scope): render(v, scope) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(item, scope) for item in value]
    return value


def render_text(text: str, scope: Scope, options: Mapping[str, Any] | None = None) -> str:
    """A whole template file's text, always rendered to a string (Jinja's escapes apply, as in Ansible's);
    options: Jinja's syntax settings (trim_blocks, block_start_string...) where the template sets its own."""
    try:
        with backslashes(""):
            return _run(text, scope, expression=False, env=_environment(tuple(sorted((options or {}).items()))))
    except Exception as exc:
        raise _translate(exc, scope) from None


def evaluate(expression: str | bool, scope: Scope) -> Any:
    """Evaluate a bare expression as `when:` and `until:` take it (no braces)."""
    if isinstance(expression, bool):
        return expression
    text = str(expression).strip()
    single = _single_expression(text)
    if single is not None:  # people write when: "{{ x }}" too
        text = single
    try:
        with backslashes(""):      # conditionals keep Jinja's escapes, as Ansible's do
            return _run(text, scope, expression=True, embedded="{{" in text or "{%" in text)
    except Exception as exc:
        raise _translate(exc, scope) from None


def broken_conditional(value: Any, shown: Any) -> str:
    """Ansible 2.19 refuses a "truthy" conditional: the message for a result that is not a boolean, else ''."""
    if isinstance(value, bool):
        return ""
    return (f"Conditional result ({bool(value)}) was derived from value of type {type(value).__name__!r} "
            f"({shown!r}). Conditionals must have a boolean result.")


def condition(expression: str | bool, scope: Scope) -> bool:
    """A `when`/`changed_when`/`failed_when` condition: a boolean, or a TemplateFailure as Ansible 2.19 says."""
    value = evaluate(expression, scope)
    problem = broken_conditional(value, expression)
    if problem:
        raise TemplateFailure(problem, hint="compare the value (x == 'yes') or convert it (x | bool)")
    return value


GUARDS = ("default", "d")                              # x | default(...)
GUARD_TESTS = ("defined", "undefined", "none")          # x is defined


def _guarded_names(ast: nodes.Node) -> set[str]:
    """Names a template checks before it relies on them (`x | default(1)`, `x is defined`): not an error to
    leave undefined, as Ansible content often does for optional settings."""
    guarded: set[str] = set()
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        if isinstance(node, nodes.Filter) and node.name in GUARDS or \
                isinstance(node, nodes.Test) and node.name in GUARD_TESTS:
            if node.node is not None:
                guarded |= {name.name for name in node.node.find_all(nodes.Name)}
                if isinstance(node.node, nodes.Name):
                    guarded.add(node.node.name)
    return guarded


def guarded_names(expression: str) -> set[str]:
    """Names a bare expression (a `when:`) checks before relying on them; empty when it does not parse."""
    try:
        return _guarded_names(ENV.parse("{{ " + expression + " }}"))
    except (TemplateSyntaxError, RecursionError):
        return set()


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
        names |= meta.find_undeclared_variables(ast) - _guarded_names(ast)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            names |= names_used(key) | names_used(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            names |= names_used(item)
    return names - GLOBAL_NAMES


def all_names_read(value: str, expression: bool = False) -> set[str]:
    """Every top-level name a template or a bare expression reads, guarded and global ones included (what a
    cache key must follow); empty for plain text, and for what does not parse."""
    if not expression and not is_template(value):
        return set()
    try:
        ast = ENV.parse("{{ " + value + " }}" if expression else value)
    except (TemplateSyntaxError, RecursionError):
        return set()
    used_globals = {node.name for node in ast.find_all(nodes.Name) if node.name in GLOBAL_NAMES}
    return meta.find_undeclared_variables(ast) | used_globals


_LOOKUP_CALLS = frozenset({"lookup", "query", "q"})


def lookups_called(value: Any) -> set[str]:
    """The lookups a template, a bare expression or a structure of them calls by a constant name
    (`lookup('password', ...)` gives password)."""
    found: set[str] = set()
    if isinstance(value, str) and any(f"{call}(" in value for call in _LOOKUP_CALLS):
        try:
            ast = ENV.parse(value if is_template(value) else "{{ " + value + " }}")
        except (TemplateSyntaxError, RecursionError):
            return found
        for call in ast.find_all(nodes.Call):
            if (isinstance(call.node, nodes.Name) and call.node.name in _LOOKUP_CALLS and call.args
                    and isinstance(call.args[0], nodes.Const) and isinstance(call.args[0].value, str)):
                found.add(call.args[0].value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found |= lookups_called(key) | lookups_called(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= lookups_called(item)
    return found


def syntax_problem(value: str, expression: bool = False) -> str:
    """The syntax error of a template, or an empty string when it parses."""
    source = "{{ " + value + " }}" if expression else value
    try:
        ENV.parse(source)
    except TemplateSyntaxError as exc:
        return exc.message or "syntax error"
    except RecursionError:
        return TOO_DEEP
    return ""


TOO_DEEP = "the expression is nested too deeply"


def _evaluation_order(node: nodes.Node) -> Iterator[nodes.Node]:
    """Children before their parent: in ''.__class__.__mro__ the first refusal named is __class__."""
    for child in node.iter_child_nodes():
        yield from _evaluation_order(child)
    yield node


def unsafe_access(value: str, expression: bool = False) -> str:
    """What a template reaches that the sandbox would refuse, found without running it ('' when nothing).

    The attributes a template names (x.__class__, x['__class__'], x | attr('__class__')) and the fields of a
    constant format string ('{0.__class__}'.format(x)) are checked here, so `validate` reports them; what
    is only known when the template runs (an attribute name in a variable) the sandbox refuses then.
    """
    source = "{{ " + value + " }}" if expression else value
    try:
        tree = ENV.parse(source)
    except (TemplateSyntaxError, RecursionError):
        return ""      # the syntax check reports it
    for node in _evaluation_order(tree):
        name = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args and isinstance(node.args[0], nodes.Const):
            name = node.args[0].value
        if _unsafe_name(name):
            return f"access to attribute {name!r} is unsafe"
        if (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr)
                and node.node.attr in ("format", "format_map") and isinstance(node.node.node, nodes.Const)
                and isinstance(node.node.node.value, str)):
            try:
                _check_format_string(node.node.node.value)
            except SecurityError as exc:
                return str(exc)
    return ""


__all__ = ["Scope", "TemplateFailure", "SandboxRefusal", "render", "evaluate", "guarded_names", "names_used", "syntax_problem", "unsafe_access",
           "is_template", "suggest"]

"""Ansible's lookups: `lookup('file', 'motd')`, `query('fileglob', '*.conf')`, and the `with_<name>:` loops.

Each lookup takes its terms (a list) and returns a list, as Ansible's `run()` does; `lookup()` then joins
a list of strings with ',' (or gives its only item) unless wantlist=True, and `query()`/`q()` always give
the list. File lookups search as Ansible does: the role's files/ (templates/ for `template`), the role's
directory, the playbook's files/, the playbook's directory, read from the magic variables `role_path` and
`playbook_dir`. They all run on the controller (this machine), as Ansible's do.
"""
from __future__ import annotations

import decimal
import functools
import glob
import itertools
import logging
import os
import pwd
import re
import shlex
import subprocess
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from jinja2 import Environment, pass_context
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.utils import missing

from engine.recipe.jinja_lexer import backslashes
from engine.recipe.limits import check_count, product_size

log = logging.getLogger(__name__)


class LookupFailure(TemplateRuntimeError):
    """A lookup failed; the message names the lookup and its term."""


Renderer = Callable[[str, Mapping[str, Any]], str]   # a template file's text, extra variables -> text


@dataclass(frozen=True)
class LookupCall:
    """What a lookup may use besides its terms: the variables in scope, how to render a template file,
    how to make an undefined value (env and vars give one for a name that is not set), the task's action."""
    variables: Mapping[str, Any]
    renderer: Renderer | None = None
    undefined: Callable[[str], Any] = lambda hint: None
    action: str = ""


# ---- where files are found ------------------------------------------------------------------------


def _bases(variables: Mapping[str, Any]) -> list[str]:
    """Where relative names are looked for: Ansible's ansible_search_path (the task file's directory, the role,
    the playbook's directory) when the engine gives it, else the role and the playbook's directory."""
    if _has(variables, "ansible_search_path") and isinstance(variables["ansible_search_path"], list):
        bases = list(variables["ansible_search_path"])
    else:
        bases = [variables[name] for name in ("role_path", "playbook_dir") if _has(variables, name)]
    return [str(base) for base in bases if base] or [os.getcwd()]


def _has(variables: Mapping[str, Any], name: str) -> bool:
    try:
        return name in variables
    except TypeError:
        return False


def candidates(variables: Mapping[str, Any], subdir: str | None, needle: str) -> list[str]:
    """Paths Ansible tries for a relative file name, in its order."""
    if needle.startswith(("~", "/")):
        return [os.path.normpath(os.path.expanduser(needle))]
    found = []
    for base in _bases(variables):
        if subdir and needle.split("/")[0] != subdir:
            found.append(os.path.join(base, subdir, needle))
        found.append(os.path.join(base, needle))
    return found


def find_file(variables: Mapping[str, Any], subdir: str | None, needle: str) -> str | None:
    return next((path for path in candidates(variables, subdir, needle) if os.path.exists(path)), None)


def _not_found(variables: Mapping[str, Any], subdir: str | None, needle: str) -> LookupFailure:
    return LookupFailure(f"could not find {needle!r}; searched {', '.join(candidates(variables, subdir, needle))}")


# ---- the lookups ----------------------------------------------------------------------------------


def _flatten(terms: Any) -> list:
    flat: list = []
    for term in terms:
        flat.extend(term) if isinstance(term, (list, tuple)) else flat.append(term)
    return flat


def lookup_file(terms: list, call: LookupCall, lstrip: bool = False, rstrip: bool = True) -> list:
    contents = []
    for term in terms:
        path = find_file(call.variables, "files", str(term))
        if path is None or not os.path.isfile(path):
            raise _not_found(call.variables, "files", str(term))
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
        text = text.lstrip() if lstrip else text
        contents.append(text.rstrip() if rstrip else text)
    return contents


def lookup_env(terms: list, call: LookupCall, default: Any = "") -> list:
    """An unset variable is '' (or default=; an undefined default makes it an error where it is used)."""
    return [os.environ.get(str(term).split()[0], default) for term in terms]


def lookup_pipe(terms: list, call: LookupCall) -> list:
    """Runs each term with /bin/sh on the controller, in the playbook's directory, as Ansible does."""
    outputs = []
    cwd = str(call.variables["playbook_dir"]) if _has(call.variables, "playbook_dir") else None
    for term in terms:
        done = subprocess.run(str(term), shell=True, cwd=cwd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if done.returncode != 0:
            error = done.stderr.decode("utf-8", "replace").strip()
            raise LookupFailure(f"the command returned {done.returncode}" + (f": {error}" if error else ""))
        outputs.append(done.stdout.decode("utf-8").rstrip())
    return outputs


def lookup_lines(terms: list, call: LookupCall) -> list:
    """Each term's command output, one item per line (pipe's command, split)."""
    return [line for output in lookup_pipe(terms, call) for line in output.splitlines()]


def lookup_varnames(terms: list, call: LookupCall) -> list:
    """The names of the variables in scope that each regular expression matches (re.search), as Ansible lists
    them: `when: not lookup('varnames', '^' + name + '$')` asks whether a variable is set."""
    found = []
    for term in terms:
        if not isinstance(term, str):
            raise LookupFailure(f"Invalid setting identifier, {term!r} is not a string, it is a {type(term).__name__}")
        try:
            pattern = re.compile(term)
        except re.error as exc:
            raise LookupFailure(f"Unable to use {term!r} as a search parameter: {exc}") from None
        found += [name for name in call.variables if isinstance(name, str) and pattern.search(name)]
    return found


def lookup_template(terms: list, call: LookupCall, template_vars: Mapping | None = None) -> list:
    if call.renderer is None:
        raise LookupFailure("the template lookup needs a renderer here (the engine passes one)")
    rendered = []
    for term in terms:
        path = find_file(call.variables, "templates", str(term))
        if path is None or not os.path.isfile(path):
            raise _not_found(call.variables, "templates", str(term))
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        extra = {"template_path": path, "template_fullpath": os.path.abspath(path),
                 "template_destpath": None, "template_host": os.uname().nodename,
                 "template_uid": _owner(path), **(template_vars or {})}
        rendered.append(call.renderer(text, extra))
    return rendered


def _owner(path: str) -> str:
    uid = os.stat(path).st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def lookup_vars(terms: list, call: LookupCall, default: Any = None) -> list:
    values = []
    for term in terms:
        if not isinstance(term, str):
            raise LookupFailure(f"Variable name must be 'str' not {type(term).__name__!r}.")
        if _has(call.variables, term):
            values.append(call.variables[term])
        elif default is not None:
            values.append(default)
        else:
            values.append(call.undefined(f"No variable named {term!r} was found."))
    return values


def lookup_first_found(terms: list, call: LookupCall, files: Any = (), paths: Any = (), skip: bool = False) -> list:
    """The first of the files that exists; the with_ form also looks in the task's files/templates/vars dir."""
    options = {"files": files, "paths": paths, "skip": skip}
    searched = _first_found_names(terms or [{}], options)
    subdir = _first_found_subdir(call.action)
    for name in searched:
        path = find_file(call.variables, subdir, name)
        if path is not None:
            return [os.path.abspath(os.path.normpath(path))]
    if options["skip"]:
        return []
    raise LookupFailure("No file was found when using first_found.")


def _first_found_subdir(action: str) -> str | None:
    if not action:
        return None
    return next((f"{sub}s" for sub in ("template", "var") if sub in action), "files")


def _split(value: Any, separators: str) -> list[str]:
    if isinstance(value, str):
        return [part for part in re.split(f"[{re.escape(separators)}]", value)]
    return [part for item in value for part in _split(item, separators)]


def _first_found_names(terms: Sequence, options: dict) -> list[str]:
    names: list[str] = []
    for term in terms:
        if isinstance(term, Mapping):
            options.update({key: term[key] for key in ("files", "paths", "skip") if key in term})
            files = options["files"]
        elif isinstance(term, str):
            files = [term]
        elif isinstance(term, Sequence):
            names.extend(_first_found_names(term, options))
            continue
        else:
            raise LookupFailure(f"Invalid term supplied. A string, dict or list is required, "
                                f"not {type(term).__name__!r}.")
        file_list = _split(files, ",;")
        path_list = _split(options["paths"], ",:;")
        names.extend(os.path.join(path, name) for path in path_list for name in file_list) if path_list \
            else names.extend(file_list)
    return names


def lookup_fileglob(terms: list, call: LookupCall) -> list:
    matches: list[str] = []
    for term in terms:
        term = str(term)
        name = os.path.basename(term)
        if name != term:
            directory = find_file(call.variables, "files", os.path.dirname(term))
            places = [directory] if directory else []
        else:
            places = [place for base in _bases(call.variables) for place in (os.path.join(base, "files"), base)]
        for place in places:
            found = [path for path in glob.glob(os.path.join(place, name)) if os.path.isfile(path)]
            if found:
                matches.extend(found)
                break
    return matches


def lookup_items(terms: list, call: LookupCall) -> list:
    return _flatten(terms)


def lookup_list(terms: Any, call: LookupCall) -> list:
    if not isinstance(terms, Sequence) or isinstance(terms, str):
        raise LookupFailure("with_list expects a list")
    return list(terms)


def lookup_dict(terms: list, call: LookupCall) -> list:
    pairs = []
    for term in terms:
        if not isinstance(term, Mapping):
            raise LookupFailure(f"the 'dict' lookup plugin expects a dictionary, "
                                f"got '{term}' of type {type(term).__name__}")
        pairs.extend({"key": key, "value": term[key]} for key in term)
    return pairs


def lookup_indexed_items(terms: list, call: LookupCall) -> list:
    return [(index, item) for index, item in enumerate(_flatten(terms))]


def lookup_together(terms: list, call: LookupCall) -> list:
    if not terms:
        raise LookupFailure("with_together requires at least one element in each list")
    return [_flatten(row) for row in itertools.zip_longest(*terms, fillvalue=None)]


def lookup_nested(terms: list, call: LookupCall) -> list:
    if not terms:
        raise LookupFailure("with_nested requires at least one element in the nested list")
    check_count(product_size(len(term) for term in terms), "with_nested")
    combined: list = list(terms[0])
    for term in terms[1:]:
        combined = [_flatten([x, y]) for x in combined for y in term]
    return [_flatten(row) if isinstance(row, list) else [row] for row in combined]


def lookup_subelements(terms: list, call: LookupCall) -> list:
    """(item, subitem) pairs; as in Ansible, the item no longer holds the list it was paired from."""
    if not isinstance(terms, list) or not 2 <= len(terms) <= 3:
        raise LookupFailure("subelements lookup expects a list of two or three items")
    if not isinstance(terms[0], (list, dict)) or not isinstance(terms[1], str):
        raise LookupFailure("subelements lookup expects a list of two or three items, first a dict or a list, "
                            "second a string pointing to the subkey")
    elements = terms[0]
    if isinstance(elements, dict):
        if elements.get("skipped", False) is not False:
            return []
        elements = list(elements.values())
    flags = terms[2] if len(terms) == 3 else {}
    if not isinstance(flags, dict) or any(key != "skip_missing" for key in flags):
        raise LookupFailure("subelements lookup: the optional third item must be a dict with flags ('skip_missing',)")
    skip_missing = str(flags.get("skip_missing", False)).lower() in ("1", "true", "yes", "on", "y", "t")
    pairs = []
    for element in elements:
        if not isinstance(element, dict):
            raise LookupFailure(f"subelements lookup expects a dictionary, got '{element}'")
        if element.get("skipped", False) is not False:
            continue
        element, sublist = _detach(element, terms[1].split("."), skip_missing)
        pairs.extend([element, item] for item in sublist)     # lists, as Ansible 2.19 hands them on
    return pairs


def _detach(element: dict, keys: list[str], skip_missing: bool) -> tuple[dict, list]:
    """A copy of element without its list at keys, and that list."""
    top = dict(element)
    holder = top
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if key not in holder:
            if skip_missing:
                return top, []
            raise LookupFailure(f"could not find '{key}' key in iterated item '{holder}'")
        if not last:
            if not isinstance(holder[key], dict):
                if skip_missing:
                    return top, []
                raise LookupFailure(f"the key {key} should point to a dictionary, got '{holder[key]}'")
            holder[key] = dict(holder[key])
            holder = holder[key]
        elif not isinstance(holder[key], list):
            raise LookupFailure(f"the key {key} should point to a list, got '{holder[key]}'")
    return top, holder.pop(keys[-1])


_SHORTCUT = re.compile(r"^((0?x?[0-9a-f]+)-)?(0?x?[0-9a-f]+)(/(0?x?[0-9a-f]+))?(:(.+))?$", re.I)


def lookup_sequence(terms: list, call: LookupCall, **options: Any) -> list:
    """'[start-]end[/stride][:format]' or 'start=1 end=10 stride=2 format=%02d' (or count= instead of end=)."""
    items: list[str] = []
    for term in terms or ([""] if options else []):
        fields = {"start": 1, "end": None, "count": None, "stride": 1, "format": "%d", **options}
        fields.update(_sequence_fields(str(term)))
        for key in ("start", "end", "count", "stride"):
            fields[key] = _integer(fields[key], key)
        items.extend(_sequence(**fields))
    return items


def _sequence_fields(term: str) -> dict:
    shortcut = _SHORTCUT.match(term)
    if shortcut:
        start, end, stride, form = shortcut.group(2, 3, 5, 7)
        return {key: value for key, value in
                {"start": start, "end": end, "stride": stride, "format": form}.items() if value is not None}
    fields = {}
    for word in shlex.split(term):
        key, equals, value = word.partition("=")
        if not equals or key not in ("start", "end", "count", "stride", "format"):
            raise LookupFailure(f"unrecognized arguments to with_sequence: {[key]}")
        fields[key] = value
    return fields


def _integer(value: Any, name: str) -> int | None:
    """As Ansible 2.19 reads an integer option: decimal text only ('0600' is 600; '0x10' is refused)."""
    if value is None or isinstance(value, int):
        return value
    try:
        number = decimal.Decimal(str(value))
        if number == int(number):
            return int(number)
    except (decimal.InvalidOperation, ValueError):
        pass
    raise LookupFailure(f"sequence: {name}={value!r} is not an integer")


def _sequence(start: int, end: int | None, count: int | None, stride: int, format: str) -> Iterator[str]:  # noqa: A002
    if count is None and end is None:
        raise LookupFailure("must specify count or end in with_sequence")
    if count is not None and end is not None:
        raise LookupFailure("can't specify both count and end in with_sequence")
    if count is not None:
        if count == 0:
            return iter(())
        end = start + count * stride - 1
    if stride > 0 and end < start:
        raise LookupFailure("to count backwards make stride negative")
    if stride < 0 and end > start:
        raise LookupFailure("to count forward don't make stride negative")
    if stride == 0:
        return iter(())
    if format.count("%") != 1:
        raise LookupFailure(f"bad formatting string: {format}")
    numbers = range(start, end + (1 if stride > 0 else -1), stride)
    check_count(len(numbers), "with_sequence")
    try:
        return iter([format % number for number in numbers])
    except (ValueError, TypeError):
        raise LookupFailure(f"problem formatting with {format!r}") from None


LOOKUPS: dict[str, Callable[..., list]] = {
    "file": lookup_file, "env": lookup_env, "pipe": lookup_pipe, "template": lookup_template, "vars": lookup_vars,
    "first_found": lookup_first_found, "fileglob": lookup_fileglob, "items": lookup_items, "list": lookup_list,
    "dict": lookup_dict, "indexed_items": lookup_indexed_items, "together": lookup_together,
    "nested": lookup_nested, "subelements": lookup_subelements, "sequence": lookup_sequence,
    "lines": lookup_lines, "varnames": lookup_varnames,
}
LOOKUP_NAMES = frozenset(LOOKUPS)
_FQCN = re.compile(r"^ansible\.(builtin|legacy)\.")


def is_known_lookup(name: str) -> bool:
    return _FQCN.sub("", str(name)) in LOOKUPS


def _lookup_function(name: str) -> Callable[..., list]:
    short = _FQCN.sub("", str(name))
    if short not in LOOKUPS:
        raise LookupFailure(f"lookup {name!r} is not known; recipe has {', '.join(sorted(LOOKUPS))}")
    return LOOKUPS[short]


def _describe(name: str, terms: Any) -> str:
    shown = terms[0] if isinstance(terms, list) and len(terms) == 1 else terms
    return f"lookup {name!r} failed on {shown!r}"


def _call(name: str, terms: Any, call: LookupCall, options: dict) -> list:
    function = _lookup_function(name)
    try:
        result = function(terms, call, **options)
    except LookupFailure as exc:
        raise LookupFailure(f"{_describe(name, terms)}: {exc}") from None
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            taken = ", ".join(map(repr, options))
            raise LookupFailure(f"lookup {name!r} does not take the option(s) {taken}") from None
        raise LookupFailure(f"{_describe(name, terms)}: {exc}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise LookupFailure(f"{_describe(name, terms)}: {exc}") from None
    return list(result)


def run_lookup(name: str, terms: Any, variables: Mapping[str, Any], *, renderer: Renderer | None = None,
               action: str = "", **options: Any) -> list:
    """The items of `with_<name>: terms`. A single term (a string, or a dict for with_dict) is a list of one,
    as Ansible makes it; with_items then flattens one level, with_list does not."""
    if isinstance(terms, (str, Mapping)) or not isinstance(terms, Sequence):
        terms = [terms]
    return _call(name, list(terms), LookupCall(variables, renderer, action=action), options)


# ---- the Jinja globals ---------------------------------------------------------------------------


class ContextVariables(Mapping):
    """A template context's variables as a lookup reads them: by name, rendered on demand."""

    def __init__(self, context: Context):
        self._context = context

    def __getitem__(self, name: str) -> Any:
        value = self._context.resolve_or_missing(name)
        if value is missing:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._context.resolve_or_missing(name) is not missing

    def __iter__(self) -> Iterator[str]:
        return iter(self._context.parent)

    def __len__(self) -> int:
        return len(self._context.parent)


@functools.lru_cache(maxsize=4)
def _file_environment(environment: Environment) -> Environment:
    """The template lookup renders files as Ansible's does, with trim_blocks on (the template module's default)."""
    return environment.overlay(trim_blocks=True)


def _renderer(context: Context) -> Renderer:
    """Renders a template file with the variables of the template that called the lookup."""
    def render(text: str, extra: Mapping[str, Any]) -> str:
        with backslashes(""):        # a template file keeps Jinja's escapes, as Ansible's template lookup
            template = _file_environment(context.environment).from_string(text)
        scope = ChainMap(dict(extra), context.vars, context.parent)    # never copied whole: rendered lazily
        return "".join(template.root_render_func(template.new_context(scope, shared=True)))
    return render


def _call_from_template(context: Context) -> LookupCall:
    return LookupCall(ContextVariables(context), _renderer(context),
                      undefined=lambda hint: context.environment.undefined(hint=hint))


def _invoke(context: Context, name: str, terms: tuple, options: dict, wantlist: bool) -> Any:
    wantlist = bool(options.pop("wantlist", wantlist))
    errors = options.pop("errors", "strict")
    if errors not in ("strict", "warn", "ignore"):
        raise LookupFailure(f"lookup {name!r}: errors must be strict, warn or ignore, got {errors!r}")
    try:
        result = _call(name, list(terms), _call_from_template(context), options)
    except LookupFailure as exc:
        if errors == "strict":
            raise
        if errors == "warn":
            log.warning("%s", exc)
        return [] if wantlist else None
    if wantlist or not result:
        return result
    if len(result) == 1:
        return result[0]
    return ",".join(result) if all(isinstance(item, str) for item in result) else result


@pass_context
def lookup(context: Context, name: str, *terms: Any, **options: Any) -> Any:
    return _invoke(context, name, terms, options, wantlist=False)


@pass_context
def query(context: Context, name: str, *terms: Any, **options: Any) -> Any:
    return _invoke(context, name, terms, options, wantlist=True)


GLOBALS = {"lookup": lookup, "query": query, "q": query}

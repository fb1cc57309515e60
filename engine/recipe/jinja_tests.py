"""Ansible's Jinja tests (`result is changed`, `ver is version('2.0', '>=')`, `path is file`, ...).

Semantics are Ansible's (ansible/plugins/test/*.py). File tests look at the controller's file system,
as Ansible's do: they run where the template is rendered, never on the target."""
from __future__ import annotations

import math
import os.path
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from jinja2.exceptions import TemplateRuntimeError

from engine.recipe.versions import VersionError, compare


def _result(value: Any, test: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise TemplateRuntimeError(f"The '{test}' test expects a dictionary (a registered result)")
    return value


def failed(result: Any) -> bool:
    return bool(_result(result, "failed").get("failed"))


def succeeded(result: Any) -> bool:
    return not bool(_result(result, "succeeded").get("failed"))


def unreachable(result: Any) -> bool:
    return bool(_result(result, "unreachable").get("unreachable"))


def reachable(result: Any) -> bool:
    return not unreachable(result)


def changed(result: Any) -> bool:
    """A loop's result has no 'changed' of its own in old registered results: any item's counts."""
    result = _result(result, "changed")
    if "changed" in result:
        return bool(result["changed"])
    items = result.get("results")
    if isinstance(items, Sequence) and not isinstance(items, str) and items and isinstance(items[0], Mapping):
        return any(item.get("changed") for item in items if isinstance(item, Mapping))
    return False


def skipped(result: Any) -> bool:
    return bool(_result(result, "skipped").get("skipped"))


def finished(result: Any) -> bool:
    """Only async tasks say; every other task has finished (Ansible says so too, with a warning)."""
    return bool(_result(result, "finished").get("finished", True))


def started(result: Any) -> bool:
    return bool(_result(result, "started").get("started", True))


def timedout(result: Any) -> bool:
    result = _result(result, "timedout")
    period = result.get("timedout")
    return bool(period and isinstance(period, Mapping) and period.get("period"))


def regex(value: Any = "", pattern: str = "", ignorecase: bool = False, multiline: bool = False,
          match_type: str = "search") -> bool:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    compiled = re.compile(pattern, flags)
    method = {"match": compiled.match, "fullmatch": compiled.fullmatch}.get(match_type, compiled.search)
    return bool(method(str(value)))


def match(value: Any, pattern: str = "", ignorecase: bool = False, multiline: bool = False) -> bool:
    return regex(value, pattern, ignorecase, multiline, "match")


def search(value: Any, pattern: str = "", ignorecase: bool = False, multiline: bool = False) -> bool:
    return regex(value, pattern, ignorecase, multiline, "search")


def version(value: Any, other: Any, operator: str = "eq", strict: Any = None, version_type: str | None = None) -> bool:
    try:
        return compare(value, other, operator, strict, version_type)
    except VersionError as exc:
        raise TemplateRuntimeError(f"version test: {exc}") from None


_TRUE = frozenset(("y", "yes", "on", "1", "true", "t", 1, 1.0, True))
_FALSE = frozenset(("n", "no", "off", "0", "false", "f", 0, 0.0, False))


def boolean_or_itself(value: Any) -> Any:
    """Ansible's convert_bool: a boolean-looking value as a bool, anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, Hashable):
        return value
    word = value.strip().lower() if isinstance(value, str) else value
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return value


def truthy(value: Any, convert_bool: bool = False) -> bool:
    if convert_bool:
        value = boolean_or_itself(value)
    return bool(value)


def falsy(value: Any, convert_bool: bool = False) -> bool:
    return not truthy(value, convert_bool)


def subset(a: Any, b: Any) -> bool:
    return set(a) <= set(b)


def superset(a: Any, b: Any) -> bool:
    return set(a) >= set(b)


def contains(seq: Any, value: Any) -> bool:
    return value in seq


def nan(value: Any) -> bool:
    try:
        return math.isnan(value)
    except TypeError:
        return False


TESTS = {
    "failed": failed, "failure": failed, "succeeded": succeeded, "success": succeeded, "successful": succeeded,
    "reachable": reachable, "unreachable": unreachable, "timedout": timedout,
    "changed": changed, "change": changed, "skipped": skipped, "skip": skipped,
    "finished": finished, "started": started,
    "match": match, "search": search, "regex": regex,
    "version": version, "version_compare": version,
    "any": any, "all": all, "truthy": truthy, "falsy": falsy,
    "subset": subset, "issubset": subset, "superset": superset, "issuperset": superset, "contains": contains,
    "nan": nan, "isnan": nan,
    # the controller's file system, as in Ansible
    "directory": os.path.isdir, "is_dir": os.path.isdir, "file": os.path.isfile, "is_file": os.path.isfile,
    "link": os.path.islink, "is_link": os.path.islink, "exists": os.path.exists, "link_exists": os.path.lexists,
    "abs": os.path.isabs, "is_abs": os.path.isabs, "same_file": os.path.samefile, "is_same_file": os.path.samefile,
    "mount": os.path.ismount, "is_mount": os.path.ismount,
}

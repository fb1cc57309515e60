"""The Jinja filters and tests recipes reach for, named as Ansible names them.

This module gathers them for template.py: serialization lives here, the rest in filters_data (lists and
dicts), filters_text (regexes, hashes, sizes, dates), filters_paths, and the tests in jinja_tests."""
from __future__ import annotations

import base64
import json
from io import StringIO
from typing import Any

from ruamel.yaml import YAML

from engine.recipe import filters_data, filters_paths, filters_text, jinja_tests


def to_json(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, indent=indent, sort_keys=sort_keys, default=str)


def to_nice_json(value: Any, indent: int = 4) -> str:
    return json.dumps(value, indent=indent, sort_keys=True, default=str)


def from_json(text: str) -> Any:
    return json.loads(text)


def _dump_yaml(value: Any, flow: bool | None) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    stream = StringIO()
    yaml.dump(plain(value), stream)
    return stream.getvalue()


def plain(value: Any) -> Any:
    """YMap/YSeq and other subclasses as plain dicts and lists for dumping."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_yaml(value: Any) -> str:
    return _dump_yaml(value, None)


def to_nice_yaml(value: Any) -> str:
    return _dump_yaml(value, False)


def from_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def b64encode(value: str | bytes, encoding: str = "utf-8", urlsafe: bool = False) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode(encoding)
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode("ascii")


def b64decode(value: str, encoding: str = "utf-8", urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64decode if urlsafe else base64.b64decode)(str(value)).decode(encoding)


_TRUE_WORDS = frozenset({"yes", "on", "true", "1"})
_FALSE_WORDS = frozenset({"no", "off", "false", "0"})


def to_bool(value: Any) -> bool:
    """Ansible's bool filter: yes/on/true/1 and no/off/false/0 in any case; anything else is 1 or not."""
    word = str(value).lower() if isinstance(value, (str, int)) else value
    try:
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        return bool(word == 1)   # Ansible 2.19 still does this, with a deprecation warning
    except TypeError:
        return False


_LIST_MERGES = ("replace", "keep", "append", "prepend", "append_rp", "prepend_rp")


def combine(*terms: Any, recursive: bool = False, list_merge: str = "replace") -> dict:
    """Later dicts win; `[d1, d2] | combine` works too; lists merge as list_merge says (Ansible's merge_hash)."""
    if list_merge not in _LIST_MERGES:
        raise filters_data.FilterFailure(f"combine: list_merge must be one of {', '.join(_LIST_MERGES)}")
    dicts = filters_data.flatten(terms, levels=1, skip_nulls=False)
    result: dict = {}
    for item in dicts:
        if not isinstance(item, dict):
            raise filters_data.FilterFailure(f"combine: expected dicts, got {filters_data.type_debug(item)}")
        result = _merge(result, item, recursive, list_merge)
    return result


def _merge(low: dict, high: dict, recursive: bool, list_merge: str) -> dict:
    merged = dict(low)
    for key, new in high.items():
        old = merged.get(key)
        if key not in merged:
            merged[key] = new
        elif recursive and isinstance(old, dict) and isinstance(new, dict):
            merged[key] = _merge(old, new, recursive, list_merge)
        elif isinstance(old, list) and isinstance(new, list) and list_merge != "replace":
            merged[key] = _merge_lists(old, new, list_merge)
        else:
            merged[key] = new
    return merged


def _merge_lists(old: list, new: list, how: str) -> list:
    if how == "keep":
        return old
    if how == "append":
        return old + new
    if how == "prepend":
        return new + old
    rest = [item for item in old if item not in new]
    return rest + new if how == "append_rp" else new + rest


def from_yaml_all(text: Any) -> list:
    if text is None:
        return []
    return list(YAML(typ="safe", pure=True).load_all(text))


FILTERS = {
    **filters_data.FILTERS,
    **filters_text.FILTERS,
    **filters_paths.FILTERS,
    "to_json": to_json,
    "to_nice_json": to_nice_json,
    "from_json": from_json,
    "to_yaml": to_yaml,
    "to_nice_yaml": to_nice_yaml,
    "from_yaml": from_yaml,
    "from_yaml_all": from_yaml_all,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "bool": to_bool,
    "combine": combine,
}

TESTS = jinja_tests.TESTS

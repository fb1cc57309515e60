"""The Jinja filters and tests recipes reach for, named as Ansible names them."""
from __future__ import annotations

import base64
import hashlib
import json
import ntpath
import posixpath
import re
import shlex
from io import StringIO
from typing import Any

from ruamel.yaml import YAML


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


def b64encode(value: str | bytes, encoding: str = "utf-8") -> str:
    raw = value if isinstance(value, bytes) else str(value).encode(encoding)
    return base64.b64encode(raw).decode("ascii")


def b64decode(value: str, encoding: str = "utf-8") -> str:
    return base64.b64decode(str(value)).decode(encoding)


def regex_replace(value: Any, pattern: str, replacement: str = "", ignorecase: bool = False,
                  multiline: bool = False, count: int = 0) -> str:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    return re.sub(pattern, replacement, str(value), count=count, flags=flags)


def regex_search(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> str | None:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    found = re.search(pattern, str(value), flags)
    return found.group(0) if found else None


def quote(value: Any) -> str:
    return shlex.quote(str(value))


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on", "y"}


def hash_of(value: Any, algorithm: str = "sha1") -> str:
    return hashlib.new(algorithm, str(value).encode("utf-8")).hexdigest()


def combine(*dicts: dict, recursive: bool = False) -> dict:
    result: dict = {}
    for item in dicts:
        for key, value in item.items():
            if recursive and isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = combine(result[key], value, recursive=True)
            else:
                result[key] = value
    return result


def dict2items(value: dict, key_name: str = "key", value_name: str = "value") -> list[dict]:
    return [{key_name: k, value_name: v} for k, v in value.items()]


def items2dict(value: list[dict], key_name: str = "key", value_name: str = "value") -> dict:
    return {item[key_name]: item[value_name] for item in value}


FILTERS = {
    "to_json": to_json,
    "to_nice_json": to_nice_json,
    "from_json": from_json,
    "to_yaml": to_yaml,
    "to_nice_yaml": to_nice_yaml,
    "from_yaml": from_yaml,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "regex_replace": regex_replace,
    "regex_search": regex_search,
    "quote": quote,
    "bool": to_bool,
    "hash": hash_of,
    "basename": posixpath.basename,
    "dirname": posixpath.dirname,
    "win_basename": ntpath.basename,
    "combine": combine,
    "dict2items": dict2items,
    "items2dict": items2dict,
}


def _test_match(value: Any, pattern: str) -> bool:
    return re.match(pattern, str(value)) is not None


def _test_search(value: Any, pattern: str) -> bool:
    return re.search(pattern, str(value)) is not None


TESTS = {
    "match": _test_match,
    "search": _test_search,
}

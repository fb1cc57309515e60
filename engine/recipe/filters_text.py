"""Ansible's filters on text: regexes, hashes, password_hash, to_uuid, comment, sizes, dates.

Semantics follow ansible/plugins/filter/core.py and module_utils/common/text/formatters.py."""
from __future__ import annotations

import datetime
import hashlib
import re
import shlex
import time
import uuid
from typing import Any

from engine.recipe.filters_data import FilterFailure
from engine.recipe.limits import check_count
from engine.recipe.passwords import password_hash

UUID_NAMESPACE_ANSIBLE = uuid.UUID("361E6D51-FAEC-444A-9079-341386DA8E2E")


def _flags(ignorecase: Any, multiline: Any) -> int:
    return (re.I if ignorecase else 0) | (re.M if multiline else 0)


def regex_replace(value: Any = "", pattern: str = "", replacement: str = "", ignorecase: bool = False,
                  multiline: bool = False, count: int = 0, mandatory_count: int = 0) -> str:
    output, made = re.compile(pattern, _flags(ignorecase, multiline)).subn(replacement, str(value), count=count)
    if mandatory_count and mandatory_count != made:
        raise FilterFailure(f"regex_replace: '{pattern}' should match {mandatory_count} times, "
                            f"but matches {made} times in '{value}'")
    return output


def regex_findall(value: Any, regex: str, multiline: bool = False, ignorecase: bool = False) -> list:
    return re.findall(regex, str(value), _flags(ignorecase, multiline))


def regex_search(value: Any, regex: str, *args: str, ignorecase: bool = False, multiline: bool = False) -> Any:
    r"""The match, or with group arguments ('\\1', '\\g<name>') the list of those groups; None without a match."""
    groups: list[int | str] = []
    for arg in args:
        named = re.match(r"\\g<(\S+)>", str(arg))
        numbered = re.match(r"\\(\d+)", str(arg))
        if named:
            groups.append(named.group(1))
        elif numbered:
            groups.append(int(numbered.group(1)))
        else:
            raise FilterFailure(f"regex_search: unknown argument {arg!r} (use '\\\\1' or '\\\\g<name>')")
    found = re.search(regex, str(value), _flags(ignorecase, multiline))
    if not found:
        return None
    return [found.group(group) for group in groups] if groups else found.group()


def regex_escape(value: Any, re_type: str = "python") -> str:
    if re_type == "python":
        return re.escape(str(value))
    if re_type == "posix_basic":
        return re.sub(r"([].[^$*\\])", r"\\\1", str(value))
    raise FilterFailure(f"regex_escape: regex type ({re_type}) not yet implemented" if re_type == "posix_extended"
                        else f"regex_escape: invalid regex type ({re_type})")


def quote(value: Any) -> str:
    return shlex.quote("" if value is None else str(value))


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")


def hash_of(value: Any, hashtype: str = "sha1") -> str:
    try:
        digest = hashlib.new(hashtype)
    except (ValueError, TypeError) as exc:
        raise FilterFailure(f"hash: {exc}") from None
    digest.update(_bytes(value))
    return digest.hexdigest()


def md5(value: Any) -> str:
    return hashlib.md5(_bytes(value)).hexdigest()


def sha1(value: Any) -> str:
    return hashlib.sha1(_bytes(value)).hexdigest()


def to_uuid(value: Any, namespace: Any = UUID_NAMESPACE_ANSIBLE) -> str:
    try:
        space = namespace if isinstance(namespace, uuid.UUID) else uuid.UUID(namespace)
    except (AttributeError, ValueError, TypeError) as exc:
        raise FilterFailure(f"to_uuid: invalid value '{namespace}' for 'namespace': {exc}") from None
    return str(uuid.uuid5(space, str(value)))


_COMMENT_STYLES = {
    "plain": {"decoration": "# "}, "erlang": {"decoration": "% "}, "c": {"decoration": "// "},
    "cblock": {"beginning": "/*", "decoration": " * ", "end": " */"},
    "xml": {"beginning": "<!--", "decoration": " - ", "end": "-->"},
}


def comment(text: str, style: str = "plain", **options: Any) -> str:
    """The text as a comment block in a language's style, Ansible's way (prefix and postfix lines included)."""
    if style not in _COMMENT_STYLES:
        raise FilterFailure(f"comment: invalid style {style!r}; available styles: {', '.join(_COMMENT_STYLES)}")
    style_params = _COMMENT_STYLES[style]
    prepostfix = options.get("decoration", style_params["decoration"])
    p = {"newline": "\n", "beginning": "", "prefix": prepostfix.rstrip(), "prefix_count": 1, "decoration": "",
         "postfix": prepostfix.rstrip(), "postfix_count": 1, "end": "", **style_params, **options}
    check_count(int(p["prefix_count"]) + int(p["postfix_count"]), "the comment filter's prefix_count/postfix_count")
    nl, deco = p["newline"], p["decoration"]
    beginning = f"{p['beginning']}{nl}" if p["beginning"] else ""
    prefix = ""
    if p["prefix"]:
        prefix = (nl if p["prefix"] == nl else f"{p['prefix']}{nl}") * int(p["prefix_count"])
    body = f"{deco}{text.replace(nl, nl + deco)}".replace(f"{deco}{nl}", f"{deco.rstrip()}{nl}")
    postfix = nl.join([""] + [p["postfix"]] * int(p["postfix_count"]))
    end = f"{nl}{p['end']}" if p["end"] else ""
    return f"{beginning}{prefix}{body}{postfix}{end}"


_SIZES = {"Y": 1 << 80, "Z": 1 << 70, "E": 1 << 60, "P": 1 << 50, "T": 1 << 40, "G": 1 << 30, "M": 1 << 20,
          "K": 1 << 10, "B": 1}
_UNIT_NAMES = {"B": (("byte", "B"), ("bit", "b")), **{
    key: ((f"{word}byte", f"{key}B"), (f"{word}bit", f"{key}b"))
    for key, word in zip("KMGTPEZY", ("kilo", "mega", "giga", "tera", "peta", "exa", "zeta", "yotta"))}}


def human_readable(size: Any, isbits: bool = False, unit: str | None = None) -> str:
    base = "bits" if isbits else "Bytes"
    suffix, limit = "B", 1
    for suffix, limit in _SIZES.items():     # largest first
        if (unit is None and size >= limit) or (unit is not None and unit.upper() == suffix[0]):
            break
    suffix = suffix + base[0] if limit != 1 else base
    try:
        return "%.2f %s" % (size / limit, suffix)
    except TypeError:
        raise FilterFailure("human_readable() failed on bad input") from None


def human_to_bytes(size: Any, default_unit: str | None = None, isbits: bool = False) -> int:
    found = re.search(r"^([0-9]*\.?[0-9]+)(?:\s*([A-Za-z]+))?\s*$", str(size))
    if found is None:
        raise FilterFailure(f"human_to_bytes() can't interpret following string: {size}")
    number, unit = float(found.group(1)), found.group(2) or default_unit
    if unit is None:
        return int(round(number))
    key = unit[0].upper()
    if key not in _SIZES:
        raise FilterFailure(f"human_to_bytes() failed to convert {size} (unit = {unit}). "
                            f"The suffix must be one of {', '.join(_SIZES)}")
    if len(unit) > 1:
        long_name, short_name = _UNIT_NAMES[key][1 if isbits else 0]
        if unit.lower() != long_name and unit != short_name:
            kind = "b" if isbits else "B"
            expect = f"expect {kind} or {'bit' if isbits else 'byte'}" if key == "B" else f"expect {key}{kind} or {key}"
            raise FilterFailure(f"human_to_bytes() failed to convert {size}. Value is not a valid string ({expect})")
    return int(round(number * _SIZES[key]))


def to_datetime(value: str, format: str = "%Y-%m-%d %H:%M:%S") -> datetime.datetime:  # noqa: A002 (Ansible's name)
    return datetime.datetime.strptime(value, format)


def strftime(string_format: str, second: Any = None, utc: bool = False) -> str:
    if second is not None:
        try:
            second = float(second)
        except (TypeError, ValueError):
            raise FilterFailure(f"strftime: invalid value for epoch value ({second})") from None
    return time.strftime(string_format, (time.gmtime if utc else time.localtime)(second))


def split(value: Any, sep: str | None = None, maxsplit: int = -1) -> list[str]:
    return str(value).split(sep, maxsplit)


FILTERS = {
    "regex_replace": regex_replace, "regex_findall": regex_findall, "regex_search": regex_search,
    "regex_escape": regex_escape, "quote": quote, "hash": hash_of, "md5": md5, "sha1": sha1, "checksum": sha1,
    "password_hash": password_hash, "to_uuid": to_uuid, "comment": comment,
    "human_readable": human_readable, "human_to_bytes": human_to_bytes,
    "to_datetime": to_datetime, "strftime": strftime, "split": split,
}

"""Ansible's `key=value` argument strings: `apt: name=nginx state=present`, `command: ls chdir=/tmp`.

Split as Ansible's split_args does (whitespace separates words, except inside
quotes and inside `{{ }}`, `{% %}` and `{# #}`), then each `key=value` word is
an option and the rest is the free-form text.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from typing import Any

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")   # apt: update-cache=yes: a hyphen, as Ansible takes
_OPEN = {"{{": "}}", "{%": "%}", "{#": "#}"}


def word_spans(text: str) -> list[tuple[int, int]]:
    """Where the words of text start and end, as Ansible's split_args cuts them."""
    spans: list[tuple[int, int]] = []
    begin = None
    quote = ""
    closers: list[str] = []
    i = 0
    while i < len(text):
        char, pair = text[i], text[i:i + 2]
        if begin is None and not char.isspace():
            begin = i
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif pair in _OPEN:
            closers.append(_OPEN[pair])
            i += 1
        elif closers and pair == closers[-1]:
            closers.pop()
            i += 1
        elif char in "\"'" and not closers:
            quote = char
        elif char.isspace() and not closers and begin is not None:
            spans.append((begin, i))
            begin = None
        i += 1
    if begin is not None:
        spans.append((begin, len(text)))
    return spans


def split_args(text: str) -> list[str]:
    """Words of text, with quotes kept, as Ansible's split_args gives them."""
    return [text[a:b] for a, b in word_spans(text)]


_HEX = "[a-fA-F0-9]"
_ESCAPE = re.compile(rf"""(\\U{_HEX * 8}|\\u{_HEX * 4}|\\x{_HEX * 2}|\\N\{{[^}}]+\}}|\\[\\'"abfnrtv])""")


def decode_escapes(text: str) -> str:
    """`line=a\tb` holds a tab, as Ansible's parse_kv decodes escapes in option words."""
    return _ESCAPE.sub(lambda match: codecs.decode(match.group(0), "unicode-escape"), text)


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


@dataclass
class KeyValues:
    options: dict[str, Any] = field(default_factory=dict)
    free_form: str = ""


def parse_kv(text: str, only: frozenset[str] | None = None) -> KeyValues:
    """The options and the free-form rest of an argument string.

    only: the option names taken out of a free-form command (`chdir=`, `creates=`); other `k=v` words stay
    part of the command, as `echo a=b` must. None: every `k=v` word is an option."""
    parsed = KeyValues()
    free, kept_from = [], 0
    for begin, end in word_spans(text):
        key, sep, value = decode_escapes(text[begin:end]).partition("=")
        templated = only is None and key.startswith("{{") and key.endswith("}}")   # set_fact: "{{ k }}={{ v }}"
        if sep and (templated or _KEY.match(key)) and (only is None or key in only):
            parsed.options[key] = unquote(value.strip())
            free.append(text[kept_from:begin])
            kept_from = end
            while kept_from < len(text) and text[kept_from].isspace():   # and the space after it
                kept_from += 1
    free.append(text[kept_from:])
    # the rest of the text as written: a script keeps its lines and its spacing, as Ansible keeps them
    parsed.free_form = "".join(free).strip()
    return parsed


__all__ = ["KeyValues", "parse_kv", "split_args", "unquote"]

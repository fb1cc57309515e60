"""Ansible's `key=value` argument strings: `apt: name=nginx state=present`, `command: ls chdir=/tmp`.

Split as Ansible's split_args does (whitespace separates words, except inside
quotes and inside `{{ }}`, `{% %}` and `{# #}`), then each `key=value` word is
an option and the rest is the free-form text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPEN = {"{{": "}}", "{%": "%}", "{#": "#}"}


def split_args(text: str) -> list[str]:
    """Words of text, with quotes kept, as Ansible's split_args gives them."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    closers: list[str] = []
    i = 0
    while i < len(text):
        char, pair = text[i], text[i:i + 2]
        if quote:
            current.append(char)
            if char == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif char == quote:
                quote = ""
        elif pair in _OPEN:
            closers.append(_OPEN[pair])
            current.append(pair)
            i += 1
        elif closers and pair == closers[-1]:
            closers.pop()
            current.append(pair)
            i += 1
        elif char in "\"'" and not closers:
            quote = char
            current.append(char)
        elif char.isspace() and not closers:
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
        i += 1
    if current:
        words.append("".join(current))
    return words


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
    rest = []
    for word in split_args(text):
        key, sep, value = word.partition("=")
        templated = only is None and key.startswith("{{") and key.endswith("}}")   # set_fact: "{{ k }}={{ v }}"
        if sep and (templated or _KEY.match(key)) and (only is None or key in only):
            parsed.options[key] = unquote(value)
        else:
            rest.append(word)
    parsed.free_form = " ".join(rest)
    return parsed


__all__ = ["KeyValues", "parse_kv", "split_args", "unquote"]

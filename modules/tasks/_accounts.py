"""What user and group share: account names, reading /etc/passwd and /etc/group entries, finding the tools.

The tools are shadow's (useradd, groupadd, ...) where they exist, else BusyBox's (adduser, addgroup, ...),
as on Alpine; a probe lists which are there and the modules choose.
"""
from __future__ import annotations

import re
import shlex
from typing import Any

import voluptuous as vol

ACCOUNT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")


def account_name(value: Any) -> str:
    if not isinstance(value, str) or not ACCOUNT.match(value):
        raise vol.Invalid(f"{value!r} is not a user or group name (letters, digits, _ . -; at most 32)")
    return value


def entry_sh(database: str, name: str, tag: str, then: str = "") -> str:
    """Print `<tag> <entry>` for name in passwd or group, by getent or, without it, from the file.

    then: more shell lines, run only when the entry exists.
    """
    n = shlex.quote(name)
    return (f"if e=$(getent {database} {n} 2>/dev/null || awk -F: -v n={n} '$1 == n' /etc/{database}) "
            f"&& [ -n \"$e\" ]; then printf '{tag} %s\\n' \"$e\"\n{then}fi\n")


def tools_sh(*tools: str) -> str:
    return f"for t in {' '.join(tools)}; do command -v $t >/dev/null 2>&1 && echo \"tool $t\"; done\n"


def fields(entry: str | None, count: int) -> list[str] | None:
    """An /etc/passwd or /etc/group line as its fields, or None."""
    if not entry:
        return None
    parts = entry.split(":")
    return parts + [""] * (count - len(parts)) if len(parts) < count else parts[:count]

"""Version comparison as Ansible's `version` test does it: loose (the default), strict, semver and pep440.

The loose, strict and semantic orders follow distutils' LooseVersion/StrictVersion and Ansible's
SemanticVersion (ansible/module_utils/compat/version.py, ansible/utils/version.py), whose results users
rely on: `'1.10' is version('1.9', '>')` is true, `'1.0a' is version('1.0', '>')` too."""
from __future__ import annotations

import operator
import re
from typing import Any, Callable

try:  # pep440 needs packaging, as in Ansible; it is not one of recipe's own dependencies
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - packaging is nearly always there (pip brings it)
    Version = None


class VersionError(ValueError):
    """A version could not be parsed or compared; the message says which and why."""


_LOOSE_PART = re.compile(r"(\d+|[a-z]+|\.)", re.VERBOSE)
_STRICT = re.compile(r"^(\d+)\.(\d+)(\.(\d+))?([ab](\d+))?$", re.ASCII)
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$")

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    **dict.fromkeys(("==", "=", "eq"), operator.eq), **dict.fromkeys(("<", "lt"), operator.lt),
    **dict.fromkeys(("<=", "le"), operator.le), **dict.fromkeys((">", "gt"), operator.gt),
    **dict.fromkeys((">=", "ge"), operator.ge), **dict.fromkeys(("!=", "<>", "ne"), operator.ne),
}


def loose_key(text: str) -> list:
    """Numbers compare as numbers, letters as text; a number against letters is an error, as in Python 3."""
    return [int(part) if part.isdigit() else part for part in _LOOSE_PART.split(text) if part and part != "."]


def strict_key(text: str) -> tuple:
    found = _STRICT.match(text)
    if not found:
        raise VersionError(f"invalid version number '{text}'")
    major, minor, patch, letter, number = found.group(1, 2, 4, 5, 6)
    release = (int(major), int(minor), int(patch or 0))
    # a pre-release sorts before its release: ('a', 1) < ('b', 1) < ('~',) since '~' > any letter
    return release, (letter[0], int(number)) if letter else ("~",)


class _Prerelease:
    """One dot-separated pre-release identifier: numbers sort before words, as semver says."""

    def __init__(self, part: str):
        self.key = (0, int(part), "") if part.isdigit() else (1, 0, part)

    def __lt__(self, other: "_Prerelease") -> bool:
        return self.key < other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Prerelease) and self.key == other.key


def semver_key(text: str) -> tuple:
    found = _SEMVER.match(text)
    if not found:
        raise VersionError(f"invalid semantic version '{text}'")
    core = tuple(int(found.group(i)) for i in (1, 2, 3))
    prerelease = found.group(4)
    if not prerelease:
        return core, 1, ()
    return core, 0, tuple(_Prerelease(part) for part in prerelease.split("."))


def pep440_key(text: str) -> Any:
    if Version is None:
        raise VersionError("The pep440 version_type requires the Python 'packaging' library")
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise VersionError(str(exc)) from None


KEYS: dict[str, Callable[[str], Any]] = {
    "loose": loose_key, "strict": strict_key, "semver": semver_key, "semantic": semver_key, "pep440": pep440_key,
}


def compare(value: Any, version: Any, operator_name: str = "eq", strict: Any = None,
            version_type: str | None = None) -> bool:
    if strict is not None and version_type is not None:
        raise VersionError("Cannot specify both 'strict' and 'version_type'")
    if not value:
        raise VersionError("Input version value cannot be empty")
    if not version:
        raise VersionError("Version parameter to compare against cannot be empty")
    kind = "strict" if strict else (version_type or "loose")
    if kind not in KEYS:
        raise VersionError(f"Invalid version type ({kind}). Must be one of {', '.join(map(repr, KEYS))}")
    if operator_name not in OPERATORS:
        raise VersionError(f"Invalid operator type ({operator_name}). Must be one of {', '.join(map(repr, OPERATORS))}")
    key = KEYS[kind]
    try:
        return OPERATORS[operator_name](key(str(value)), key(str(version)))
    except (TypeError, VersionError) as exc:
        raise VersionError(f"Version comparison failed: {exc}") from None

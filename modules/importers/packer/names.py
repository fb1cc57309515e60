"""Recipe names for Packer's variables, locals and sources.

Packer allows hyphens in names and keeps variables (var.x) and locals
(local.x) apart; recipe has one namespace of identifiers, with a few names
reserved. Every name is made once, here, so that a reference and the
definition it points at always agree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from engine.recipe.recipe_schema import RESERVED_NAMES

SOURCE_NAME = re.compile(r"[^a-z0-9_-]+")


def identifier(name: str) -> str:
    """A recipe variable name for a Packer one: ami-name -> ami_name; a reserved name gets a packer_ prefix."""
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit():
        text = f"v_{text}"
    return f"packer_{text}" if text in RESERVED_NAMES else text


@dataclass(frozen=True)
class RecipeNames:
    """The recipe name of each variable and local, distinct from one another."""

    variables: dict[str, str]
    locals: dict[str, str]

    @classmethod
    def of(cls, variables: Iterable[str], locals_: Iterable[str]) -> "RecipeNames":
        taken: set[str] = set()
        names = {}
        for name in variables:
            names[name] = _unique(identifier(name), taken)
        local_names = {}
        for name in locals_:
            local_names[name] = _unique(identifier(name), taken, prefix="local_")
        return cls(variables=names, locals=local_names)


def _unique(name: str, taken: set[str], prefix: str = "var_") -> str:
    """name, or prefix+name when another variable already has it (a var and a local of the same name)."""
    candidate = name if name not in taken else f"{prefix}{name}"
    number = 2
    while candidate in taken:
        candidate = f"{prefix}{name}_{number}"
        number += 1
    taken.add(candidate)
    return candidate


def source_name(name: str, taken: set[str]) -> str:
    """A recipe source name ([a-z0-9][a-z0-9_-]*) for a Packer source, distinct from those in taken."""
    text = SOURCE_NAME.sub("-", name.lower()).strip("-_") or "source"
    if not text[0].isalnum():
        text = f"s{text}"
    candidate, number = text, 2
    while candidate in taken:
        candidate = f"{text}-{number}"
        number += 1
    taken.add(candidate)
    return candidate


def recipe_name(text: str) -> str:
    """A recipe's name ([a-z0-9][a-z0-9-]*) from a template's file or build name."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name if name and name[0].isalnum() else f"imported-{name}".rstrip("-")

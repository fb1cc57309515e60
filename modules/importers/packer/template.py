"""A Packer template as read, in either syntax: typed and frozen, every value translated and located.

The readers (hcl_reader for HCL2 and its JSON syntax, legacy_reader for the
JSON templates of Packer < 1.5) fill these; the mappers (builders,
provisioners, post_processors, variables) read only these.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from engine.errors import Position
from modules.importers.packer.expressions import Expr, Lit, data, env_reads


@dataclass(frozen=True)
class Value:
    """A value of the template in recipe's terms: plain data whose strings are Jinja ("{{ name }}")."""

    data: Any
    source: str                      # as written in the template, for the comment when it is not imported
    position: Position
    problem: str = ""                # why it could not be translated (then data is meaningless)
    env: tuple[str, ...] = ()        # environment variables it reads (Packer's env())
    literal: bool = True             # no template left in it: recipe uses it as written

    @classmethod
    def of(cls, expr: Expr, source: str, position: Position) -> "Value":
        translated = data(expr)
        return cls(translated, source, position, env=env_reads(translated), literal=isinstance(expr, Lit))

    @classmethod
    def untranslated(cls, source: str, position: Position, why: str) -> "Value":
        return cls(None, source, position, problem=why, literal=False)

    @property
    def translated(self) -> bool:
        return not self.problem

    @property
    def is_literal(self) -> bool:
        return self.translated and self.literal


@dataclass(frozen=True)
class Settings:
    """The options of a builder, provisioner or post-processor, in the template's order."""

    items: tuple[tuple[str, Value], ...] = ()

    def get(self, name: str) -> Value | None:
        return next((value for key, value in self.items if key == name), None)

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.items)

    def __iter__(self) -> Iterator[tuple[str, Value]]:
        return iter(self.items)

    def without(self, *names: str) -> "Settings":
        return Settings(tuple((key, value) for key, value in self.items if key not in names))

    def merged(self, other: "Settings") -> "Settings":
        """These settings with other's on top (a build's `source` block over the source it names)."""
        overridden = {key for key, _ in other.items}
        return Settings(tuple(item for item in self.items if item[0] not in overridden) + other.items)


@dataclass(frozen=True)
class Plugin:
    """A builder (a source), a provisioner or a post-processor."""

    type: str                        # qemu, shell, vagrant, ...
    name: str                        # a source's name (its type when the template gives none)
    settings: Settings
    position: Position

    @property
    def label(self) -> str:
        return f"{self.type}.{self.name}"


@dataclass(frozen=True)
class Variable:
    """A `variable` (input) or a `local` of the template."""

    name: str                        # the recipe's name for it (see names.RecipeNames)
    template_name: str               # var.<template_name> / local.<template_name>
    default: Value | None            # None: a required variable
    position: Position
    sensitive: bool = False
    is_local: bool = False
    description: str = ""


@dataclass(frozen=True)
class Assignment:
    """A value given to a variable from outside its block: a variable file or -var."""

    name: str                        # the recipe's name of the variable
    value: Value
    origin: str                      # "prod.auto.pkrvars.hcl:3", "-var"


@dataclass(frozen=True)
class Build:
    name: str
    sources: tuple[Plugin, ...]      # the sources it builds, with the build's own settings applied
    provisioners: tuple[Plugin, ...]
    chains: tuple[tuple[Plugin, ...], ...]    # post-processor sequences, each run on the build's artifact
    position: Position


@dataclass(frozen=True)
class Ignored:
    """A part of the template nothing in recipe corresponds to (a data source, an HCP registry block)."""

    what: str
    why: str
    source: str
    position: Position


@dataclass(frozen=True)
class Template:
    path: Path                       # the file or folder read
    variables: tuple[Variable, ...]
    builds: tuple[Build, ...]
    assignments: tuple[Assignment, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    description: str = ""            # the template's own ("description" of a JSON one, a build's in HCL2)

    @property
    def stem(self) -> str:
        """The template's own name: web for web.pkr.hcl, web.json or a folder web/."""
        name = self.path.resolve().name
        for suffix in (".pkr.hcl", ".pkr.json", ".json", ".hcl"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name

"""The contract of an importer: another tool's build template in, a recipe out (`recipe import`).

An importer lives in modules/importers/<name>/ and registers itself by
subclassing Importer with name=... . It never writes files: it returns the
recipe's text and what it could not carry over (each kept as a comment in that
text, and listed by the CLI with its position in the template). A template it
cannot read is a RecipeError whose problems point into the template.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from engine.errors import Position
from engine.registry import IMPORTERS


@dataclass(frozen=True)
class ImportOptions:
    destination: Path                  # the recipe file to be written: paths in it are made relative to its folder
    workdir: Path                      # where relative paths of the template are taken from (the other tool's cwd)
    assignments: tuple[str, ...] = ()  # name=value, as the other tool's command line takes them
    var_files: tuple[Path, ...] = ()   # variable files, in the other tool's format


@dataclass(frozen=True)
class Leftover:
    """A setting of the template the recipe does not do: kept as a comment in the recipe."""

    position: Position
    what: str           # the setting, as the template names it (boot_command)
    why: str            # what recipe does instead, or why nothing can

    def __str__(self) -> str:
        return f"{self.position}: {self.what}: {self.why}"


@dataclass(frozen=True)
class Imported:
    text: str                          # the recipe, YAML with comments
    leftovers: tuple[Leftover, ...]    # what the comments in text keep; empty when everything was mapped
    secrets: tuple[str, ...] = ()      # secrets whose values were left out of text on purpose (--var gives them)


class Importer:
    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            IMPORTERS.add(name, cls)

    @classmethod
    def recognizes(cls, path: Path) -> bool:   # pragma: no cover - interface
        """Whether path (a file or a folder) looks like this tool's template, to pick an importer unasked."""
        raise NotImplementedError

    def convert(self, path: Path, options: ImportOptions) -> Imported:   # pragma: no cover - interface
        raise NotImplementedError

"""The recipe being made: its parts, each with the comments written above it.

A comment is either a note (how an option was carried over, or why it needs
nothing) or a leftover: a setting of the template the recipe does not do,
which the CLI also lists and which makes `recipe import` exit 3.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Any

from engine.errors import Position
from engine.recipe.importer import Leftover


WIDTH = 110      # a comment line's text, within the 120 columns a recipe is read in
# a setting whose value may be a credential: its text is not copied into the recipe's comments
CREDENTIAL = re.compile(r'^(\s*"?[\w-]*(?:password|secret|token|access_key|credential)[\w-]*"?\s*[=:]).*$',
                        re.IGNORECASE)
HIDDEN = r"\1 (not shown)"


@dataclass(frozen=True)
class Comment:
    text: str
    leftover: Leftover | None = None
    source: str = ""                 # the template's text of a leftover setting, kept under it

    @classmethod
    def note(cls, text: str) -> "Comment":
        return cls(f"note: {text}")

    @classmethod
    def not_imported(cls, position: Position, what: str, why: str, source: str = "") -> "Comment":
        leftover = Leftover(position, what, why)
        return cls(f"not imported ({position}): {what}: {why}", leftover=leftover, source=source)

    def lines(self) -> list[str]:
        """The comment's lines: its text wrapped (continued lines indented), then the template's text as is."""
        source = ["  " + CREDENTIAL.sub(HIDDEN, line) for line in self.source.splitlines()]
        return [*textwrap.wrap(self.text, WIDTH, subsequent_indent="  ", break_on_hyphens=False), *source]


@dataclass(frozen=True)
class Part:
    """A key of a mapping (key set) or an item of a list, with its value and the comments above it."""

    value: Any
    key: str | None = None
    comments: tuple[Comment, ...] = ()


@dataclass(frozen=True)
class RecipeDraft:
    name: str
    description: str
    header: tuple[Comment, ...]      # on top of the file: where it came from, what of the whole template is left
    variables: tuple[Part, ...]
    variable_comments: tuple[Comment, ...]   # above vars: how to set them, what of them could not be kept
    secrets: tuple[Part, ...]        # items: the names, each with why its value is not in the file
    sources: tuple[Part, ...]
    tasks: tuple[Part, ...]
    exports: tuple[Part, ...]

    def leftovers(self) -> tuple[Leftover, ...]:
        parts = (*self.variables, *self.secrets, *self.sources, *self.tasks, *self.exports)
        comments = [*self.header, *self.variable_comments, *(c for p in parts for c in p.comments)]
        return tuple(c.leftover for c in comments if c.leftover is not None)

"""Errors users see: a position in a file, a message, and a hint.

Two families matter to the exit code: RecipeError (the recipe is invalid, exit 2)
and BuildError (a build failed while running, exit 1). Neither prints a
traceback unless --debug is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def printable(text: str) -> str:
    """text with line breaks and other control characters escaped, so that a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@dataclass(frozen=True)
class Position:
    """Where a YAML node starts; line and column count from 1, as editors do."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"

    @staticmethod
    def of_file(path: Path | str) -> "Position":
        return Position(str(path))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe."""

    position: Position | None
    message: str
    path: str = ""
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.position}: " if self.position else ""
        what = f"{self.path}: " if self.path else ""
        text = f"{where}{what}{self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return printable(text)    # one problem, one line: whatever the recipe put into a name or a value


class RecipeError(Exception):
    """The recipe cannot be built as written. Carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, position: Position | None, message: str, hint: str = "", path: str = "") -> "RecipeError":
        return cls(Problem(position, message, path=path, hint=hint))


class UsageError(Exception):
    """A command line option or an environment setting is not one recipe can take (exit code 2, as argparse's)."""

    exit_code = 2

    def __init__(self, message: str, hint: str = ""):
        self.message, self.hint = message, hint
        super().__init__(f"{message} (hint: {hint})" if hint else message)


class BuildError(Exception):
    """A build failed while running: a task failed, a host did not answer."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "", position: Position | None = None):
        self.message = message
        self.hint = hint
        self.position = position
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.position}: " if self.position else ""
        text = f"{where}{self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

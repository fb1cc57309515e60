"""Which files make a template, as Packer reads them, and where the template's paths lead from the recipe.

A folder is every *.pkr.hcl and *.pkr.json in it, with its *.auto.pkrvars.hcl
and *.auto.pkrvars.json variable files (alphabetical, as Packer loads them); a
file is itself alone. Packer takes relative paths in a template from the
directory it runs in, so the recipe's paths are the same files named from the
recipe's folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import Position, Problem, RecipeError

TEMPLATE_SUFFIXES = (".pkr.hcl", ".pkr.json")
AUTO_VAR_SUFFIXES = (".auto.pkrvars.hcl", ".auto.pkrvars.json")


@dataclass(frozen=True)
class TemplateFiles:
    path: Path                       # as given
    folder: Path                     # absolute: Packer's path.root and {{template_dir}}
    templates: tuple[Path, ...]      # as given (path / name for a folder): how positions name them
    auto_var_files: tuple[Path, ...]
    legacy: bool                     # a JSON template of Packer's first format

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()


def discover(path: Path, legacy: bool) -> TemplateFiles:
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir() if p.is_file())
        templates = tuple(path / n for n in names if n.endswith(TEMPLATE_SUFFIXES))
        if not templates:
            raise RecipeError(Problem(Position.of_file(path), "no Packer template (*.pkr.hcl, *.pkr.json) in this "
                                      "folder", hint="name a template file, or the folder Packer builds"))
        auto = tuple(path / n for n in names if n.endswith(AUTO_VAR_SUFFIXES))
        return TemplateFiles(path, path.resolve(), templates, auto, legacy=False)
    if not path.is_file():
        raise RecipeError(Problem(Position.of_file(path), "no such file or folder",
                                  hint="name a Packer template (*.pkr.hcl, *.json) or a folder of them"))
    return TemplateFiles(path, path.resolve().parent, (path,), (), legacy=legacy)


def read_text(path: Path, shown: str) -> str:
    """A template or variable file's text (a UTF-8 byte order mark, as some editors write, is no character)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecipeError(Problem(Position(shown), f"not UTF-8 text (byte {exc.start})",
                                  hint="Packer reads templates as UTF-8: convert the file")) from None
    except OSError as exc:
        raise RecipeError(Problem(Position(shown), f"cannot be read: {exc.strerror}",
                                  hint="check the path and its permissions")) from None


@dataclass(frozen=True)
class PathMapper:
    """A path of the template, named so that it leads to the same file from the recipe's folder."""

    workdir: Path                    # absolute: where Packer would have run
    template_dir: Path               # absolute
    recipe_dir: Path                 # absolute

    def local(self, text: str) -> str:
        """A file or folder on the build host. A path with a template in it is left as it is."""
        if "{{" in text or not text or text.startswith("~"):
            return text
        path = Path(text)
        if path.is_absolute():
            inside = any(path.is_relative_to(d) for d in (self.template_dir, self.workdir))
            return self._relative(path, text) if inside else text
        # run from elsewhere than Packer was, the file may be beside the template only
        return self._relative(self.absolute(text), text)

    def absolute(self, text: str) -> Path:
        """A relative path of the template as Packer finds it: from its working directory, else beside the
        template."""
        found = self.workdir / text
        return found if found.exists() or not (self.template_dir / text).exists() else self.template_dir / text

    def _relative(self, path: Path, original: str) -> str:
        relative = os.path.relpath(path, self.recipe_dir)
        # a trailing slash means "the folder's contents" to Packer's file provisioner, as to recipe's copy
        return relative + "/" if original.endswith("/") and not relative.endswith("/") else relative

    def shown(self, path: Path) -> str:
        """A template's own file, named from the recipe's folder (for comments)."""
        return os.path.relpath(path.resolve(), self.recipe_dir)

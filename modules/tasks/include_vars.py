"""include_vars: read variables from YAML/JSON files on the controller, as Ansible's include_vars does.

The files are found like Ansible finds them (a role's vars/, the role, the
recipe's vars/, the recipe's folder) and read as YAML 1.1, as Ansible reads
them; the variables apply to the tasks that follow (Result.new_vars).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.errors import BuildError
from engine.recipe.kv import parse_kv
from engine.recipe.schema import boolean, identifier, integer, key_names
from engine.recipe.template import TemplateFailure
from modules.tasks._remote import maybe, pattern, text
from modules.tasks._yaml11 import VarsFileError, load_vars_file

DIR_OPTIONS = ("dir", "depth", "files_matching", "ignore_files", "extensions", "ignore_unknown_extensions")
EXTENSIONS = ["yaml", "yml", "json"]


def words_or_list(value: Any) -> list[str]:
    """ignore_files: a list of patterns, or one string of them separated by spaces (Ansible splits it)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [pattern(item) for item in value]
    raise vol.Invalid(f"expected a list of regular expressions, got {type(value).__name__}")


def extensions(value: Any) -> list[str]:
    if isinstance(value, list):
        return [text(item) for item in value]
    raise vol.Invalid(f"expected a list of file extensions (without the dot), got {value!r}")


def merged(old: Any, new: Any) -> Any:
    """Ansible's hash_behaviour=merge: mappings combined recursively, anything else replaced."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{key: merged(old.get(key), value) for key, value in new.items()}}
    return new


class LoadFailure(Exception):
    """A file that cannot be included; carries what was loaded before it."""

    def __init__(self, message: str, loaded: dict[str, Any], files: list[str]):
        super().__init__(message)
        self.loaded, self.files = loaded, files


class IncludeVars(TaskModule, name="include_vars"):
    description = "Load variables from a YAML or JSON file (or a folder of them) for the tasks that follow"
    free_form = "file"
    local_files = {"file": "vars"}
    schema = {
        vol.Optional("file", default=None): maybe(text),
        vol.Optional("dir", default=None): maybe(text),
        vol.Optional("name", default=None): maybe(identifier),
        vol.Optional("depth", default=0): integer,
        vol.Optional("files_matching", default=None): maybe(pattern),
        vol.Optional("ignore_files", default=[]): words_or_list,
        vol.Optional("extensions", default=EXTENSIONS): extensions,
        vol.Optional("ignore_unknown_extensions", default=False): boolean,
        vol.Optional("hash_behaviour", default=None): maybe(vol.In(["replace", "merge"])),
    }

    @dataclass(frozen=True)
    class Params:
        file: str | None = None
        dir: str | None = None
        name: str | None = None
        depth: int = 0
        files_matching: str | None = None
        ignore_files: list[str] = field(default_factory=list)
        extensions: list[str] = field(default_factory=lambda: list(EXTENSIONS))
        ignore_unknown_extensions: bool = False
        hash_behaviour: str | None = None

        def __post_init__(self) -> None:
            if self.file is None and self.dir is None:
                raise vol.Invalid("give file (or the file name as the task's value) or dir", path=["file"])

    @classmethod
    def params(cls, rendered_args: Any) -> Any:
        args = cls.normalize(rendered_args)
        if isinstance(args, dict) and args.get("file") is not None and any(key in args for key in DIR_OPTIONS):
            raise vol.Invalid("file and the dir options (dir, depth, files_matching, ignore_files, extensions...) "
                              "are incompatible: give one file, or a dir", path=["file"])
        return super().params(rendered_args)

    @classmethod
    def _from_string(cls, args: str) -> Any:
        """`include_vars: file=x.yml name=web`, or the file name alone: `include_vars: "{{ os }}.yml"`."""
        parsed = parse_kv(args, only=frozenset(key_names(cls.schema)))
        return {**parsed.options, **({"file": parsed.free_form} if parsed.free_form else {})}

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        try:
            loaded, files = self._from_dir(params, ctx) if params.dir is not None else self._from_file(params, ctx)
        except LoadFailure as failure:
            found = {params.name: failure.loaded} if params.name else failure.loaded
            return Result(failed=True, msg=str(failure), data={
                "message": str(failure), "ansible_facts": found, "ansible_included_var_files": failure.files})
        variables = {params.name: loaded} if params.name else loaded
        if params.hash_behaviour == "merge":
            variables = {key: merged(self._current(ctx, key), value) for key, value in variables.items()}
        return Result(msg=f"{len(variables)} variable(s) from {len(files)} file(s)", new_vars=variables,
                      data={"ansible_facts": variables, "ansible_included_var_files": files})

    @staticmethod
    def _current(ctx: TaskContext, name: str) -> Any:
        try:
            return ctx.evaluate(name)
        except TemplateFailure:     # not defined yet: nothing to merge with
            return None

    @staticmethod
    def _from_file(params: Params, ctx: TaskContext) -> tuple[dict[str, Any], list[str]]:
        name = params.file.rstrip("\n")
        try:
            path = ctx.find_file(name, "vars")
        except BuildError as exc:
            raise LoadFailure(f"Could not find or access {name!r} ({exc.hint or exc})", {}, []) from None
        data = _load(path)
        return data, [str(path)]

    def _from_dir(self, params: Params, ctx: TaskContext) -> tuple[dict[str, Any], list[str]]:
        root = self._directory(params.dir, ctx)
        loaded: dict[str, Any] = {}
        files: list[str] = []
        for directory, names in _walk_sorted(root, params.depth):
            for name in names:
                path = directory / name
                if not _wanted(name, params) or not path.exists():
                    continue
                if Path(name).suffix[1:] not in params.extensions:
                    raise LoadFailure(f"{path} does not have a valid extension: {', '.join(params.extensions)}",
                                      loaded, files)
                try:
                    loaded.update(_load(path))
                except LoadFailure as failure:
                    raise LoadFailure(str(failure), loaded, files) from None
                files.append(str(path))
        return loaded, files

    @staticmethod
    def _directory(name: str, ctx: TaskContext) -> Path:
        candidate = Path(name)
        if not candidate.is_absolute():
            try:   # the lookup finds directories for "vars" (engine: find_file; see the module's report)
                candidate = ctx.find_file(name, "vars")
            except BuildError:
                raise LoadFailure(f"{name} directory does not exist", {}, []) from None
        if not candidate.exists():
            raise LoadFailure(f"{name} directory does not exist", {}, [])
        if not candidate.is_dir():
            raise LoadFailure(f"{name} is not a directory", {}, [])
        return candidate


def _load(path: Path) -> dict[str, Any]:
    try:
        data = load_vars_file(path)
    except VarsFileError as exc:
        raise LoadFailure(str(exc), {}, []) from None
    if data is None:      # an empty file is no variables, as in Ansible
        return {}
    if not isinstance(data, dict):
        raise LoadFailure(f"{path} must be stored as a dictionary/hash", {}, [])
    return data


def _wanted(name: str, params: IncludeVars.Params) -> bool:
    """Ansible's filters: files_matching (search), ignore_files (matching the name's end), extensions."""
    if params.files_matching is not None and not re.search(params.files_matching, name):
        return False
    if any(re.search(f"{ignored}$", name) for ignored in params.ignore_files):
        return False
    return not params.ignore_unknown_extensions or Path(name).suffix[1:] in params.extensions


def _walk_sorted(root: Path, depth: int) -> list[tuple[Path, list[str]]]:
    """Every folder under root (links followed), sorted by path, with its sorted file names; depth 0 is all."""
    found = []
    for directory, _, names in sorted(os.walk(root, followlinks=True), key=lambda entry: entry[0]):
        level = len(Path(directory).relative_to(root).parts) + 1
        if depth == 0 or level <= depth:
            found.append((Path(directory), sorted(names)))
    return found

"""replace: replace every match of a regular expression in a file, as Ansible's replace module does.

The file is read once, edited here with Python's re (MULTILINE, as Ansible),
and written back only when the text changed; before/after limit the edit to
a section of the file.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._attrs import Attrs
from modules.tasks._content import EditOptions, edit_text, validate_problem
from modules.tasks._remote import ATTRIBUTES, FileAttributes, maybe, pattern, text


def encoding(value: object) -> str:
    value = text(value)
    try:
        codecs.lookup(value)
    except LookupError:
        raise vol.Invalid(f"unknown encoding {value!r}") from None
    return value


def section_pattern(after: str | None, before: str | None) -> str:
    """Ansible's section: what lies between the first after match and the next before match (DOTALL)."""
    if after and before:
        return f"{after}(?P<subsection>.*?){before}"
    if after:
        return f"{after}(?P<subsection>.*)"
    return f"(?P<subsection>.*){before}" if before else ""


def substitute(contents: str, p: "Replace.Params") -> tuple[str, int, str]:
    """(new contents, replacements made, message); contents unchanged means nothing to do."""
    section, start, end = contents, 0, len(contents)
    around = section_pattern(p.after, p.before)
    if around:
        match = re.search(around, contents, re.DOTALL)
        if not match:
            return contents, 0, f"Pattern for before/after params did not match the given file: {around}"
        section, start, end = match.group("subsection"), match.start("subsection"), match.end("subsection")
    replaced, count = re.subn(re.compile(p.regexp, re.MULTILINE), p.replace, section)
    if count == 0 or replaced == section:
        return contents, 0, ""
    return contents[:start] + replaced + contents[end:], count, f"{count} replacements made"


class Replace(TaskModule, name="replace"):
    description = "Replace every match of a regular expression in a file"
    aliases = {"dest": "path", "destfile": "path", "name": "path", "attr": "attributes"}
    schema = {
        vol.Required("path"): text,
        vol.Required("regexp"): pattern,
        vol.Optional("replace", default=""): text,
        vol.Optional("after", default=None): maybe(pattern),
        vol.Optional("before", default=None): maybe(pattern),
        vol.Optional("backup", default=False): boolean,
        vol.Optional("validate", default=None): maybe(text),
        vol.Optional("encoding", default="utf-8"): encoding,
        **ATTRIBUTES,
    }

    @dataclass(frozen=True)
    class Params(FileAttributes):
        path: str
        regexp: str
        replace: str = ""
        after: str | None = None
        before: str | None = None
        backup: bool = False
        validate: str | None = None
        encoding: str = "utf-8"

        def __post_init__(self) -> None:
            if validate_problem(self.validate):
                raise vol.Invalid(validate_problem(self.validate), path=["validate"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        said = ""

        def edit(old: str | None) -> tuple[str | None, str]:
            nonlocal said
            # edit_text hands over UTF-8 (undecodable bytes as surrogates): re-read it in the file's encoding
            raw = (old or "").encode("utf-8", "surrogateescape")
            try:
                contents = raw.decode(params.encoding)
            except UnicodeDecodeError as exc:
                raise EncodingFailure(f"{params.path} is not {params.encoding} text: {exc.reason}") from None
            new, _, msg = substitute(contents, params)
            said = msg
            return (new.encode(params.encoding).decode("utf-8", "surrogateescape") if new != contents else old), msg

        options = EditOptions(backup=params.backup, validate=params.validate, flags=params.attributes,
                              missing="Path {path} does not exist !")
        try:
            result = await edit_text(ctx, params.path, edit, Attrs(params.mode, params.owner, params.group), options)
        except EncodingFailure as exc:
            return Result(failed=True, msg=str(exc))
        if result.failed or result.skipped:
            return result
        if not result.changed and said:     # edit_text drops an edit's message when nothing changes
            result = result.replace(msg=said)
        return result.replace(data={**result.data, "rc": 0})


class EncodingFailure(Exception):
    """The file's bytes are not text in the encoding the task names."""

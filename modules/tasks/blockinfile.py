"""blockinfile: keep a block of lines between two marker lines in a text file, as Ansible's module does."""
from __future__ import annotations

import re
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._attrs import Attrs
from modules.tasks._content import EditOptions, edit_text, split_lines, validate_problem
from modules.tasks._remote import ATTRIBUTES, FileAttributes, maybe, pattern, text

MARKER = "# {mark} ANSIBLE MANAGED BLOCK"   # Ansible's default, so the blocks it wrote are found and updated


def insert_point(lines: list[str], old: str, p: "BlockInFile.Params") -> int:
    """Where a new block goes, after Ansible's blockinfile: the last line the regex matches, or, for a
    regex with (?m) (which may span lines), its first match in the whole text."""
    if p.insertbefore == "BOF":
        return 0
    spec = p.insertafter if p.insertafter not in (None, "EOF") else p.insertbefore
    if spec is None:
        return len(lines)
    anchor = re.compile(spec)
    at = None
    if anchor.flags & re.MULTILINE:
        match = anchor.search(old)
        if match:
            at = old.count("\n", 0, match.end() if p.insertafter is not None else match.start())
    else:
        hits = [number for number, line in enumerate(lines) if anchor.search(line)]
        at = hits[-1] if hits else None
    if at is None:
        return len(lines)
    return at + 1 if p.insertafter is not None else at


def place_block(old: str | None, p: "BlockInFile.Params") -> str:
    """The new text: the block replaces the old one between its markers, else goes at the insert point."""
    lines = split_lines(old or "")
    begin = p.marker.replace("{mark}", p.marker_begin) + "\n"
    end = p.marker.replace("{mark}", p.marker_end) + "\n"
    block = []
    if p.state == "present" and p.block:
        block = [begin, *split_lines(p.block if p.block.endswith("\n") else p.block + "\n"), end]
    first = last = None
    for number, line in enumerate(lines):
        first = number if line == begin else first
        last = number if line == end else last
    if first is not None and last is not None:
        start, stop = min(first, last), max(first, last)
        del lines[start:stop + 1]
        at = start
    else:
        at = insert_point(lines, old or "", p)
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    if p.prepend_newline and p.state == "present" and at != 0 and lines[at - 1] != "\n":
        lines.insert(at, "\n")
        at += 1
    lines[at:at] = block
    after = at + len(block)
    if p.append_newline and p.state == "present" and after < len(lines) and lines[after] != "\n":
        lines.insert(after, "\n")
    return "".join(lines)


class BlockInFile(TaskModule, name="blockinfile"):
    description = "Insert, update or remove a block of lines between marker lines in a text file"
    aliases = {"dest": "path", "destfile": "path", "name": "path", "content": "block", "attr": "attributes"}
    schema = {
        vol.Required("path"): str,
        vol.Optional("block", default=""): text,
        vol.Optional("marker", default=MARKER): text,
        vol.Optional("marker_begin", default="BEGIN"): text,
        vol.Optional("marker_end", default="END"): text,
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
        vol.Optional("insertafter", default=None): maybe(pattern),
        vol.Optional("insertbefore", default=None): maybe(pattern),
        vol.Optional("create", default=False): boolean,
        vol.Optional("backup", default=False): boolean,
        vol.Optional("validate", default=None): maybe(text),
        vol.Optional("append_newline", default=False): boolean,
        vol.Optional("prepend_newline", default=False): boolean,
        **ATTRIBUTES,
    }

    @dataclass(frozen=True)
    class Params(FileAttributes):
        path: str
        block: str = ""
        marker: str = MARKER
        marker_begin: str = "BEGIN"
        marker_end: str = "END"
        state: str = "present"
        insertafter: str | None = None
        insertbefore: str | None = None
        create: bool = False
        backup: bool = False
        validate: str | None = None
        append_newline: bool = False
        prepend_newline: bool = False

        def __post_init__(self) -> None:
            if self.insertafter is not None and self.insertbefore is not None:
                raise vol.Invalid("give insertafter or insertbefore, not both", path=["insertbefore"])
            if "{mark}" not in self.marker:
                raise vol.Invalid("marker must contain {mark}, or the begin and end lines are the same",
                                  path=["marker"])
            if validate_problem(self.validate):
                raise vol.Invalid(validate_problem(self.validate), path=["validate"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        def edit(old: str | None) -> tuple[str | None, str]:
            new = place_block(old, params)
            if new == old:
                return old, ""
            # Ansible's words: an update of a block is "Block inserted" too.
            return new, "File created" if old is None else "Block inserted" if params.state == "present" and \
                params.block else "Block removed"

        options = EditOptions(create=params.create, absent=params.state == "absent", backup=params.backup,
                              validate=params.validate, flags=params.attributes,
                              missing="Path {path} does not exist !", not_present="File {path} not present")
        return await edit_text(ctx, params.path, edit, Attrs(params.mode, params.owner, params.group), options)

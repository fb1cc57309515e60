"""blockinfile: keep a block of lines between two marker lines in a text file, as Ansible's module does."""
from __future__ import annotations

import re
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._attrs import Attrs
from modules.tasks._content import edit_text
from modules.tasks._remote import ATTRIBUTES, maybe, pattern, text
from modules.tasks.lineinfile import split_lines


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
    elif p.insertbefore == "BOF":
        at = 0
    elif p.insertafter in (None, "EOF") and p.insertbefore is None:
        at = len(lines)
    else:
        anchor = re.compile(p.insertafter if p.insertafter is not None else p.insertbefore)
        hits = [number for number, line in enumerate(lines) if anchor.search(line)]   # the last match counts
        at = len(lines) if not hits else hits[-1] + (1 if p.insertafter is not None else 0)
    if block and at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    lines[at:at] = block
    return "".join(lines)


class BlockInFile(TaskModule, name="blockinfile"):
    description = "Insert, update or remove a block of lines between marker lines in a text file"
    schema = {
        vol.Required("path"): str,
        vol.Optional("block", default=""): text,
        vol.Optional("marker", default="# {mark} RECIPE MANAGED BLOCK"): text,
        vol.Optional("marker_begin", default="BEGIN"): text,
        vol.Optional("marker_end", default="END"): text,
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
        vol.Optional("insertafter", default=None): maybe(pattern),
        vol.Optional("insertbefore", default=None): maybe(pattern),
        vol.Optional("create", default=False): vol.Boolean(),
        vol.Optional("backup", default=False): vol.Boolean(),
        **ATTRIBUTES,
    }

    @dataclass(frozen=True)
    class Params:
        path: str
        block: str = ""
        marker: str = "# {mark} RECIPE MANAGED BLOCK"
        marker_begin: str = "BEGIN"
        marker_end: str = "END"
        state: str = "present"
        insertafter: str | None = None
        insertbefore: str | None = None
        create: bool = False
        backup: bool = False
        mode: str | None = None
        owner: str | None = None
        group: str | None = None

        def __post_init__(self) -> None:
            if self.insertafter is not None and self.insertbefore is not None:
                raise vol.Invalid("give insertafter or insertbefore, not both", path=["insertbefore"])
            if "{mark}" not in self.marker:
                raise vol.Invalid("marker must contain {mark}, or the begin and end lines are the same",
                                  path=["marker"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        def edit(old: str | None) -> tuple[str | None, str]:
            new = place_block(old, params)
            if new == (old or "") and old is not None:
                return old, ""
            return new, "file created" if old is None else "block removed" if params.state == "absent" or \
                not params.block else "block updated"

        return await edit_text(ctx, params.path, edit, Attrs(params.mode, params.owner, params.group),
                               create=params.create, absent=params.state == "absent", backup=params.backup)

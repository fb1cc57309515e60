"""lineinfile: make sure one line is in a text file (or is not), as Ansible's module does."""
from __future__ import annotations

import re
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._attrs import Attrs
from modules.tasks._content import edit_text
from modules.tasks._remote import ATTRIBUTES, maybe, pattern, text


def split_lines(content: str) -> list[str]:
    """Lines with their "\\n", split on "\\n" only (str.splitlines also splits on \\f, \\x1c...)."""
    parts = content.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def present(lines: list[str], p: "LineInFile.Params") -> str:
    """Ansible's algorithm: replace the last regexp match, else keep an identical line, else insert.

    Edits lines in place; returns what it did, "" for nothing.
    """
    after, before = p.insertafter, p.insertbefore
    if after is None and before is None:
        after = "EOF"
    spec = after if after not in (None, "BOF", "EOF") else before if before not in (None, "BOF") else None
    anchor = re.compile(spec) if spec is not None else None
    found, insert_at, match = -1, -1, None
    for number, current in enumerate(lines if p.regexp is not None else []):
        if m := re.search(p.regexp, current):
            found, match = number, m
            if p.firstmatch:
                break
    if match is None:
        for number, current in enumerate(lines):
            if current.rstrip("\r\n") == p.line:
                found = number
            elif anchor is not None and anchor.search(current):
                insert_at = number + 1 if before is None else number
                if p.firstmatch:
                    break
    if found != -1:
        new = match.expand(p.line) if p.backrefs and match else p.line
        new += "" if new.endswith("\n") else "\n"
        if lines[found] == new:
            return ""
        lines[found] = new
        return "line replaced"
    if p.backrefs:          # without a match there is nothing to fill the backreferences with
        return ""
    if "BOF" in (before, after):
        insert_at = 0
    elif after == "EOF" or insert_at == -1:
        insert_at = len(lines)
    elif after is not None:  # firstmatch may stop before seeing the line that already follows the anchor
        neighbour = lines[insert_at] if insert_at < len(lines) else lines[insert_at - 1]
        if neighbour.rstrip("\r\n") == p.line:
            return ""
    if insert_at == len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"
    lines.insert(insert_at, p.line + "\n")
    return "line added"


class LineInFile(TaskModule, name="lineinfile"):
    description = "Ensure a line is present in (or absent from) a text file, replacing a regexp match"
    schema = {
        vol.Required("path"): str,
        vol.Optional("line", default=None): maybe(text),
        vol.Optional("regexp", default=None): maybe(pattern),
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
        vol.Optional("insertafter", default=None): maybe(pattern),
        vol.Optional("insertbefore", default=None): maybe(pattern),
        vol.Optional("create", default=False): vol.Boolean(),
        vol.Optional("backrefs", default=False): vol.Boolean(),
        vol.Optional("firstmatch", default=False): vol.Boolean(),
        vol.Optional("backup", default=False): vol.Boolean(),
        **ATTRIBUTES,
    }

    @dataclass(frozen=True)
    class Params:
        path: str
        line: str | None = None
        regexp: str | None = None
        state: str = "present"
        insertafter: str | None = None
        insertbefore: str | None = None
        create: bool = False
        backrefs: bool = False
        firstmatch: bool = False
        backup: bool = False
        mode: str | None = None
        owner: str | None = None
        group: str | None = None

        def __post_init__(self) -> None:
            if self.state == "present" and self.line is None:
                raise vol.Invalid("state present needs line", path=["line"])
            if self.state == "absent" and self.line is None and self.regexp is None:
                raise vol.Invalid("state absent needs line or regexp", path=["regexp"])
            if self.backrefs and self.regexp is None:
                raise vol.Invalid("backrefs needs regexp", path=["backrefs"])
            if self.insertafter is not None and self.insertbefore is not None:
                raise vol.Invalid("give insertafter or insertbefore, not both", path=["insertbefore"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        def edit(old: str | None) -> tuple[str | None, str]:
            lines = split_lines(old or "")
            if params.state == "absent":
                kept = [line for line in lines if not (re.search(params.regexp, line) if params.regexp is not None
                                                       else line.rstrip("\r\n") == params.line)]
                removed = len(lines) - len(kept)
                return "".join(kept), f"{removed} line(s) removed" if removed else ""
            msg = present(lines, params)
            return ("".join(lines) if msg else old), msg

        return await edit_text(ctx, params.path, edit, Attrs(params.mode, params.owner, params.group),
                               create=params.create, absent=params.state == "absent", backup=params.backup)

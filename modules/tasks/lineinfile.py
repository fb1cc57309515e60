"""lineinfile: make sure one line is in a text file (or is not), as Ansible's module does."""
from __future__ import annotations

import re
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._attrs import Attrs
from modules.tasks._content import EditOptions, edit_text, split_lines, validate_problem
from modules.tasks._remote import ATTRIBUTES, FileAttributes, maybe, pattern, text


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
    for number, current in enumerate(lines if p.regexp is not None or p.search_string is not None else []):
        if m := (re.search(p.regexp, current) if p.regexp is not None else p.search_string in current):
            found, match = number, m
            if p.firstmatch:
                break
    if not match:
        for number, current in enumerate(lines):
            if current.rstrip("\r\n") == p.line:
                found = number
            elif anchor is not None and anchor.search(current):
                insert_at = number + 1 if before is None else number
                if p.firstmatch:
                    break
    if found != -1:
        new = match.expand(p.line) if p.backrefs and isinstance(match, re.Match) else p.line
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


def empty_pattern_warning(p: "LineInFile.Params") -> str:
    """Ansible's warning for an empty regexp or search_string (it matches every line); content asserts on it."""
    if "" not in (p.regexp, p.search_string):
        return ""
    name = "regular expression" if p.regexp == "" else "search string"
    warning = (f"The {name} is an empty string, which will match every line in the file. This may have unintended "
               "consequences, such as replacing the last line in the file rather than appending.")
    if p.regexp == "":
        warning += " If this is desired, use '^' to match every line in the file and avoid this warning."
    return warning


class LineInFile(TaskModule, name="lineinfile"):
    description = "Ensure a line is present in (or absent from) a text file, replacing a regexp match"
    aliases = {"dest": "path", "destfile": "path", "name": "path", "value": "line", "regex": "regexp",
               "attr": "attributes"}
    schema = {
        vol.Required("path"): str,
        vol.Optional("line", default=None): maybe(text),
        vol.Optional("regexp", default=None): maybe(pattern),
        vol.Optional("search_string", default=None): maybe(text),
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
        vol.Optional("insertafter", default=None): maybe(pattern),
        vol.Optional("insertbefore", default=None): maybe(pattern),
        vol.Optional("create", default=False): boolean,
        vol.Optional("backrefs", default=False): boolean,
        vol.Optional("firstmatch", default=False): boolean,
        vol.Optional("backup", default=False): boolean,
        vol.Optional("validate", default=None): maybe(text),
        **ATTRIBUTES,
    }

    @dataclass(frozen=True)
    class Params(FileAttributes):
        path: str
        line: str | None = None
        regexp: str | None = None
        search_string: str | None = None
        state: str = "present"
        insertafter: str | None = None
        insertbefore: str | None = None
        create: bool = False
        backrefs: bool = False
        firstmatch: bool = False
        backup: bool = False
        validate: str | None = None

        def __post_init__(self) -> None:
            if validate_problem(self.validate):
                raise vol.Invalid(validate_problem(self.validate), path=["validate"])
            if self.regexp is not None and self.search_string is not None:
                raise vol.Invalid("give regexp or search_string, not both", path=["search_string"])
            if self.state == "present" and self.line is None:
                raise vol.Invalid("state present needs line", path=["line"])
            if self.state == "absent" and self.line is None and self.regexp is None and self.search_string is None:
                raise vol.Invalid("state absent needs line, regexp or search_string", path=["regexp"])
            if self.backrefs and self.regexp is None:
                raise vol.Invalid("backrefs needs regexp", path=["backrefs"])
            if self.insertafter is not None and self.insertbefore is not None:
                raise vol.Invalid("give insertafter or insertbefore, not both", path=["insertbefore"])

    @staticmethod
    def matches(p: Params, line: str) -> bool:
        """Whether state absent removes this line."""
        if p.regexp is not None:
            return re.search(p.regexp, line) is not None
        if p.search_string is not None:
            return p.search_string in line
        return line.rstrip("\r\n") == p.line

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        found = 0

        def edit(old: str | None) -> tuple[str | None, str]:
            nonlocal found
            lines = split_lines(old or "")
            if params.state == "absent":
                kept = [line for line in lines if not self.matches(params, line)]
                found = len(lines) - len(kept)
                return "".join(kept), f"{found} line(s) removed" if found else ""
            msg = present(lines, params)
            return ("".join(lines) if msg else old), msg

        options = EditOptions(create=params.create, absent=params.state == "absent", backup=params.backup,
                              validate=params.validate, flags=params.attributes)
        result = await edit_text(ctx, params.path, edit, Attrs(params.mode, params.owner, params.group), options)
        # Ansible's lineinfile registers `backup` (the backup's name, or ""), and `found` for state absent.
        data = {"backup": result.data.get("backup_file", "")}
        if params.state == "absent":
            data["found"] = found
        warning = empty_pattern_warning(params)
        if warning:
            data["warnings"] = [warning]
        return result.replace(data={**result.data, **data})

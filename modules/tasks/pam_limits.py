"""pam_limits (community.general): one `domain type item value` line in limits.conf, as Ansible's module
writes it (tab-separated, the comment after `\t#`); use_max/use_min keep the larger/smaller value."""
from __future__ import annotations

import re
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, string
from modules.tasks._attrs import Attrs
from modules.tasks._conffile import FILE_ATTRS, edit_file

TYPES = ("hard", "soft", "-")
ITEMS = ("core", "data", "fsize", "memlock", "nofile", "rss", "stack", "cpu", "nproc", "as", "maxlogins",
         "maxsyslogins", "priority", "locks", "sigpending", "msgqueue", "nice", "rtprio", "chroot")
UNLIMITED = ("unlimited", "infinity", "-1")
SIGNED = ("nice", "priority")     # the items whose values may be negative
NUMBER = re.compile(r"^-?\d+$")


def is_number(value: str, item: str) -> bool:
    return bool(NUMBER.match(value)) if item in SIGNED else value.isdigit()


def new_value(p: "PamLimits.Params", actual: str) -> str:
    if p.use_max:
        if is_number(p.value, p.limit_item) and is_number(actual, p.limit_item):
            return str(max(int(p.value), int(actual)))
        return actual if actual in UNLIMITED else p.value
    if p.use_min:
        if is_number(p.value, p.limit_item) and is_number(actual, p.limit_item):
            return str(min(int(p.value), int(actual)))
        return actual if p.value in UNLIMITED else p.value
    return p.value


def edit_limits(text: str, p: "PamLimits.Params") -> tuple[str, bool, str]:
    """(new text, changed, the line that now holds the limit)."""
    out, found, changed, message = [], False, False, ""
    for line in text.splitlines(keepends=True):
        squeezed = re.sub(r"\s+", " ", line).strip()
        if line.startswith("#") or not squeezed:
            out.append(line)
            continue
        fields = squeezed.split("#", 1)[0].rstrip().split(" ")
        old_comment = line.split("#", 1)[1] if "#" in line else ""
        if len(fields) != 4 or fields[:3] != [p.domain, p.limit_type, p.limit_item]:
            out.append(line)
            continue
        found = True
        value = p.value if p.value == fields[3] else new_value(p, fields[3])
        if value == fields[3]:
            out.append(line)
            message = line
            continue
        changed = True
        message = limit_line(p, value, p.comment or old_comment.rstrip("\n"))
        out.append(message)
    if not found:
        changed = True
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        message = limit_line(p, p.value, p.comment)
        out.append(message)
    return "".join(out), changed, message


def limit_line(p: "PamLimits.Params", value: str, comment: str) -> str:
    return "\t".join((p.domain, p.limit_type, p.limit_item, value)) + (f"\t#{comment}" if comment else "") + "\n"


class PamLimits(TaskModule, name="pam_limits"):
    description = "Set a limit in /etc/security/limits.conf (or another limits file)"
    schema = {
        vol.Required("domain"): string,
        vol.Required("limit_type"): vol.In(TYPES),
        vol.Required("limit_item"): vol.In(ITEMS),
        vol.Required("value"): string,
        vol.Optional("use_max", default=False): boolean,
        vol.Optional("use_min", default=False): boolean,
        vol.Optional("backup", default=False): boolean,
        vol.Optional("dest", default="/etc/security/limits.conf"): string,
        vol.Optional("comment", default=""): string,
        **FILE_ATTRS,
    }

    @dataclass(frozen=True)
    class Params:
        domain: str
        limit_type: str
        limit_item: str
        value: str
        use_max: bool = False
        use_min: bool = False
        backup: bool = False
        dest: str = "/etc/security/limits.conf"
        comment: str = ""
        mode: str | None = None
        owner: str | None = None
        group: str | None = None

        def __post_init__(self) -> None:
            if self.use_max and self.use_min:
                raise vol.Invalid("use_min and use_max are mutually exclusive", path=["use_min"])
            if self.value not in UNLIMITED and not is_number(self.value, self.limit_item):
                raise vol.Invalid(f"value {self.value!r} must be unlimited, infinity, -1 or a number "
                                  f"({'an integer' if self.limit_item in SIGNED else 'positive'})", path=["value"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        said = []

        def edit(old: str | None) -> tuple[str | None, str]:
            new, changed, message = edit_limits(old or "", p)
            said.append(message)
            return (new if changed or old is None else old), "limit set" if changed else ""

        result = await edit_file(ctx, p.dest, edit, Attrs(p.mode, p.owner, p.group), backup=p.backup)
        if result.failed:
            return result
        return result.replace(msg=said[0] if said else result.msg)

"""pamd (community.general): edit the rules of a PAM service file in /etc/pam.d, as Ansible's module does.

A rule is found by its type, control and module path. When anything changes, the file is written as
Ansible writes it: every rule re-rendered as `type(padded to 11) control path args`, comments, blank
lines and @include lines kept, and a `# Updated by Ansible - <time>` line as the second line.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, string
from modules.tasks._attrs import Attrs
from modules.tasks._conffile import read_file, write_file
from modules.tasks._remote import maybe

RULE = re.compile(r"(?P<type>-?(?:auth|account|session|password))\s+(?P<control>\[.*\]|\S*)\s+(?P<path>\S*)\s*"
                  r"(?P<args>.*)\s*")
ARG = re.compile(r"(\[.*\]|\S*)")
TYPES = ("account", "-account", "auth", "-auth", "password", "-password", "session", "-session")
SIMPLE_CONTROLS = ("required", "requisite", "sufficient", "optional", "include", "substack", "definitive")
CONTROL_VALUES = frozenset(
    "success open_err symbol_err service_err system_err buf_err perm_denied auth_err cred_insufficient "
    "authinfo_unavail user_unknown maxtries new_authtok_reqd acct_expired session_err cred_unavail cred_expired "
    "cred_err no_module_data conv_err authtok_err authtok_recover_err authtok_lock_busy authtok_disable_aging "
    "try_again ignore abort authtok_expired module_unknown bad_item conv_again incomplete default".split())
CONTROL_ACTIONS = ("ignore", "bad", "die", "ok", "done", "reset")
STATES = ("absent", "after", "args_absent", "args_present", "before", "updated")
MARK = "# Updated by Ansible"


def parse_args(values: list[str] | str | None) -> list[str]:
    """Module arguments as Ansible splits them: words, a [bracketed ...] argument kept whole."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else values
    return [item for value in items for item in ARG.findall(value) if item]


def normal_control(control: str) -> str:
    """A [value=action ...] control as Ansible normalises it (spaces around '=' dropped)."""
    if not control.startswith("["):
        return control
    return "[" + " ".join(control.replace(" = ", "=").replace("[", "").replace("]", "").split(" ")) + "]"


@dataclass
class Rule:
    type: str
    control: str
    path: str
    args: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, line: str) -> "Rule | None":
        match = RULE.search(line)
        if not match:
            return None
        return cls(match["type"], normal_control(match["control"]), match["path"], parse_args(match["args"]))

    def matches(self, type_: str, control: str, path: str) -> bool:
        return (self.type, self.control, self.path) == (type_, control, path)

    def __str__(self) -> str:
        return f"{self.type: <11}{self.control} {self.path}" + (" " + " ".join(self.args) if self.args else "")

    def problem(self) -> str | None:
        if self.type not in TYPES:
            return f"Rule type, {self.type}, is not valid in rule {self}"
        if not self.control.startswith("["):
            return None if self.control in SIMPLE_CONTROLS else \
                f"Rule control, {self.control}, is not valid in rule {self}"
        for pair in self.control[1:-1].split(" "):
            value, _, action = pair.partition("=")
            if value not in CONTROL_VALUES:
                return f"Rule control value, {value}, is not valid in rule {self}"
            if action not in CONTROL_ACTIONS and not action.isdigit():
                return f"Rule control action, {action}, is not valid in rule {self}"
        return None


def parse_service(text: str) -> list[Rule | str]:
    lines: list[Rule | str] = []
    for line in text.splitlines():
        stripped = line.lstrip()
        rule = None if stripped.startswith(("#", "@include")) or not line.strip() else Rule.parse(line)
        lines.append(rule if rule else line)
    return lines


def render(lines: list[Rule | str], now: datetime) -> str:
    out = [str(line) for line in lines]
    mark = f"{MARK} - {now.isoformat()}"
    if len(out) <= 1:
        out[0:0] = ["", mark]
    elif out[1].startswith(MARK):
        out[1] = mark
    else:
        out.insert(1, mark)
    return "\n".join(out) + "\n"


def problem(lines: list[Rule | str]) -> str | None:
    """Ansible validates the whole file after the change; an indented comment counts as invalid there."""
    for line in lines:
        if isinstance(line, Rule):
            if line.problem():
                return line.problem()
        elif line.strip() and not line.startswith(("#", "@include")):
            return f"Rule is not valid {line}"
    return None


def key_values(args: list[str]) -> tuple[set[str], dict[str, str]]:
    simple, pairs = set(), {}
    for arg in args:
        if arg.startswith("["):
            continue
        if "=" in arg:
            key, value = arg.split("=", 1)
            pairs[key] = value
        else:
            simple.add(arg)
    return simple, pairs


def apply(lines: list[Rule | str], p: "Pamd.Params") -> int:
    """Change lines as p's state asks; return how many rules changed (Ansible's change_count)."""
    found = [i for i, line in enumerate(lines) if isinstance(line, Rule) and line.matches(p.type, p.control,
                                                                                         p.module_path)]
    if p.state == "absent":
        for index in reversed(found):
            del lines[index]
        return len(found)
    changes = 0
    for index in reversed(found) if p.state in ("before", "after") else found:
        rule = lines[index]
        assert isinstance(rule, Rule)
        changes += CHANGES[p.state](lines, index, rule, p)
    return changes


def update(lines: list[Rule | str], index: int, rule: Rule, p: "Pamd.Params") -> int:
    changed = False
    for attr, new in (("type", p.new_type), ("control", p.new_control), ("path", p.new_module_path)):
        if new and getattr(rule, attr) != (normal_control(new) if attr == "control" else new):
            setattr(rule, attr, normal_control(new) if attr == "control" else new)
            changed = True
    if p.module_arguments is not None and rule.args != parse_args(p.module_arguments):
        rule.args = parse_args(p.module_arguments)
        changed = True
    return int(changed)


def neighbour(lines: list[Rule | str], index: int, step: int) -> int | None:
    """Where the nearest line before (step -1) or after (+1) is that is no comment or blank line."""
    index += step
    while 0 <= index < len(lines):
        line = lines[index]
        if isinstance(line, Rule) or not (line.lstrip().startswith("#") or not line.strip()):
            return index
        index += step
    return None


def insert(lines: list[Rule | str], index: int, rule: Rule, p: "Pamd.Params") -> int:
    """A new rule before or after this one, unless the nearest rule there is already it."""
    new = Rule(p.new_type or "", normal_control(p.new_control or ""), p.new_module_path or "",
               parse_args(p.module_arguments))
    near = neighbour(lines, index, -1 if p.state == "before" else 1)
    if near is not None and isinstance(lines[near], Rule) and lines[near].matches(new.type, new.control, new.path):
        return 0
    if p.state == "before":
        lines.insert(index, new)
    elif near is None:     # Ansible links the new last rule straight after this one: what followed it goes
        del lines[index + 1:]
        lines.append(new)
    else:
        lines.insert(index + 1, new)
    return 1


def args_present(lines: list[Rule | str], index: int, rule: Rule, p: "Pamd.Params") -> int:
    wanted_simple, wanted_pairs = key_values(parse_args(p.module_arguments))
    have_simple, have_pairs = key_values(rule.args)
    added = sorted(wanted_simple - have_simple) + [f"{k}={v}" for k, v in wanted_pairs.items() if k not in have_pairs]
    changed = bool(added)
    rule.args += added
    for key in wanted_pairs.keys() & have_pairs.keys():
        if wanted_pairs[key] != have_pairs[key]:
            rule.args[rule.args.index(f"{key}={have_pairs[key]}")] = f"{key}={wanted_pairs[key]}"
            changed = True
    return int(changed)


def args_absent(lines: list[Rule | str], index: int, rule: Rule, p: "Pamd.Params") -> int:
    remove = parse_args(p.module_arguments)
    if not set(rule.args) & set(remove):
        return 0
    rule.args = [arg for arg in rule.args if arg not in remove]
    return 1


CHANGES = {"updated": update, "before": insert, "after": insert, "args_present": args_present,
           "args_absent": args_absent}


def arguments(value: object) -> list[str]:
    """A list of strings; a string is split on commas, as Ansible's list options are."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    if isinstance(value, list):
        return [string(item) for item in value]
    raise vol.Invalid(f"expected a list of module arguments, got {type(value).__name__}")


class Pamd(TaskModule, name="pamd"):
    description = "Add, change or remove rules and their arguments in a PAM service file"
    schema = {
        vol.Required("name"): string,
        vol.Required("type"): vol.In(TYPES),
        vol.Required("control"): string,
        vol.Required("module_path"): string,
        vol.Optional("new_type", default=None): maybe(vol.In(TYPES)),
        vol.Optional("new_control", default=None): maybe(string),
        vol.Optional("new_module_path", default=None): maybe(string),
        vol.Optional("module_arguments", default=None): maybe(arguments),
        vol.Optional("state", default="updated"): vol.In(STATES),
        vol.Optional("path", default="/etc/pam.d"): string,
        vol.Optional("backup", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        name: str
        type: str
        control: str
        module_path: str
        new_type: str | None = None
        new_control: str | None = None
        new_module_path: str | None = None
        module_arguments: list[str] | None = None
        state: str = "updated"
        path: str = "/etc/pam.d"
        backup: bool = False

        def __post_init__(self) -> None:
            if self.state in ("args_present", "args_absent") and self.module_arguments is None:
                raise vol.Invalid(f"state {self.state} needs module_arguments", path=["module_arguments"])
            if self.state in ("before", "after"):
                for option in ("new_type", "new_control", "new_module_path"):
                    if getattr(self, option) is None:
                        raise vol.Invalid(f"state {self.state} needs new_type, new_control and new_module_path",
                                          path=[option])
            if self.state == "args_present" and any(a.startswith("[") for a in parse_args(self.module_arguments)):
                raise vol.Invalid("args_present cannot take bracketed [...] arguments: use state updated",
                                  path=["module_arguments"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        path = posixpath.join(p.path, p.name)
        found = await read_file(ctx, path)
        if isinstance(found, Result):
            return found
        data = {"change_count": 0, "backupdest": ""}
        if found.text is None:
            return Result(failed=True, data=data, msg=f"Unable to open/read PAM module file {path}: it does not exist")
        lines = parse_service(found.text)
        changes = apply(lines, p)
        invalid = problem(lines)
        if invalid:
            return Result(failed=True, msg=invalid, data=data)
        data["change_count"] = changes
        if not changes:
            return Result(msg=f"{path}: no rule to change", data=data)
        msg = f"{path}: {changes} rule(s) changed"
        if ctx.check:
            return Result(changed=True, msg=msg, data=data)
        written = await write_file(ctx, found, render(lines, datetime.now()), Attrs(), backup=p.backup)
        if isinstance(written, Result):
            return written.replace(data=data)
        return Result(changed=True, msg=msg, data={**data, "backupdest": written})


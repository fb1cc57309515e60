"""sysctl (ansible.posix): a kernel parameter in sysctl.conf, optionally set now and the file reloaded.

As Ansible's module: when the file must change it is rewritten whole, every line stripped and each key
written once as `key=value`; with reload (the default), a file already right still counts as a change
when the running kernel's value differs, and `sysctl -p <file>` follows every change.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import FALSE_WORDS, TRUE_WORDS, boolean, string
from modules.tasks._attrs import Attrs
from modules.tasks._conffile import FILE_ATTRS, edit_file
from modules.tasks._remote import first, maybe, quiet, tagged, tail

# sysctl can fail to set a value yet exit 0 (https://bugzilla.redhat.com/show_bug.cgi?id=1264080)
STDERR_FAILED = re.compile(r'^sysctl: setting key "[^"]+": (Invalid argument|Read-only file system)$', re.M)


def sysctl_value(value: object) -> str:
    """Ansible's _parse_value: booleans (and yes/no/on/off words) as 1 or 0, other text stripped."""
    if isinstance(value, bool):
        return "1" if value else "0"
    word = string(value)
    if word.lower() in TRUE_WORDS:
        return "1"
    if word.lower() in FALSE_WORDS:
        return "0"
    return word.strip()


def same_value(a: str | None, b: str | None) -> bool:
    """Equal word by word: the kernel separates "4096 87380 6291456" with tabs."""
    return a is not None and b is not None and a.split() == b.split()


def file_value(lines: list[str], name: str) -> str | None:
    """The key's value in the file: the last assignment wins, as sysctl -p reads it."""
    found = None
    for line in lines:
        if line and not line.startswith(("#", ";")) and "=" in line:
            key, value = line.split("=", 1)
            if key.strip() == name:
                found = value.strip()
    return found


def fixed_lines(lines: list[str], name: str, value: str | None) -> list[str]:
    """The file as Ansible writes it: the key's first line set (or dropped when value is None), its later
    duplicates dropped, every other assignment as key=value, the key appended when it was missing."""
    seen, out = set(), []
    for line in lines:
        if not line or line.startswith(("#", ";")) or "=" not in line:
            out.append(line)
            continue
        key, current = (part.strip() for part in line.split("=", 1))
        if key in seen:
            continue
        seen.add(key)
        if key != name:
            out.append(f"{key}={current}")
        elif value is not None:
            out.append(f"{key}={value}")
    if name not in seen and value is not None:
        out.append(f"{name}={value}")
    return out


class Sysctl(TaskModule, name="sysctl"):
    description = "Set a kernel parameter in sysctl.conf (and optionally in the running kernel)"
    aliases = {"key": "name", "val": "value"}
    schema = {
        vol.Required("name"): string,
        vol.Optional("value", default=None): maybe(sysctl_value),
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
        vol.Optional("reload", default=True): boolean,
        vol.Optional("sysctl_set", default=False): boolean,
        vol.Optional("ignoreerrors", default=False): boolean,
        vol.Optional("sysctl_file", default="/etc/sysctl.conf"): string,
        **FILE_ATTRS,
    }

    @dataclass(frozen=True)
    class Params:
        name: str
        value: str | None = None
        state: str = "present"
        reload: bool = True
        sysctl_set: bool = False
        ignoreerrors: bool = False
        sysctl_file: str = "/etc/sysctl.conf"
        mode: str | None = None
        owner: str | None = None
        group: str | None = None

        def __post_init__(self) -> None:
            object.__setattr__(self, "name", self.name.strip())
            if not self.name:
                raise vol.Invalid("name cannot be blank", path=["name"])
            if self.state == "present" and not self.value:
                raise vol.Invalid("state present needs a value (not blank)", path=["value"])

        @property
        def sysctl(self) -> str:
            return "sysctl -e" if self.ignoreerrors else "sysctl"

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        present = p.state == "present"
        kernel = await self.kernel_value(p, ctx) if present and (p.reload or p.sysctl_set) else None
        wrote = []

        def edit(old: str | None) -> tuple[str | None, str]:
            lines = [line.strip() for line in (old or "").splitlines()]
            current = file_value(lines, p.name)
            if (current is None and not present) or (present and current == p.value):
                return old, ""
            wrote.append(True)
            return "".join(f"{line}\n" for line in fixed_lines(lines, p.name, p.value if present else None)), \
                f"{p.name}={p.value}" if present else f"{p.name} removed"

        result = await edit_file(ctx, p.sysctl_file, edit, Attrs(p.mode, p.owner, p.group))
        if result.failed:
            return result
        stale = present and not same_value(kernel, p.value)
        changed = result.changed or (stale and (p.sysctl_set or (p.reload and not wrote)))
        if not changed:
            return Result(msg=f"{p.name} is as asked")
        msg = result.msg if result.changed else f"{p.name}: the running kernel has {kernel!r}"
        if ctx.check:
            return Result(changed=True, msg=msg, diff=result.diff)
        commands = []
        if p.sysctl_set and stale and kernel is not None:
            commands.append(f"{p.sysctl} -w {shlex.quote(f'{p.name}={p.value}')}")
        if p.reload:
            commands.append(f"{p.sysctl} -p {shlex.quote(p.sysctl_file)}")
        for command in commands:
            res = await ctx.sh(command)
            if not res.ok or STDERR_FAILED.search(res.stderr):
                what = f"setting {p.name}" if " -w " in command else "reload sysctl"
                return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr, diff=result.diff,
                              msg=f"Failed to {what}: {tail(res.stdout + chr(10) + res.stderr)}")
        return Result(changed=True, msg=msg, diff=result.diff)

    @staticmethod
    async def kernel_value(p: Params, ctx: TaskContext) -> str | None:
        """The running kernel's value, None when sysctl does not know the key."""
        res = await quiet(ctx, f"v=$(sysctl -e -n {shlex.quote(p.name)} 2>/dev/null) && "
                               "printf 'kernel %s\\n' \"$(printf %s \"$v\" | tr '\\n' ' ')\"; exit 0")
        return first(tagged(res.stdout)[0], "kernel")

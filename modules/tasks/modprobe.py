"""modprobe (community.general): load or unload a kernel module, and optionally across boots.

As Ansible: a module is loaded when /proc/modules lists it (dashes as underscores) or it is built in
(modules.builtin of the running kernel); `modprobe name params...` loads it (`-n` in check mode, a dry run),
`modprobe -r name` unloads it. `persistent: present` writes /etc/modules-load.d/<name>.conf (the name) unless a
file there already lists it, and /etc/modprobe.d/<name>.conf (`options <name> <param>`, one a line) unless the
options across modprobe.d are already exactly `params`, commenting out the old ones first; `persistent: absent`
comments out the module's lines in both. A file whose lines are commented out is rewritten as Ansible writes it:
its lines joined with a newline each, so every line is followed by a blank one.

Unlike Ansible, check mode writes no persistent file (Ansible's module writes them even in check mode).
"""
from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import string
from modules.tasks._aptsources import read_sources
from modules.tasks._attrs import Attrs
from modules.tasks._conffile import TextFile, write_file
from modules.tasks._remote import first, q, quiet, tagged, tail, words


@dataclass(frozen=True)
class Patterns:
    """Ansible's three regular expressions for one module's lines."""

    module: re.Pattern[str]
    options: re.Pattern[str]
    option: re.Pattern[str]

    @classmethod
    def of(cls, name: str) -> Patterns:
        name = re.escape(name)
        return cls(re.compile(rf"^ *{name} *(?:[#;].*)?\n?\Z"), re.compile(rf"^options {name} \w+=\S+ *(?:[#;].*)?\n?\Z"),
                   re.compile(rf"^options {name} (\w+=\S+) *(?:[#;].*)?\n?\Z"))


def lines_of(found: TextFile) -> list[str]:
    return (found.text or "").splitlines(True)


def listed(files: dict[str, TextFile], pattern: re.Pattern[str]) -> bool:
    return any(pattern.match(line) for found in files.values() for line in lines_of(found))


def options(files: dict[str, TextFile], pattern: re.Pattern[str]) -> set[str]:
    return {match.group(1) for found in files.values() for match in map(pattern.match, lines_of(found)) if match}


def commented(found: TextFile, pattern: re.Pattern[str]) -> str | None:
    """The file with its matching lines commented out, joined as Ansible joins them; None when none match."""
    lines = lines_of(found)
    if not any(pattern.match(line) for line in lines):
        return None
    return "\n".join("#" + line if pattern.match(line) else line for line in lines)


def options_text(name: str, params: str) -> str:
    return "\n".join(f"options {name} {param}" for param in params.split()) + "\n"


class Modprobe(TaskModule, name="modprobe"):
    description = "Load or unload a kernel module, optionally across boots (modules-load.d, modprobe.d)"
    # where Ansible looks; tests move them
    modules_load_dir = "/etc/modules-load.d"
    modprobe_dir = "/etc/modprobe.d"
    proc_modules = "/proc/modules"
    lib_modules = "/lib/modules"
    schema = {
        vol.Required("name"): string,
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
        vol.Optional("params", default=""): string,
        vol.Optional("persistent", default="disabled"): vol.In(["disabled", "present", "absent"]),
    }

    @dataclass(frozen=True)
    class Params:
        name: str
        state: str = "present"
        params: str = ""
        persistent: str = "disabled"

    async def loaded(self, ctx: TaskContext, name: str) -> bool | Result:
        script = (f"grep -q {shlex.quote('^' + re.escape(name.replace('-', '_')) + ' ')} {q(self.proc_modules)} "
                  "&& { echo loaded; exit 0; }\n"
                  f"b={q(self.lib_modules)}/\"$(uname -r)\"/modules.builtin\n"
                  "[ -r \"$b\" ] || { printf 'missing %s\\n' \"$b\"; exit 0; }\n"
                  f"grep -q {shlex.quote('/' + re.escape(name) + '.ko$')} \"$b\" && echo loaded; exit 0\n")
        tags, _ = tagged((await quiet(ctx, script, become=False)).stdout)
        if "missing" in tags:
            return Result(failed=True, msg=f"[Errno 2] No such file or directory: '{first(tags, 'missing')}'")
        return "loaded" in tags

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        data = {"name": p.name, "params": p.params, "state": p.state}
        loaded = await self.loaded(ctx, p.name)
        if isinstance(loaded, Result):
            return loaded.replace(data=data)
        changed, notes = False, []
        if p.state == "present" and not loaded:
            done = await self.load(ctx, p)
            if isinstance(done, Result):
                return done.replace(data=data)
            changed, notes = done[0], done[1]
        elif p.state == "absent" and loaded:
            res = await ctx.sh(f"modprobe -r {shlex.quote(p.name)}" + (" -n" if ctx.check else ""))
            if not res.ok:
                return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr, msg=res.stderr, data=data)
            changed = True
        if p.persistent != "disabled":
            persisted = await self.persist(ctx, p)
            if isinstance(persisted, Result):
                return persisted.replace(data=data)
            changed = changed or bool(persisted)
            notes += persisted
        return Result(changed=changed, msg="; ".join(notes) or f"{p.name} is {p.state}", data=data)

    async def load(self, ctx: TaskContext, p: Params) -> tuple[bool, list[str]] | Result:
        args = [p.name, *shlex.split(p.params)]
        res = await ctx.sh("modprobe " + ("-n " if ctx.check else "") + words(args))
        if not res.ok:
            return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr, msg=res.stderr)
        if ctx.check:
            return True, [f"{p.name} would be loaded"]
        now = await self.loaded(ctx, p.name)
        if isinstance(now, Result):
            return now
        if now:
            return True, [f"{p.name} loaded"]
        # as Ansible: modprobe said yes yet nothing is loaded; its --first-time dry run says why, as a warning
        why = await quiet(ctx, "modprobe -n --first-time " + words(args))
        return False, [f"[WARNING]: {tail(why.stderr)}"] if not why.ok else []

    async def persist(self, ctx: TaskContext, p: Params) -> list[str] | Result:
        """Make the module's files as `persistent` asks; what was done, in words (empty: nothing to do)."""
        found = await read_sources(ctx, [], [(self.modules_load_dir, "*"), (self.modprobe_dir, "*")])
        if isinstance(found, Result):
            return found
        pattern = Patterns.of(p.name)
        load_files = {path: f for path, f in found.files.items() if posixpath.dirname(path) == self.modules_load_dir}
        option_files = {path: f for path, f in found.files.items() if posixpath.dirname(path) == self.modprobe_dir}
        listed_now = listed(load_files, pattern.module)
        current = options(option_files, pattern.option)
        writes: dict[str, str] = {}
        if p.persistent == "present":
            if not listed_now:
                writes[posixpath.join(self.modules_load_dir, f"{p.name}.conf")] = f"{p.name}\n"
            if set(p.params.split()) != current:
                writes.update(self.commented(option_files, pattern.options))
                writes[posixpath.join(self.modprobe_dir, f"{p.name}.conf")] = options_text(p.name, p.params)
        else:
            if listed_now:
                writes.update(self.commented(load_files, pattern.module))
            if current:
                writes.update(self.commented(option_files, pattern.options))
        if not ctx.check:
            for path, content in writes.items():
                target = found.files.get(path) or TextFile(path, None, found.umask, None)
                done = await write_file(ctx, target, content, Attrs(), mkdir=target.stat is None)
                if isinstance(done, Result):
                    return done
        return [f"wrote {path}" for path in writes]

    @staticmethod
    def commented(files: dict[str, TextFile], pattern: re.Pattern[str]) -> dict[str, str]:
        edited = {path: commented(found, pattern) for path, found in files.items()}
        return {path: text for path, text in edited.items() if text is not None}


"""mount (ansible.posix): a filesystem's line in fstab, and whether it is mounted, as Ansible's module does (Linux).

fstab is edited here, on the controller, line by line as Ansible edits it: a changed entry is rewritten as
`src path fstype opts dump passno`, other lines are kept byte for byte. One probe says whether the path is a
mount point (`mountpoint`, or /proc/self/mountinfo for bind mounts) and exists; mount/umount do the rest.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, string
from modules.tasks._conffile import edit_file
from modules.tasks._remote import maybe, q, quiet, tagged, tail

STATES = ("absent", "absent_from_fstab", "absent_mount", "mounted", "present", "unmounted", "remounted",
          "ephemeral")
FIELDS = ("src", "name", "fstype", "opts", "dump", "passno")


def escape(value: str) -> str:
    """fstab's octal escapes for backslash, space and ampersand, as Ansible writes them."""
    return value.replace("\\", "\\134").replace(" ", "\\040").replace("&", "\\046")


@dataclass(frozen=True)
class Entry:
    """The fstab entry the task asks for, escaped as it is written."""

    src: str
    name: str
    fstype: str
    opts: str
    dump: str
    passno: str

    @property
    def line(self) -> str:
        return f"{self.src} {self.name} {self.fstype} {self.opts} {self.dump} {self.passno}\n"

    def matches(self, fields: dict[str, str], raw_src: str | None) -> bool:
        """The line is this entry's: the same mount point; for swap (`none`), the same source too."""
        if fields["name"] != self.name:
            return False
        return not (raw_src is not None and fields["name"] == "none" and fields.get("fstype") == "swap"
                    and fields["src"] != raw_src)


def lines_of(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def set_entry(old: str, entry: Entry, raw_src: str | None) -> tuple[str, bool]:
    """fstab with the entry present: (new text, changed)."""
    out, changed, exists = [], False, False
    for line in lines_of(old):
        line = line if line.endswith("\n") else line + "\n"
        fields = line.split("#")[0].split()
        if not line.strip() or line.strip().startswith("#") or len(fields) not in (4, 5, 6):
            out.append(line)
            continue
        found = dict(zip(FIELDS, fields))
        if not entry.matches(found, raw_src):
            out.append(line)
            continue
        exists = True
        if any(found.get(key) != getattr(entry, key) for key in ("src", "fstype", "opts", "dump", "passno")):
            changed = True
            out.append(entry.line)
        else:
            out.append(line)
    if not exists:
        out.append(entry.line)
        changed = True
    return "".join(out), changed


def unset_entry(old: str, entry: Entry, raw_src: str | None) -> tuple[str, bool]:
    """fstab without the entry (only whole 6-field lines count, as in Ansible): (new text, changed)."""
    out, changed = [], False
    for line in lines_of(old):
        fields = line.split()
        if line.strip() and not line.strip().startswith("#") and len(fields) == 6 and \
                entry.matches(dict(zip(FIELDS, fields)), raw_src):
            changed = True
            continue
        out.append(line)
    return "".join(out), changed


class Mount(TaskModule, name="mount"):
    description = "Control a filesystem's fstab entry and whether it is mounted"
    aliases = {"name": "path"}
    schema = {
        vol.Required("path"): string,
        vol.Required("state"): vol.In(STATES),
        vol.Optional("src", default=None): maybe(string),
        vol.Optional("fstype", default=None): maybe(string),
        vol.Optional("opts", default=None): maybe(string),
        vol.Optional("dump", default="0"): string,
        vol.Optional("passno", default="0"): string,
        vol.Optional("fstab", default=None): maybe(string),
        vol.Optional("boot", default=True): boolean,
        vol.Optional("backup", default=False): boolean,
        vol.Optional("opts_no_log", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        path: str
        state: str
        src: str | None = None
        fstype: str | None = None
        opts: str | None = None
        dump: str = "0"
        passno: str = "0"
        fstab: str | None = None
        boot: bool = True
        backup: bool = False
        opts_no_log: bool = False

        def __post_init__(self) -> None:
            if self.state in ("mounted", "present", "ephemeral"):
                for option in ("src", "fstype"):
                    if getattr(self, option) is None:
                        raise vol.Invalid(f"state {self.state} needs src and fstype", path=[option])

        @property
        def options(self) -> str:
            """opts with noauto added when boot is false (Linux's way to say it)."""
            opts = (self.opts or "defaults").split(",")
            if not self.boot and "noauto" not in opts:
                opts.append("noauto")
            return ",".join(opts)

        @property
        def fstab_file(self) -> str:
            return self.fstab or "/etc/fstab"

        @property
        def entry(self) -> Entry:
            return Entry(escape(self.src or ""), escape(self.path), escape(self.fstype or ""),
                         escape(self.options), self.dump, self.passno)

        def mount_command(self) -> str:
            if self.state == "ephemeral":
                opts = f"-o {shlex.quote(self.options)} " if self.options != "defaults" else ""
                return f"mount -t {shlex.quote(self.fstype or '')} {opts}{q(self.src or '')} {q(self.path)}"
            alternate = f"-T {q(self.fstab_file)} " if self.fstab_file != "/etc/fstab" else ""
            return f"mount {alternate}{q(self.path)}"

        def remount_command(self) -> str:
            opts = "remount," + self.options if self.state == "remounted" and self.options != "defaults" else \
                "remount"
            return self.mount_command().replace("mount ", f"mount -o {shlex.quote(opts)} ", 1)

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        data = {"name": p.path, "opts": p.options, "dump": p.dump, "passno": p.passno, "fstab": p.fstab_file,
                "boot": "yes" if p.boot else "no", "backup_file": "",
                **({"src": p.src} if p.src is not None else {}), **({"fstype": p.fstype} if p.fstype else {})}
        probe = (f"p={q(p.path)}\n"
                 "if mountpoint -q \"$p\" 2>/dev/null; then echo mounted\n"
                 f"elif awk -v d={shlex.quote(p.entry.name)} '$5 == d {{f = 1}} END {{exit !f}}' "
                 "/proc/self/mountinfo 2>/dev/null; then echo mounted; fi\n"
                 "[ -e \"$p\" ] && echo exists\n"
                 f"awk -v d={shlex.quote(p.entry.name)} '$5 == d {{s = $(NF - 1)}} END {{print \"source \" s}}' "
                 "/proc/self/mountinfo 2>/dev/null\nexit 0\n")
        res = await quiet(ctx, probe)
        tags, _ = tagged(res.stdout)
        mounted, exists = "mounted" in tags, "exists" in tags
        return await Action(p, ctx, data, mounted, exists, (tags.get("source") or [""])[0]).run()


@dataclass
class Action:
    p: Mount.Params
    ctx: TaskContext
    data: dict
    mounted: bool
    exists: bool
    source: str

    def done(self, changed: bool, diff: str = "") -> Result:
        return Result(changed=changed, diff=diff, data=self.data,
                      msg=f"{self.p.path}: {self.p.state}" + ("" if changed else " already"))

    def fail(self, msg: str) -> Result:
        return Result(failed=True, msg=msg, data=self.data)

    async def sh(self, command: str) -> tuple[bool, str]:
        res = await self.ctx.sh(command)
        return res.ok, tail(res.stdout + "\n" + res.stderr)

    async def fstab(self, present: bool) -> Result:
        """Edit fstab (or see what would change, in check mode)."""
        p = self.p

        def edit(old: str | None) -> tuple[str | None, str]:
            new, changed = (set_entry if present else unset_entry)(old or "", p.entry, p.src)
            return (new if changed else old), ("entry set" if present else "entry removed") if changed else ""

        result = await edit_file(self.ctx, p.fstab_file, edit, create=present, backup=p.backup)
        self.data["backup_file"] = result.data.get("backup_file", "")
        return result

    async def run(self) -> Result:
        state = self.p.state
        if state == "remounted":
            if not self.ctx.check:
                ok, out = await self.remount()
                if not ok:
                    return self.fail(f"Error remounting {self.p.path}: {out}")
            return self.done(True)
        if state == "unmounted":
            return await self.unmount_only()
        if state in ("absent", "absent_mount", "absent_from_fstab"):
            return await self.absent()
        if state == "present":
            edited = await self.fstab(True)
            return edited if edited.failed else self.done(edited.changed, edited.diff)
        return await self.mount()

    async def unmount_only(self) -> Result:
        if not self.mounted:
            return self.done(False)
        if not self.ctx.check:
            ok, out = await self.sh(f"umount {q(self.p.path)}")
            if not ok:
                return self.fail(f"Error unmounting {self.p.path}: {out}")
        return self.done(True)

    async def absent(self) -> Result:
        edited = await self.fstab(False)
        if edited.failed or not edited.changed or self.ctx.check or self.p.state == "absent_from_fstab":
            return edited if edited.failed else self.done(edited.changed, edited.diff)
        if self.mounted:     # as Ansible: only what fstab listed is unmounted
            ok, out = await self.sh(f"umount {q(self.p.path)}")
            if not ok:
                return self.fail(f"Error unmounting {self.p.path}: {out}")
        if self.exists and self.p.state == "absent":
            ok, out = await self.sh(f"rmdir {q(self.p.path)}")
            if not ok:
                return self.fail(f"Error rmdir {self.p.path}: {out}")
        return self.done(True, edited.diff)

    async def mount(self) -> Result:
        """mounted and ephemeral: the directory made, fstab set (not for ephemeral), mounted or remounted."""
        p, check = self.p, self.ctx.check
        made = ""
        if not self.exists and not check:
            res = await self.ctx.sh(f"p={q(p.path)}; m=$p; while [ ! -e \"$(dirname \"$m\")\" ]; do "
                                    "m=$(dirname \"$m\"); done; mkdir -p \"$p\" && echo \"$m\"")
            if not res.ok:
                return self.fail(f"Error making dir {p.path}: {tail(res.stderr)}")
            made = res.stdout.strip()
        diff, changed, backup = "", False, None
        if p.state == "mounted":
            backup = await quiet(self.ctx, f"cat {q(p.fstab_file)} 2>/dev/null; exit 0")
            edited = await self.fstab(True)
            if edited.failed:
                return edited
            diff, changed = edited.diff, edited.changed
        ok, out = True, ""
        if self.mounted and p.state == "ephemeral":
            if self.source != p.src:
                return self.fail("Ephemeral mount point is already mounted with a different source than the "
                                 "specified one; unmount it first (state: unmounted) or use another path")
            changed = True
            if not check:
                ok, out = await self.remount()
        elif self.mounted:
            if changed and not check:
                ok, out = await self.remount()
        else:
            changed = True
            if not check:
                ok, out = await self.sh(p.mount_command())
        if not ok:   # as Ansible: a broken entry would break the next boot, so undo what this task did
            await self.undo(backup.stdout if backup else None, made)
            return self.fail(f"Error mounting {p.path}: {out}")
        return self.done(changed, diff)

    async def remount(self) -> tuple[bool, str]:
        ok, out = await self.sh(self.p.remount_command())
        if ok:
            return ok, out
        if self.p.state == "remounted" and self.p.options != "defaults":
            return False, ("Options were specified with remounted, but the remount command failed: use "
                           "state: unmounted followed by state: mounted with the full mount options instead")
        ok, out = await self.sh(f"umount {q(self.p.path)}")
        return (await self.sh(self.p.mount_command())) if ok else (ok, out)

    async def undo(self, fstab: str | None, made: str) -> None:
        if fstab is not None:
            await edit_file(self.ctx, self.p.fstab_file, lambda _old: (fstab, "restored"), create=False)
        if made:
            await quiet(self.ctx, f"p={q(self.p.path)}; while [ \"$p\" != {q(made)} ] && rmdir \"$p\"; do "
                                  f"p=$(dirname \"$p\"); done; rmdir {q(made)}; exit 0")

"""file: make a path a file, directory, link or nothing, with the attributes asked for."""
from __future__ import annotations

import posixpath
import secrets
from dataclasses import dataclass
from datetime import datetime

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._attrs import Attrs, Stat
from modules.tasks._content import stat_data, with_flags
from modules.tasks._remote import (ATTRIBUTES, UMASK_SH, FileAttributes, failure, first, maybe, q, quiet, stat_sh,
                                   tagged, text)

STATES = ("file", "directory", "absent", "link", "touch", "hard")
TIME_FORMAT = "%Y%m%d%H%M.%S"       # Ansible's default access_time_format, which is touch -t's too


def touch_stamp(value: str | None, fmt: str) -> str | None:
    """A time option as touch -t takes it; None for none, "now" and "preserve" as they are."""
    if value in (None, "now", "preserve"):
        return value
    return datetime.strptime(value, fmt).strftime(TIME_FORMAT)


def time_commands(p: "File.Params", times: str | None, qp: str, default: str) -> tuple[list[str], list[str]]:
    """touch commands for access_time and modification_time, and what they change; default is the
    value an unset option takes ("now" for state touch, else "preserve")."""
    have = (times or "").split()
    cmds, said = [], []
    for flag, index, value, fmt in (("-a", 0, p.access_time, p.access_time_format),
                                    ("-m", 1, p.modification_time, p.modification_time_format)):
        stamp = touch_stamp(value or default, fmt)
        if stamp == "preserve":
            continue
        if stamp == "now":
            cmds.append(f"touch {flag} -c {qp}")
        elif len(have) < 2 or datetime.fromtimestamp(int(have[index])).strftime(TIME_FORMAT) != stamp:
            cmds.append(f"touch {flag} -c -t {stamp} {qp}")
        else:
            continue
        said.append("access time" if flag == "-a" else "modification time")
    return cmds, said
TREE_FMT = "%f 0 %u %g 0 0 1 %U %G"   # Stat's fields without size, inode and links, so sort -u folds alike entries


class Refuse(Exception):
    """A state handler's reason not to go on; the task fails with it."""

    def __init__(self, msg: str, missing: bool = False):
        super().__init__(msg)
        self.missing = missing   # check mode skips these: an earlier task may create what is missing


class File(TaskModule, name="file"):
    description = "Create, remove or link a path, or set its mode and owner"
    aliases = {"dest": "path", "name": "path", "attr": "attributes"}
    schema = {
        vol.Required("path"): str,
        vol.Optional("state", default=None): maybe(vol.In(STATES)),
        vol.Optional("src", default=None): maybe(str),
        **ATTRIBUTES,
        vol.Optional("recurse", default=False): boolean,
        vol.Optional("force", default=False): boolean,
        vol.Optional("follow", default=True): boolean,
        vol.Optional("access_time", default=None): maybe(text),
        vol.Optional("access_time_format", default=TIME_FORMAT): text,
        vol.Optional("modification_time", default=None): maybe(text),
        vol.Optional("modification_time_format", default=TIME_FORMAT): text,
        # internal to Ansible (its action plugins ask it in diff mode), but task files pass it too
        vol.Optional("_diff_peek", default=None): maybe(boolean),
    }

    @dataclass(frozen=True)
    class Params(FileAttributes):
        path: str
        state: str | None = None   # as in Ansible: unset means "whatever is there, with these attributes"
        src: str | None = None
        recurse: bool = False
        force: bool = False
        follow: bool = True
        access_time: str | None = None
        access_time_format: str = TIME_FORMAT
        modification_time: str | None = None
        modification_time_format: str = TIME_FORMAT
        _diff_peek: bool | None = None

        def __post_init__(self) -> None:
            for name in ("access_time", "modification_time"):
                try:
                    touch_stamp(getattr(self, name), getattr(self, f"{name}_format"))
                except ValueError:
                    raise vol.Invalid(f"{name} {getattr(self, name)!r} does not match the format "
                                      f"{getattr(self, name + '_format')!r}", path=[name]) from None
            if self.state in ("link", "hard") and not self.src:
                raise vol.Invalid(f"state {self.state} needs src, the path to link to", path=["src"])
            if self.recurse and self.state not in (None, "directory"):
                raise vol.Invalid("recurse only applies to directories", path=["recurse"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        if p._diff_peek is not None:
            return await self.peek(p, ctx)
        result = await self.ensure(p, ctx)
        path = result.data.get("path", result.data.get("dest", p.path))
        return await with_flags(ctx, result, path, p.attributes if p.state != "absent" else None)

    @staticmethod
    async def peek(p: Params, ctx: TaskContext) -> Result:
        """_diff_peek: only whether the file looks binary (a NUL in its first 8 KiB), changing nothing."""
        res = await quiet(ctx, f"head -c 8192 {q(p.path)} 2>/dev/null | tr -dc '\\000' | wc -c\n")
        if not res.ok:
            return failure(f"could not read {p.path}", res)
        return Result(data={"path": p.path, "appears_binary": res.stdout.strip() not in ("", "0")})

    async def ensure(self, p: Params, ctx: TaskContext) -> Result:
        path, qp = p.path, q(p.path)
        # A link's relative src is relative to the link's own directory.
        src = p.src if not p.src or posixpath.isabs(p.src) else posixpath.join(posixpath.dirname(path), p.src)
        probe = (f"p={qp}\n" + stat_sh('"$p"') + 'if [ -L "$p" ]; then printf \'target %s\\n\' "$(readlink "$p")"\n'
                 + stat_sh('"$p"', "follow", follow=True) + "fi\n" + UMASK_SH +
                 "printf 'times '; stat -L -c '%X %Y' \"$p\" 2>/dev/null || echo\n")
        if src:
            probe += stat_sh(q(src), "src")
        if p.recurse:
            probe += (f"find \"$p\" ! -type l -exec stat -c '{TREE_FMT}' {{}} + 2>/dev/null"
                      " | sort -u | sed 's/^/tree /'\n")
        res = await quiet(ctx, probe + "exit 0\n")
        if not res.ok:
            return failure(f"could not inspect {path}", res)
        tags, _ = tagged(res.stdout)
        lst = Stat.parse(first(tags, "stat"))
        here = Stat.parse(first(tags, "follow")) if lst and lst.kind == "link" and p.follow else lst
        attrs, umask = Attrs(p.mode, p.owner, p.group), int(first(tags, "umask") or "022", 8)
        # Ansible names the path `dest` in what link, hard and touch return, `path` elsewhere.
        key = "dest" if p.state in ("link", "hard", "touch") else "path"
        try:
            cmds, msgs = getattr(self, f"_{p.state or 'attributes'}")(p, tags, lst, here, attrs, umask, qp, src)
        except Refuse as refusal:
            data = {"path": path, "state": "absent" if lst is None else (here or lst).kind}
            if ctx.check and refusal.missing:
                return Result(skipped=True, msg=f"cannot check: {refusal}", data=data)
            return Result(failed=True, msg=str(refusal), data=data)
        if p.state not in ("absent", "link", "hard"):
            times, said = time_commands(p, first(tags, "times"), qp, "now" if p.state == "touch" else "preserve")
            cmds, msgs = cmds + times, msgs + (said if not cmds else [])
        linked = p.state in ("link", "hard") or (lst is not None and lst.kind == "link" and not p.follow)
        before = lst if linked else here
        data = {key: path, **({"src": p.src} if p.state in ("link", "hard") else {}), **stat_data(before)}
        if p.state == "absent":
            data = {"path": path, "state": "absent"}
        if not cmds:
            return Result(msg=f"{path} is as asked", data=data)
        msg = f"{path}: " + ", ".join(msgs)
        if ctx.check:
            return Result(changed=True, msg=msg, data=data)
        after = "" if p.state == "absent" else " && { " + stat_sh(qp, "after", follow=not linked).rstrip() + "; }"
        res = await quiet(ctx, " && ".join(cmds) + after)
        if not res.ok:
            return failure(f"could not update {path}", res)
        if p.state != "absent":
            data.update(stat_data(Stat.parse(first(tagged(res.stdout)[0], "after"))))
        return Result(changed=True, msg=msg, data=data)

    # Each handler returns (shell commands, what they change in words); no commands: nothing to do.

    def _attributes(self, p, tags, lst, here, attrs, umask, qp, src, kind=None):
        if here is None:
            raise Refuse(f"{p.path} does not exist" + (" (a dangling link)" if lst else ""), missing=True)
        if kind and here.kind != kind:
            raise Refuse(f"{p.path} is a {here.kind}, not a {kind}")
        changes = attrs.changes(here, umask)
        recurse = p.recurse and here.kind == "directory"
        if recurse and not changes and any(attrs.changes(Stat.parse(line), umask) for line in tags.get("tree", [])):
            changes = ["attributes of its contents"]
        return (attrs.commands(qp, recurse=recurse) if changes else []), changes

    def _file(self, *args):
        return self._attributes(*args, kind="file")

    def _directory(self, p, tags, lst, here, attrs, umask, qp, src):
        if here is None:
            return [f"mkdir -p {qp}", *attrs.commands(qp, recurse=p.recurse)], ["directory created"]
        return self._attributes(p, tags, lst, here, attrs, umask, qp, src, kind="directory")

    def _absent(self, p, tags, lst, here, attrs, umask, qp, src):
        return ([f"rm -rf {qp}"], ["removed"]) if lst else ([], [])

    def _touch(self, p, tags, lst, here, attrs, umask, qp, src):
        # The times are set by the caller: by default "now", so like Ansible, touch changes them every time.
        if here is None:
            return [f"touch {qp}", *attrs.commands(qp)], ["created"]
        return self._attributes(p, tags, lst, here, attrs, umask, qp, src)

    def _link(self, p, tags, lst, here, attrs, umask, qp, src):
        owner = Attrs(None, p.owner, p.group)
        if lst and lst.kind == "link" and first(tags, "target") == p.src:
            changes = owner.changes(lst, umask)
            return (owner.commands(qp, link=True) if changes else []), changes
        if first(tags, "src") == "absent" and not p.force:
            raise Refuse(f"link source {src} does not exist (set force: true to link anyway)", missing=True)
        cmds = self._clear(p, lst, qp) + [f"ln -s {q(p.src)} {qp}", *owner.commands(qp, link=True)]
        return cmds, ["link created" if lst is None else "link replaced"]

    def _hard(self, p, tags, lst, here, attrs, umask, qp, src):
        target = Stat.parse(first(tags, "src"))
        if target is None:
            raise Refuse(f"hard link source {src} does not exist", missing=True)
        if lst and (lst.dev, lst.inode) == (target.dev, target.inode):
            changes = attrs.changes(lst, umask)
            return (attrs.commands(qp) if changes else []), changes
        if lst is None:
            return [f"ln {q(src)} {qp}", *attrs.commands(qp)], ["hard link created"]
        if not p.force or lst.kind == "directory":
            raise Refuse(f"{p.path} exists and is a {lst.kind}; set force: true to replace it with a hard link")
        tmp = q(f"{p.path}.recipe-{secrets.token_hex(4)}")   # link beside it, then rename over it
        return [f"ln {q(src)} {tmp}", f"mv -f {tmp} {qp}", *attrs.commands(qp)], ["hard link replaced"]

    @staticmethod
    def _clear(p, lst, qp):
        """Commands that remove what stands where a link must go; only links unless force."""
        if lst is None:
            return []
        if lst.kind != "link" and not p.force:
            raise Refuse(f"{p.path} exists and is a {lst.kind}; set force: true to replace it with a link")
        return [f"rmdir {qp}" if lst.kind == "directory" else f"rm -f {qp}"]

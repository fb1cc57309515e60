"""file: make a path a file, directory, link or nothing, with the attributes asked for."""
from __future__ import annotations

import posixpath
import secrets
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._attrs import Attrs, Stat
from modules.tasks._remote import ATTRIBUTES, UMASK_SH, failure, first, maybe, q, quiet, stat_sh, tagged

STATES = ("file", "directory", "absent", "link", "touch", "hard")
TREE_FMT = "%f 0 %u %g 0 0 %U %G"   # Stat's fields without size and inode, so sort -u folds alike entries


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
    }

    @dataclass(frozen=True)
    class Params:
        path: str
        state: str | None = None   # as in Ansible: unset means "whatever is there, with these attributes"
        src: str | None = None
        mode: str | None = None
        owner: str | None = None
        group: str | None = None
        attributes: str | None = None
        unsafe_writes: bool = False
        recurse: bool = False
        force: bool = False

        def __post_init__(self) -> None:
            if self.state in ("link", "hard") and not self.src:
                raise vol.Invalid(f"state {self.state} needs src, the path to link to", path=["src"])
            if self.recurse and self.state not in (None, "directory"):
                raise vol.Invalid("recurse only applies to directories", path=["recurse"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        path, qp = p.path, q(p.path)
        # A link's relative src is relative to the link's own directory.
        src = p.src if not p.src or posixpath.isabs(p.src) else posixpath.join(posixpath.dirname(path), p.src)
        probe = (f"p={qp}\n" + stat_sh('"$p"') + 'if [ -L "$p" ]; then printf \'target %s\\n\' "$(readlink "$p")"\n'
                 + stat_sh('"$p"', "follow", follow=True) + "fi\n" + UMASK_SH)
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
        here = Stat.parse(first(tags, "follow")) if lst and lst.kind == "link" else lst
        attrs, umask = Attrs(p.mode, p.owner, p.group), int(first(tags, "umask") or "022", 8)
        try:
            cmds, msgs = getattr(self, f"_{p.state or 'attributes'}")(p, tags, lst, here, attrs, umask, qp, src)
        except Refuse as refusal:
            if ctx.check and refusal.missing:
                return Result(skipped=True, msg=f"cannot check: {refusal}", data={"path": path})
            return Result(failed=True, msg=str(refusal), data={"path": path})
        data = {"path": path, "state": p.state or (here.kind if here else "absent")}
        if not cmds:
            return Result(msg=f"{path} is as asked", data=data)
        msg = f"{path}: " + ", ".join(msgs)
        if ctx.check:
            return Result(changed=True, msg=msg, data=data)
        res = await quiet(ctx, " && ".join(cmds))
        return Result(changed=True, msg=msg, data=data) if res.ok else failure(f"could not update {path}", res)

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
        # Like Ansible, touch always changes something: the times.
        return [f"touch {qp}", *attrs.commands(qp)], ["created" if here is None else "touched"]

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

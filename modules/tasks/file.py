"""file: make a path a file, directory, link or nothing, with the attributes asked for."""
from __future__ import annotations

import json
import posixpath
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._attrs import Attrs, Stat, target_mode
from modules.tasks._content import stat_data, with_flags
from modules.tasks._remote import (ATTRIBUTES, UMASK_SH, FileAttributes, failure, first, maybe, q, quiet, stat_sh,
                                   tagged, text, text_diff)

STATES = ("file", "directory", "absent", "link", "touch", "hard")
TIME_FORMAT = "%Y%m%d%H%M.%S"       # Ansible's default access_time_format, which is touch -t's too


def touch_stamp(value: str | None, fmt: str) -> str | None:
    """A time option as touch -t takes it; None for none, "now" and "preserve" as they are."""
    if value in (None, "now", "preserve"):
        return value
    return datetime.strptime(value, fmt).strftime(TIME_FORMAT)


def times_sh(var: str, tag: str = "times") -> str:
    """A shell line printing `<tag> <atime> <mtime>` of the path (followed): with nanoseconds where stat has
    them (GNU's %.9X), whole seconds elsewhere, nothing for a missing path."""
    return (f"printf '{tag} '; stat -L -c '%.9X %.9Y' {var} 2>/dev/null || stat -L -c '%X %Y' {var} 2>/dev/null"
            " || echo\n")


def epoch(value: str) -> float:
    """stat's "seconds[.nanoseconds]" as Python's st_mtime computes it (sec + nsec * 1e-9), so equal floats."""
    seconds, _, nanos = value.partition(".")
    return int(seconds) + int(nanos or 0) * 1e-9


def time_commands(p: "File.Params", times: str | None, qp: str,
                  default: str) -> tuple[list[str], list[str], dict[str, float]]:
    """touch commands for access_time and modification_time, what they change, and the times they set
    ({"atime": epoch}, for the diff); default is the value an unset option takes ("now" for state touch,
    else "preserve")."""
    have = (times or "").split()
    cmds, said, new, now = [], [], {}, time.time()    # Ansible's "now": one time.time() for both
    for flag, index, value, fmt in (("-a", 0, p.access_time, p.access_time_format),
                                    ("-m", 1, p.modification_time, p.modification_time_format)):
        stamp = touch_stamp(value or default, fmt)
        if stamp == "preserve":
            continue
        if stamp == "now":
            cmds.append(f"touch {flag} -c {qp}")
            after = now
        elif len(have) < 2 or datetime.fromtimestamp(int(epoch(have[index]))).strftime(TIME_FORMAT) != stamp:
            cmds.append(f"touch {flag} -c -t {stamp} {qp}")
            after = time.mktime(time.strptime(value, fmt))     # Ansible's value: the target's local time
        else:
            continue
        said.append("access time" if flag == "-a" else "modification time")
        new["atime" if flag == "-a" else "mtime"] = after
    return cmds, said, new


TREE_FMT = "%f 0 %u %g 0 0 1 %U %G"   # Stat's fields without size, inode and links, so sort -u folds alike entries
# Every entry under "$p" as `entry <d|f><l|-> ./rel/path`, in find's (readdir) order, which os.walk sees too:
# d for a directory or a link to one (os.walk lists both as directories), l for a link (os.walk enters none).
ENTRIES_SH = ("if [ -d \"$p\" ] && [ ! -L \"$p\" ]; then (cd \"$p\" && find . ! -name . -exec sh -c '"
              "for f; do t=f; [ -d \"$f\" ] && t=d; if [ -L \"$f\" ]; then t=${t}l; else t=${t}-; fi; "
              "printf \"entry %s %s\\n\" \"$t\" \"$f\"; done' sh {} +) 2>/dev/null; fi\n")

Diff = dict[str, dict[str, Any]]


def initial_diff(path: str, state: str, prev: str, content: dict[str, list[str]] | None = None) -> Diff:
    """Ansible's initial_diff: the path, and the state when it changes (with what a removed directory held)."""
    diff: Diff = {"before": {"path": path}, "after": {"path": path}}
    if prev != state:
        diff["before"]["state"], diff["after"]["state"] = prev, state
        if content is not None:
            diff["before"]["path_content"] = content
    return diff


def note(diff: Diff, key: str, before: Any, after: Any) -> None:
    diff["before"][key], diff["after"][key] = before, after


def path_content(top: str, entries: list[str]) -> dict[str, list[str]]:
    """What Ansible lists of a directory it removes: os.walk's order (top-down, each directory's subdirectories
    then its files, in readdir order), from ENTRIES_SH's lines."""
    children: dict[str, list[tuple[str, str]]] = {}
    for line in entries:
        kind, _, rel = line.partition(" ")
        parent, name = posixpath.split(rel)
        children.setdefault(parent, []).append((name, kind))
    content: dict[str, list[str]] = {"directories": [], "files": []}
    stack = [(".", top)]
    while stack:
        rel, base = stack.pop()
        found = children.get(rel, [])
        content["directories"] += [posixpath.join(base, name) for name, kind in found if kind[0] == "d"]
        content["files"] += [posixpath.join(base, name) for name, kind in found if kind[0] != "d"]
        stack += reversed([(posixpath.join(rel, name), posixpath.join(base, name)) for name, kind in found
                           if kind == "d-"])
    return content


def ids_sh(attrs: Attrs) -> str:
    """Shell lines printing `uid <n>`/`gid <n>` for an owner/group given by name: Ansible's diff has numbers."""
    out = ""
    if attrs.owner and not attrs.owner.isdigit():
        out += f"printf 'uid '; id -u {q(attrs.owner)} 2>/dev/null || echo\n"
    if attrs.group and not attrs.group.isdigit():
        out += (f"printf 'gid '; {{ getent group {q(attrs.group)} || awk -F: -v n={q(attrs.group)} '$1 == n' "
                "/etc/group; } 2>/dev/null | head -n 1 | cut -d: -f3\n")
    return out


def id_of(name: str | None, looked_up: str | None) -> int | None:
    if name and name.isdigit():
        return int(name)
    return int(looked_up) if looked_up and looked_up.isdigit() else None


def attribute_diff(diff: Diff, attrs: Attrs, st: Stat, umask: int, tags: dict[str, list[str]]) -> None:
    """What set_fs_attributes_if_different adds for what changes: uid and gid numbers, modes as "0644"."""
    if Attrs(owner=attrs.owner).changes(st, umask):
        note(diff, "owner", st.uid, id_of(attrs.owner, first(tags, "uid")))
    if Attrs(group=attrs.group).changes(st, umask):
        note(diff, "group", st.gid, id_of(attrs.group, first(tags, "gid")))
    if Attrs(mode=attrs.mode).changes(st, umask):
        want = target_mode(attrs.mode, st.mode, st.kind == "directory", umask)
        note(diff, "mode", f"0{st.mode:03o}", f"0{want:03o}")


def shown(diff: Diff, path: str) -> str:
    """The diff as Ansible's callback prints a dict diff: both sides as sorted, indented JSON, diffed."""
    return text_diff(*(json.dumps(diff[side], sort_keys=True, indent=4) + "\n" for side in ("before", "after")), path)


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
            if self.src and self.state not in ("link", "hard"):      # Ansible's words
                raise vol.Invalid("src option requires state to be 'link' or 'hard'", path=["src"])
            if self.state == "hard" and not self.src:    # state link without src updates an existing link
                raise vol.Invalid(f"state {self.state} needs src, the path to link to", path=["src"])
            if self.recurse and self.state not in (None, "directory"):
                raise vol.Invalid("recurse only applies to directories", path=["recurse"])

    diffing = False   # set per run (one instance runs one task): handlers then stat what they create

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        if p._diff_peek is not None:
            return await self.peek(p, ctx)
        p = await self.into_directory(p, ctx)
        result = await self.ensure(p, ctx)
        path = result.data.get("path", result.data.get("dest", p.path))
        attributes = p.attributes if p.state != "absent" else None
        diff = result.data.get("diff")
        if not (diff and attributes):
            return await with_flags(ctx, result, path, attributes)
        # Ansible's diff has the lsattr flags chattr changed: read them first, and ask with_flags alone
        res = await quiet(ctx, f"lsattr -d -- {q(path)} 2>/dev/null | awk '{{print \"flags \" $1}}'; exit 0")
        have = first(tagged(res.stdout)[0], "flags")
        flagged = await with_flags(ctx, result.replace(changed=False), path, attributes)
        if flagged.changed:
            note(diff, "attributes", have.replace("-", "") if have is not None else None,
                 attributes if attributes[0] in "+-=" else "=" + attributes)
            return flagged.replace(diff=shown(diff, path))
        return flagged.replace(changed=result.changed)

    @staticmethod
    async def into_directory(p: Params, ctx: TaskContext) -> Params:
        """A hard link asked for where a directory is goes into it, under src's name, as in Ansible (which
        does this for every state but link and absent; only link and hard take a src)."""
        if p.state != "hard" or not p.src:
            return p
        res = await quiet(ctx, f"[ -d {q(p.path)} ] && echo directory; exit 0")
        if res.stdout.strip() != "directory":
            return p
        return replace(p, path=posixpath.join(p.path, posixpath.basename(p.src.rstrip("/"))))

    @staticmethod
    async def peek(p: Params, ctx: TaskContext) -> Result:
        """_diff_peek: only whether the file looks binary (a NUL in its first 8 KiB), changing nothing."""
        res = await quiet(ctx, f"head -c 8192 {q(p.path)} 2>/dev/null | tr -dc '\\000' | wc -c\n")
        if not res.ok:
            return failure(f"could not read {p.path}", res)
        return Result(data={"path": p.path, "appears_binary": res.stdout.strip() not in ("", "0")})

    async def ensure(self, p: Params, ctx: TaskContext) -> Result:
        path, qp, self.diffing = p.path, q(p.path), ctx.diff
        # A link's relative src is relative to the link's own directory.
        src = p.src if not p.src or posixpath.isabs(p.src) else posixpath.join(posixpath.dirname(path), p.src)
        probe = (f"p={qp}\n" + stat_sh('"$p"') + 'if [ -L "$p" ]; then printf \'target %s\\n\' "$(readlink "$p")"\n'
                 '  printf \'real %s\\n\' "$(readlink -f "$p")"\n'
                 + stat_sh('"$p"', "follow", follow=True) + "fi\n" + UMASK_SH + times_sh('"$p"'))
        if src:
            probe += stat_sh(q(src), "src")
        if p.recurse:
            probe += (f"find \"$p\" ! -type l -exec stat -c '{TREE_FMT}' {{}} + 2>/dev/null"
                      " | sort -u | sed 's/^/tree /'\n")
        if ctx.diff:
            probe += ids_sh(Attrs(p.mode, p.owner, p.group)) + (ENTRIES_SH if p.state == "absent" else "")
        res = await quiet(ctx, probe + "exit 0\n")
        if not res.ok:
            return failure(f"could not inspect {path}", res)
        tags, _ = tagged(res.stdout)
        lst = Stat.parse(first(tags, "stat"))
        here = Stat.parse(first(tags, "follow")) if lst and lst.kind == "link" and p.follow else lst
        attrs, umask = Attrs(p.mode, p.owner, p.group), int(first(tags, "umask") or "022", 8)
        # Ansible names the path `dest` in what link, hard and touch return, `path` elsewhere; file and
        # directory follow a link to the path it resolves to, and name that.
        key = "dest" if p.state in ("link", "hard", "touch") else "path"
        real = first(tags, "real") if p.state in ("file", "directory") and p.follow else None
        # without a state, Ansible makes an absent path a directory when asked to recurse
        handler = p.state or ("directory" if lst is None and p.recurse else "attributes")
        try:
            cmds, msgs = getattr(self, f"_{handler}")(p, tags, lst, here, attrs, umask, qp, src)
        except Refuse as refusal:
            data = {"path": path, "state": stat_data(here or lst)["state"]}
            if ctx.check and refusal.missing:
                return Result(skipped=True, msg=f"cannot check: {refusal}", data=data)
            return Result(failed=True, msg=str(refusal), data=data)
        new_times: dict[str, float] = {}
        if p.state not in ("absent", "link", "hard"):
            times, said, new_times = time_commands(p, first(tags, "times"), qp,
                                                   "now" if p.state == "touch" else "preserve")
            cmds, msgs = cmds + times, msgs + (said if not cmds else [])
        linked = p.state in ("link", "hard") or (lst is not None and lst.kind == "link" and not p.follow)
        before = lst if linked else here
        data = {key: real or path, **({"src": p.src} if p.state in ("link", "hard") else {}), **stat_data(before)}
        if p.state == "absent":
            data = {"path": path, "state": "absent"}
        made: dict[str, list[str]] = {}
        msg = f"{path}: " + ", ".join(msgs) if cmds else f"{path} is as asked"
        if cmds and not ctx.check:
            after = "" if p.state == "absent" else " && { " + stat_sh(qp, "after", follow=not linked).rstrip() + "; }"
            res = await quiet(ctx, " && ".join(cmds) + after)
            if not res.ok:
                return failure(f"could not update {path}", res)
            made = tagged(res.stdout)[0]
            if p.state != "absent":
                data.update(stat_data(Stat.parse(first(made, "after"))))
        result = Result(changed=bool(cmds), msg=msg, data=data)
        if not ctx.diff:
            return result
        diff = self.diff(p, tags, made, lst, here, before, attrs, umask, real, new_times, ctx.check)
        return result if diff is None else result.replace(data={**data, "diff": diff}, diff=shown(diff, path))

    @staticmethod
    def diff(p: Params, tags: dict[str, list[str]], made: dict[str, list[str]], lst: Stat | None,
             here: Stat | None, before: Stat | None, attrs: Attrs, umask: int, real: str | None,
             new_times: dict[str, float], check: bool) -> Diff | None:
        """Ansible's diff of what the task did (or would do, in check mode); None where Ansible returns none.

        The attributes' and times' before is what the path had (`before`: the link itself for link and hard),
        or, for what the task created, what it had once created (the `made` stat the handlers take): Ansible
        sets a new path's attributes after it too.
        """
        prev = stat_data(lst)["state"]
        if p.state == "absent" and lst is None:
            return None                               # nothing removed, and ensure_absent says nothing
        if p.state == "touch" and check and lst is None:
            return None                               # execute_touch returns before it builds a diff
        state, path = p.state or prev, p.path
        if real and lst is not None and lst.kind == "link":
            path, prev = real, stat_data(here)["state"]     # file and directory work on what a link resolves to
        content = path_content(p.path, tags.get("entry", [])) if prev == "directory" else None
        diff = initial_diff(path, state, prev, content if state == "absent" else None)
        target = first(tags, "target")
        if p.state in ("link", "hard") and lst is not None and lst.kind == "link" and target != p.src:
            note(diff, "src", target, p.src)
        if state == "absent" or (check and lst is None):
            return diff
        base = Stat.parse(first(made, "made")) or before
        if base is not None:
            attribute_diff(diff, Attrs(None, p.owner, p.group) if p.state == "link" else attrs, base, umask, tags)
        have = (first(made, "made_times") or first(tags, "times") or "").split()
        for index, name in enumerate(("atime", "mtime")):
            if name in new_times and len(have) == 2:
                note(diff, name, epoch(have[index]), new_times[name])
        return diff

    def _made(self, qp: str, link: bool = False) -> list[str]:
        """In diff mode, a stat of what a handler has just created, before its attributes are set."""
        if not self.diffing:
            return []
        return ["{ " + stat_sh(qp, "made", follow=not link).rstrip() + "; " + times_sh(qp, "made_times").rstrip()
                + "; }"]

    # Each handler returns (shell commands, what they change in words); no commands: nothing to do.

    def _attributes(self, p, tags, lst, here, attrs, umask, qp, src, kind=None):
        if here is None:       # Ansible's words: without a state, an absent path is asked to be a file
            raise Refuse(f"file ({p.path}) is absent, cannot continue", missing=True)
        state = stat_data(here)["state"]      # as Ansible names it: a file with several names is 'hard'
        if kind == "file" and here.kind != "file":
            raise Refuse(f"file ({p.path}) is {state}, cannot continue")
        if kind and here.kind != kind:
            raise Refuse(f"{p.path} already exists as a {state}")
        changes = attrs.changes(here, umask)
        recurse = p.recurse and here.kind == "directory"
        if recurse and not changes and any(attrs.changes(Stat.parse(line), umask) for line in tags.get("tree", [])):
            changes = ["attributes of its contents"]
        return (attrs.commands(qp, recurse=recurse) if changes else []), changes

    def _file(self, *args):
        return self._attributes(*args, kind="file")

    def _directory(self, p, tags, lst, here, attrs, umask, qp, src):
        if here is None:
            # As Ansible does, every directory this makes gets the attributes, not only the last one.
            parts = [part for part in p.path.split("/") if part]
            above = ["/" * p.path.startswith("/") + "/".join(parts[:end]) for end in range(1, len(parts))]
            cmds = [" && ".join([f"{{ [ -e {q(d)} ] || {{ mkdir {q(d)}", *attrs.commands(q(d))]) + "; }; }"
                    for d in above]
            cmds += [f"mkdir {qp}", *self._made(qp), *attrs.commands(qp, recurse=p.recurse)]
            return cmds, ["directory created"]
        return self._attributes(p, tags, lst, here, attrs, umask, qp, src, kind="directory")

    def _absent(self, p, tags, lst, here, attrs, umask, qp, src):
        return ([f"rm -rf {qp}"], ["removed"]) if lst else ([], [])

    def _touch(self, p, tags, lst, here, attrs, umask, qp, src):
        # The times are set by the caller: by default "now", so like Ansible, touch changes them every time.
        if here is None:
            return [f"touch {qp}", *self._made(qp), *attrs.commands(qp)], ["created"]
        return self._attributes(p, tags, lst, here, attrs, umask, qp, src)

    def _link(self, p, tags, lst, here, attrs, umask, qp, src):
        owner = Attrs(None, p.owner, p.group)
        if not p.src and not (lst and lst.kind == "link"):
            raise Refuse("src is required for creating new symlinks")
        # with follow (the default) Ansible sets mode, owner and group on what the link points to, else on the link
        target = (Stat.parse(first(tags, "src")) if p.src else here) if p.follow else None
        if lst and lst.kind == "link" and (not p.src or first(tags, "target") == p.src):   # no src: keep it
            if target is not None:
                changes = attrs.changes(target, umask)
                return (attrs.commands(qp) if changes else []), changes
            changes = owner.changes(lst, umask)
            return (owner.commands(qp, link=True) if changes else []), changes
        if first(tags, "src") == "absent" and not p.force:
            raise Refuse(f"link source {src} does not exist (set force: true to link anyway)", missing=True)
        settings = attrs.commands(qp) if target is not None else owner.commands(qp, link=True)
        cmds = self._clear(p, lst, qp) + [f"ln -s {q(p.src)} {qp}", *self._made(qp, link=True), *settings]
        return cmds, ["link created" if lst is None else "link replaced"]

    def _hard(self, p, tags, lst, here, attrs, umask, qp, src):
        target = Stat.parse(first(tags, "src"))
        if target is None:
            raise Refuse(f"hard link source {src} does not exist", missing=True)
        if lst and (lst.dev, lst.inode) == (target.dev, target.inode):
            changes = attrs.changes(lst, umask)
            return (attrs.commands(qp) if changes else []), changes
        if lst is None:
            return [f"ln {q(src)} {qp}", *self._made(qp), *attrs.commands(qp)], ["hard link created"]
        if not p.force or lst.kind == "directory":
            raise Refuse(f"{p.path} exists and is a {lst.kind}; set force: true to replace it with a hard link")
        tmp = q(f"{p.path}.recipe-{secrets.token_hex(4)}")   # link beside it, then rename over it
        cmds = [f"ln {q(src)} {tmp}", f"mv -f {tmp} {qp}", *self._made(qp), *attrs.commands(qp)]
        return cmds, ["hard link replaced"]

    @staticmethod
    def _clear(p, lst, qp):
        """Commands that remove what stands where a link must go; only links unless force."""
        if lst is None:
            return []
        if lst.kind != "link" and not p.force:
            raise Refuse(f"{p.path} exists and is a {lst.kind}; set force: true to replace it with a link")
        return [f"rmdir {qp}" if lst.kind == "directory" else f"rm -f {qp}"]

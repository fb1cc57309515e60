"""What the modules that edit one configuration file (sysctl, mount, pam_limits, pamd, cron, authorized_key...)
share: their file options, and one read-edit-write of a small text file.

The file is read with one probe (its stat line, then its bytes as od's hex dump, so text that is not UTF-8
survives as surrogate escapes), edited here on the controller, and when it changed written back with one
script: the new text on stdin, into a temporary file beside it, renamed over it (readers never see half).
"""
from __future__ import annotations

import posixpath
import secrets
from dataclasses import dataclass
from typing import Callable

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext
from engine.recipe.schema import file_mode
from modules.tasks._attrs import Attrs, Stat, new_mode
from modules.tasks._remote import CONTENT, UMASK_SH, first, maybe, q, quiet, stat_sh, tagged, tail, text, text_diff

# Ansible's common file arguments these modules take; only the three their users set.
FILE_ATTRS = {
    vol.Optional("mode", default=None): maybe(file_mode),
    vol.Optional("owner", default=None): maybe(text),
    vol.Optional("group", default=None): maybe(text),
}

# old text (None: no file) -> (new text, what changed in words); None or the old text: nothing to write
Edit = Callable[[str | None], tuple[str | None, str]]


@dataclass(frozen=True)
class TextFile:
    """A file as the probe found it."""

    path: str                 # links followed
    stat: Stat | None
    umask: int
    text: str | None          # None: missing


async def read_file(ctx: TaskContext, path: str) -> TextFile | Result:
    probe = (f"f={q(path)}\n"
             '[ -L "$f" ] && f=$(readlink -f "$f")\n'
             f"printf 'path %s\\n' \"$f\"\n{UMASK_SH}" + stat_sh('"$f"') +
             f'[ -f "$f" ] && echo {CONTENT} && od -An -v -tx1 "$f"; exit 0\n')
    res = await quiet(ctx, probe)
    if not res.ok:
        return Result(failed=True, msg=f"could not read {path}: {tail(res.stderr) or res.rc}")
    tags, dump = tagged(res.stdout)
    st = Stat.parse(first(tags, "stat"))
    if st and st.kind != "file":
        return Result(failed=True, msg=f"{path} is a {st.kind}, not a regular file")
    content = bytes.fromhex(dump or "").decode("utf-8", "surrogateescape") if st else None
    return TextFile(first(tags, "path") or path, st, int(first(tags, "umask") or "022", 8), content)


async def write_file(ctx: TaskContext, found: TextFile, new: str, attrs: Attrs, backup: bool = False,
                     mkdir: bool = False) -> Result | str:
    """Write new over the file; the backup's name ("" for none), or a failed Result."""
    dest, st = found.path, found.stat
    directory = posixpath.dirname(dest) or "."
    tmp = q(posixpath.join(directory, f".{posixpath.basename(dest)}.recipe-{secrets.token_hex(4)}"))
    steps = [f"mkdir -p {q(directory)}"] if mkdir else []
    if backup and st:
        steps.append(f'b={q(dest)}.$$.$(date +%Y-%m-%d@%H:%M:%S)~ && cp -p {q(dest)} "$b" && '
                     'printf \'backup %s\\n\' "$b"')
    steps += ["umask 077", f"cat > {tmp}"]      # unreadable to others until chmod
    if st:                                      # keep the replaced file's owner where we may
        steps.append(f"{{ chown {st.uid}:{st.gid} {tmp} 2>/dev/null || :; }}")
    steps += Attrs(None, attrs.owner, attrs.group).commands(tmp)
    steps += [f"chmod {new_mode(attrs, st, found.umask):04o} {tmp}", f"mv -f {tmp} {q(dest)}"]
    script = "{ " + " && ".join(steps) + f"; }}; rc=$?; rm -f {tmp} 2>/dev/null; exit $rc"
    res = await quiet(ctx, script, stdin=new.encode("utf-8", "surrogateescape"))
    if not res.ok:
        return Result(failed=True, msg=f"could not write {dest}: {tail(res.stderr) or res.rc}")
    return first(tagged(res.stdout)[0], "backup") or ""


async def edit_file(ctx: TaskContext, path: str, edit: Edit, attrs: Attrs = Attrs(), *, create: bool = True,
                    backup: bool = False) -> Result:
    """Read path, edit its text, write it back when it changed; set the asked attributes.

    A missing file is passed to edit as None; it is created only when create is true and edit gives text.
    data["backup_file"] names the backup when one was made.
    """
    found = await read_file(ctx, path)
    if isinstance(found, Result):
        return found
    new, msg = edit(found.text)
    rewrite = new is not None and new != found.text and (found.stat is not None or create)
    changes = attrs.changes(found.stat, found.umask) if found.stat else []
    if not rewrite and not changes:
        return Result(msg=msg or f"{path} is up to date")
    msg = "; ".join(filter(None, [msg if rewrite else "", ", ".join(changes)]))
    diff = text_diff(found.text, new, path) if rewrite and new is not None else ""
    if ctx.check:
        return Result(changed=True, msg=msg, diff=diff)
    if rewrite and new is not None:
        written = await write_file(ctx, found, new, attrs, backup, mkdir=found.stat is None)
        if isinstance(written, Result):
            return written
        return Result(changed=True, msg=msg, diff=diff, data={"backup_file": written} if written else {})
    res = await quiet(ctx, " && ".join(attrs.commands(q(found.path))))
    if not res.ok:
        return Result(failed=True, msg=f"could not set the attributes of {path}: {tail(res.stderr)}")
    return Result(changed=True, msg=msg)

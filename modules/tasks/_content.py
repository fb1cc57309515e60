"""The two ways modules write a file: whole content (copy, template) and an edit (lineinfile, blockinfile).

Both take one probe round trip to read the state, and when something must
change, one upload and one script that renames the new file into place.
"""
from __future__ import annotations

import hashlib
import posixpath
import time
from typing import Callable

from engine.build.taskmodule import Result, TaskContext
from modules.tasks._attrs import STAT_FMT, Attrs, Stat, new_mode
from modules.tasks._remote import (CONTENT, DIFF_LIMIT, UMASK_SH, failure, first, install_script, payload, q, quiet,
                                   stat_sh, tagged, text_diff, unstage)


def _backup_name(path: str) -> str:
    return f"{path}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~"


async def _write(ctx: TaskContext, data: bytes, path: str, attrs: Attrs, umask: int, existing: Stat | None,
                 backup: bool, mkdir: bool) -> tuple[Result | None, str | None]:
    """Upload and install data at path; return (failure or None, backup file name)."""
    backup_file = _backup_name(path) if backup and existing else None
    upload, stdin = await payload(ctx, data)
    try:
        res = await quiet(ctx, install_script(upload, path, new_mode(attrs, existing, umask), attrs, existing,
                                              backup_file, mkdir), stdin=stdin)
    finally:
        if upload:
            await unstage(ctx, upload)
    return (failure(f"could not write {path}", res) if not res.ok else None), backup_file


async def _set_attrs(ctx: TaskContext, path: str, attrs: Attrs) -> Result | None:
    res = await quiet(ctx, " && ".join(attrs.commands(q(path))))
    return failure(f"could not set the attributes of {path}", res) if not res.ok else None


async def put_content(ctx: TaskContext, data: bytes, dest: str, attrs: Attrs, *, basename: str | None = None,
                      force: bool = True, backup: bool = False) -> Result:
    """Make dest hold data. basename (a local source's name) is used when dest is a directory."""
    want = hashlib.sha256(data).hexdigest()
    if dest.endswith("/") and not basename:
        return Result(failed=True, msg=f"dest {dest} names a directory; give a file path to write content to")
    into = (f'case $d in */) d=${{d}}{q(basename)};; *) [ -d "$d" ] && d=${{d}}/{q(basename)};; esac\n'
            if basename else "")
    parent = dest if dest.endswith("/") else posixpath.dirname(dest) or "."   # into a directory: it exists
    probe = (f"d={q(dest)}\n{into}printf 'path %s\\n' \"$d\"\n{UMASK_SH}"
             f"[ -d {q(parent)} ] && echo parent\n"
             f"if st=$(stat -c '{STAT_FMT}' \"$d\" 2>/dev/null); then printf 'stat %s\\n' \"$st\"\n"
             "else echo stat absent; fi\n"
             'if [ -f "$d" ] && [ ! -L "$d" ]; then s=$(sha256sum < "$d") && s=${s%% *} && echo "sum $s"\n'
             f'  set -- $st; [ "$s" != {want} ] && [ "$2" -le {DIFF_LIMIT} ] && echo {CONTENT} && cat "$d"\n'
             'fi; exit 0\n')
    res = await quiet(ctx, probe)
    if not res.ok:
        return failure(f"could not inspect {dest}", res)
    tags, old = tagged(res.stdout)
    path, st = first(tags, "path") or dest, Stat.parse(first(tags, "stat"))
    umask = int(first(tags, "umask") or "022", 8)
    data_out = {"dest": path, "checksum": want}
    if st and st.kind == "directory":
        return Result(failed=True, msg=f"dest {path} is a directory", data=data_out)
    mkdir = dest.endswith("/")
    if "parent" not in tags and not mkdir and not ctx.check:   # in check mode, an earlier task may be its maker
        return Result(failed=True, msg=f"the directory of {path} does not exist", data=data_out)
    regular = st is not None and st.kind == "file"
    rewrite = not regular or (force and first(tags, "sum") != want)   # a link or a device is replaced
    changes = (["content"] if rewrite else []) + (attrs.changes(st, umask) if regular else [])
    if not changes:
        return Result(msg=f"{path} is up to date", data=data_out)
    diff = ""
    if rewrite and b"\0" not in data and len(data) <= DIFF_LIMIT and (old is not None or not regular):
        diff = text_diff(old if regular else None, data.decode(errors="replace"), path)
    msg = f"{path}: " + (("created" if st is None else "changed") if rewrite else ", ".join(changes))
    if ctx.check:
        return Result(changed=True, msg=msg, diff=diff, data=data_out)
    backup_file = None
    if rewrite:
        problem, backup_file = await _write(ctx, data, path, attrs, umask, st if regular else None, backup, mkdir)
    else:
        problem = await _set_attrs(ctx, path, attrs)
    if problem:
        return problem.replace(data=data_out)
    return Result(changed=True, msg=msg, diff=diff,
                  data={**data_out, **({"backup_file": backup_file} if backup_file else {})})


# An edit: old text (None when the file is missing) -> (new text, message); new None or == old: no change.
Edit = Callable[[str | None], tuple[str | None, str]]


async def edit_text(ctx: TaskContext, path: str, edit: Edit, attrs: Attrs, *, create: bool, absent: bool,
                    backup: bool) -> Result:
    """Read path once, edit its text here, and write it back when it changed.

    The content travels as od's hex dump, so bytes that are not UTF-8 survive
    (as surrogate escapes) instead of being replaced. Links are followed, as
    Ansible does, so the real file is edited rather than the link replaced.
    """
    probe = (f"f={q(path)}\n"
             '[ -L "$f" ] && f=$(readlink -f "$f")\n'
             f"printf 'path %s\\n' \"$f\"\n{UMASK_SH}" + stat_sh('"$f"') +
             f'[ -f "$f" ] && echo {CONTENT} && od -An -v -tx1 "$f"; exit 0\n')
    res = await quiet(ctx, probe)
    if not res.ok:
        return failure(f"could not read {path}", res)
    tags, dump = tagged(res.stdout)
    real, st = first(tags, "path") or path, Stat.parse(first(tags, "stat"))
    umask = int(first(tags, "umask") or "022", 8)
    if st and st.kind != "file":
        return Result(failed=True, msg=f"{path} is a {st.kind}, not a regular file")
    if st is None and absent:
        return Result(msg=f"{path} does not exist, nothing to remove")
    if st is None and not create:
        if ctx.check:   # an earlier task, not run in check mode, may be the one that creates it
            return Result(skipped=True, msg=f"cannot check: {path} does not exist (yet)")
        return Result(failed=True, msg=f"{path} does not exist (set create: true to create it)")
    old = bytes.fromhex(dump or "").decode("utf-8", "surrogateescape") if st else None
    new, msg = edit(old)
    rewrite = new is not None and new != old
    changes = attrs.changes(st, umask) if st else []
    if not rewrite and not changes:
        return Result(msg=msg or f"{path} is up to date")
    msg = "; ".join(filter(None, [msg if rewrite else "", ", ".join(changes)]))
    diff = text_diff(old, new, path) if rewrite else ""
    if ctx.check:
        return Result(changed=True, msg=msg, diff=diff)
    backup_file = None
    if rewrite:
        data = new.encode("utf-8", "surrogateescape")
        problem, backup_file = await _write(ctx, data, real, attrs, umask, st, backup, mkdir=st is None)
    else:
        problem = await _set_attrs(ctx, real, attrs)
    return problem or Result(changed=True, msg=msg, diff=diff,
                             data={"backup_file": backup_file} if backup_file else {})

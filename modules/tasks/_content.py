"""The two ways modules write a file: whole content (copy, template) and an edit (lineinfile, blockinfile).

Both take one probe round trip to read the state, and when something must
change, one upload and one script that renames the new file into place.
"""
from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.build.taskmodule import Result, TaskContext
from engine.remote.connection import CommandResult
from modules.tasks._attrs import STAT_FMT, Attrs, Stat, new_mode
from modules.tasks._remote import (CONTENT, DIFF_LIMIT, UMASK_SH, VALIDATE_FAILED, expanded_word, failure, first,
                                   install_script, payload, q, quiet, stat_sh, tagged, text_diff, unstage)


@dataclass(frozen=True)
class WriteOptions:
    """How a whole-file write is made, with the names of Ansible's options."""

    force: bool = True                 # replace a file whose content differs (else only create a missing one)
    backup: bool = False               # keep the replaced file as <path>.<pid>.<date>@<time>~
    validate: str | None = None        # a command, %s the new file, that must succeed before it goes in place
    follow: bool = False               # dest is a link: write the file it points to instead of replacing it
    flags: str | None = None           # chattr attributes ("+i")


def validate_problem(validate: str | None) -> str | None:
    """Ansible's check of `validate`, made before anything runs."""
    if validate is not None and "%s" not in validate:
        return f"validate must contain %s: {validate}"     # Ansible's words: content asserts on them
    return None


def stat_data(st: Stat | None) -> dict:
    """Ansible's file return values (mode, owner, ...) for what stat saw."""
    if st is None:
        return {"state": "absent"}
    state = {"file": "file", "directory": "directory", "link": "link"}.get(st.kind, "file")
    if state == "file" and st.links > 1:
        state = "hard"       # as Ansible's add_path_info says of a file with several names
    return {"mode": f"{st.mode:04o}", "owner": st.user, "group": st.group, "uid": st.uid, "gid": st.gid,
            "size": st.size, "state": state}


def _validate_failure(res: CommandResult) -> Result | None:
    """The Result of a write that validate refused, registered as Ansible's copy registers it, or None."""
    out, marker, rest = res.stdout.partition(VALIDATE_FAILED)
    if not marker:
        return None
    status = int(rest.split()[0]) if rest.split() and rest.split()[0].isdigit() else 1
    out, err = out.rstrip("\n"), res.stderr.rstrip("\n")
    return Result(failed=True, msg="failed to validate", data={
        "exit_status": status, "stdout": out, "stderr": err, "stdout_lines": out.splitlines(),
        "stderr_lines": err.splitlines()})


async def _write(ctx: TaskContext, data: bytes, path: str, attrs: Attrs, umask: int, existing: Stat | None,
                 options: WriteOptions, mkdir: bool) -> tuple[Result | None, dict[str, list[str]]]:
    """Upload and install data at path; return (failure or None, the script's tags: backup, after)."""
    upload, stdin = await payload(ctx, data)
    try:
        res = await quiet(ctx, install_script(upload, path, new_mode(attrs, existing, umask), attrs, existing,
                                              options.backup and existing is not None, mkdir, options.validate),
                          stdin=stdin)
    finally:
        if upload:
            await unstage(ctx, upload)
    if not res.ok:
        return _validate_failure(res) or failure(f"could not write {path}", res), {}
    return None, tagged(res.stdout)[0]


async def _set_attrs(ctx: TaskContext, path: str, attrs: Attrs) -> tuple[Result | None, Stat | None]:
    res = await quiet(ctx, " && ".join(attrs.commands(q(path))) + "\n" + stat_sh(q(path), "after"))
    if not res.ok:
        return failure(f"could not set the attributes of {path}", res), None
    return None, Stat.parse(first(tagged(res.stdout)[0], "after"))


def _flags_wanted(attributes: str) -> tuple[str, str]:
    """(chattr operator, letters): "+i" adds, "-i" removes, "i" or "=i" sets exactly, as in Ansible."""
    if attributes[:1] in ("+", "-", "="):
        return attributes[0], attributes[1:]
    return "=", attributes


async def ensure_flags(ctx: TaskContext, path: str, attributes: str | None) -> tuple[bool, Result | None]:
    """chattr path when its lsattr flags differ from attributes, as Ansible decides it: (changed, failure)."""
    if not attributes:
        return False, None
    op, letters = _flags_wanted(attributes)
    if not letters:
        return False, None
    res = await quiet(ctx, f"lsattr -d -- {q(path)} 2>/dev/null | awk '{{print \"flags \" $1}}'; exit 0")
    have = (first(tagged(res.stdout)[0], "flags") or "").replace("-", "")
    if have == letters and op != "-":
        return False, None
    if ctx.check:
        return True, None
    res = await quiet(ctx, f"chattr {q(op + letters)} -- {q(path)}")
    if not res.ok:
        return False, failure(f"chattr {op}{letters} failed on {path}", res)
    return True, None


CONTENT_INTO_DIRECTORY = "can not use content with a dir as dest"    # Ansible's copy's words


async def put_content(ctx: TaskContext, data: bytes, dest: str, attrs: Attrs, *, basename: str | None = None,
                      options: WriteOptions = WriteOptions()) -> Result:
    """Make dest hold data. basename (a local source's name) is used when dest is a directory.

    The registered value is Ansible's copy's: dest, checksum (sha1), size, mode, owner, group, uid, gid,
    state, and md5sum and backup_file when the file was written, path when it was not.
    """
    want = hashlib.sha256(data).hexdigest()
    if dest.endswith("/") and not basename:
        return Result(failed=True, msg=CONTENT_INTO_DIRECTORY)
    into = (f'case $d in */) d=${{d}}{q(basename)};; *) [ -d "$d" ] && d=${{d}}/{q(basename)};; esac\n'
            if basename else "")
    follow = '[ -L "$d" ] && d=$(readlink -f "$d")\n' if options.follow else ""
    parent = dest if dest.endswith("/") else posixpath.dirname(dest) or "."   # into a directory: it exists
    probe = (f"d={q(dest)}\n{into}{follow}printf 'path %s\\n' \"$d\"\n{UMASK_SH}"
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
    data_out = {"dest": path, "checksum": hashlib.sha1(data).hexdigest()}
    if st and st.kind == "directory":
        return Result(failed=True, msg=CONTENT_INTO_DIRECTORY if basename is None else f"dest {path} is a directory",
                      data=data_out)
    mkdir = dest.endswith("/")
    if "parent" not in tags and not mkdir and not ctx.check:   # in check mode, an earlier task may be its maker
        return Result(failed=True, msg=f"Destination directory {posixpath.dirname(path)} does not exist",
                      data=data_out)
    regular = st is not None and st.kind == "file"
    rewrite = not regular or (options.force and first(tags, "sum") != want)   # a link or a device is replaced
    changes = (["content"] if rewrite else []) + (attrs.changes(st, umask) if regular else [])
    if not changes:
        flagged, problem = await ensure_flags(ctx, path, options.flags)
        unchanged = {**data_out, "path": path, **stat_data(st)}
        if problem or flagged:
            return (problem or Result(changed=True, msg=f"{path}: attributes changed")).replace(data=unchanged)
        return Result(msg=f"{path} is up to date", data=unchanged)
    diff = ""
    if rewrite and b"\0" not in data and len(data) <= DIFF_LIMIT and (old is not None or not regular):
        diff = text_diff(old if regular else None, data.decode(errors="replace"), path)
    msg = f"{path}: " + (("created" if st is None else "changed") if rewrite else ", ".join(changes))
    data_out.update(md5sum=hashlib.md5(data).hexdigest(), size=len(data), state="file")
    if ctx.check:
        return Result(changed=True, msg=msg, diff=diff, data=data_out)
    if rewrite:
        problem, out = await _write(ctx, data, path, attrs, umask, st if regular else None, options, mkdir)
        after = Stat.parse(first(out, "after"))
        data_out.update({"backup_file": first(out, "backup")} if "backup" in out else {}, src=first(out, "src"))
    else:
        problem, after = await _set_attrs(ctx, path, attrs)
    if not problem:
        problem = (await ensure_flags(ctx, path, options.flags))[1]
    if problem:
        return problem.replace(data={**data_out, **problem.data})
    return Result(changed=True, msg=msg, diff=diff, data={**data_out, **stat_data(after)})


async def with_flags(ctx: TaskContext, result: Result, path: str, attributes: str | None) -> Result:
    """result, after chattr made path's attributes the ones asked for (a change if it had to)."""
    if result.failed or result.skipped or not attributes:
        return result
    flagged, problem = await ensure_flags(ctx, path, attributes)
    if problem:
        return problem.replace(data=result.data)
    return result.replace(changed=True) if flagged else result


def source_mode(local: Path) -> str:
    """mode: preserve, for a local source: its permission bits as an octal string."""
    return f"0{local.stat().st_mode & 0o7777:o}"


async def put_remote(ctx: TaskContext, src: str, dest: str, attrs: Attrs, *, preserve: bool,
                     options: WriteOptions = WriteOptions()) -> Result:
    """copy with remote_src: make dest a copy of src, a file already on the target."""
    into = f'[ -d "$d" ] && d=${{d%/}}/{q(posixpath.basename(src))}\n'
    follow = '[ -L "$d" ] && d=$(readlink -f "$d")\n' if options.follow else ""
    # src and dest expanded on the target ($HOME/.ssh/authorized_keys), as Ansible expands a path option
    probe = (f"s={expanded_word(src)}; d={expanded_word(dest)}\n{into}{follow}printf 'path %s\\n' \"$d\"\n"
             f"printf 'srcpath %s\\n' \"$s\"\n{UMASK_SH}"
             + stat_sh('"$s"', "src", follow=True) + stat_sh('"$d"') +
             '[ -f "$s" ] && { c=$(sha1sum < "$s") && echo "srcsum ${c%% *}"\n'
             '  m=$(md5sum < "$s") && echo "md5 ${m%% *}"; }\n'
             '[ -f "$d" ] && [ ! -L "$d" ] && c=$(sha1sum < "$d") && echo "sum ${c%% *}"\n'
             '[ -d "$(dirname "$d")" ] && echo parent; exit 0\n')
    res = await quiet(ctx, probe)
    if not res.ok:
        return failure(f"could not inspect {src} and {dest}", res)
    tags, _ = tagged(res.stdout)
    path, source, st = first(tags, "path") or dest, Stat.parse(first(tags, "src")), Stat.parse(first(tags, "stat"))
    src = first(tags, "srcpath") or src
    umask = int(first(tags, "umask") or "022", 8)
    if source is None:
        return Result(failed=True, msg=f"Source {src} not found")
    if source.kind != "file":
        return Result(failed=True, msg=f"src {src} is a {source.kind}: with remote_src only a file is copied")
    if st and st.kind == "directory":
        return Result(failed=True, msg=f"dest {path} is a directory")
    if "parent" not in tags and not ctx.check:
        return Result(failed=True, msg=f"Destination directory {posixpath.dirname(path)} does not exist")
    attrs = Attrs(f"0{source.mode:o}", attrs.owner, attrs.group) if preserve else attrs
    data_out = {"dest": path, "src": src, "checksum": first(tags, "srcsum")}
    regular = st is not None and st.kind == "file"
    rewrite = not regular or (options.force and first(tags, "sum") != first(tags, "srcsum"))
    changes = (["content"] if rewrite else []) + (attrs.changes(st, umask) if regular else [])
    if not changes:
        return Result(msg=f"{path} is up to date", data={**data_out, "path": path, **stat_data(st)})
    msg = f"{path}: " + (("created" if st is None else "changed") if rewrite else ", ".join(changes))
    data_out.update(md5sum=first(tags, "md5"), size=source.size, state="file")
    if ctx.check:
        return Result(changed=True, msg=msg, data=data_out)
    if rewrite:
        script = install_script(src, path, new_mode(attrs, st if regular else None, umask), attrs,
                                st if regular else None, options.backup and regular, False, options.validate,
                                keep_source=True)
        res = await quiet(ctx, script)
        if not res.ok:
            return (_validate_failure(res) or failure(f"could not write {path}", res)).replace(data=data_out)
        out = tagged(res.stdout)[0]
        problem, after = None, Stat.parse(first(out, "after"))
        data_out.update({"backup_file": first(out, "backup")} if "backup" in out else {})
    else:
        problem, after = await _set_attrs(ctx, path, attrs)
    problem = problem or (await ensure_flags(ctx, path, options.flags))[1]
    return problem or Result(changed=True, msg=msg, data={**data_out, **stat_data(after)})


def split_lines(content: str) -> list[str]:
    """Lines with their "\\n", split on "\\n" only (str.splitlines also splits on \\f, \\x1c...)."""
    parts = content.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


# An edit: old text (None when the file is missing) -> (new text, message); new None or == old: no change.
Edit = Callable[[str | None], tuple[str | None, str]]
ATTRS_CHANGED = "ownership, perms or SE linux context changed"   # Ansible's words for lineinfile, blockinfile


@dataclass(frozen=True)
class EditOptions:
    """What lineinfile and blockinfile share, with Ansible's names; the messages are each module's own."""

    create: bool = False
    absent: bool = False               # state: absent: a missing file is no failure
    backup: bool = False
    validate: str | None = None
    flags: str | None = None
    missing: str = "Destination {path} does not exist !"    # the failure when the file is missing
    not_present: str = "file not present"                   # state absent, no file


def _created(creator: str | None, umask: int) -> Stat:
    """The file the edit would create, before its attributes are set: the umask's mode, the creator's ids."""
    uid, gid, user, group = (creator or "0 0 root root").split(" ", 3)
    return Stat("file", 0o666 & ~umask, 0, int(uid), int(gid), 0, 0, user, group)


async def edit_text(ctx: TaskContext, path: str, edit: Edit, attrs: Attrs, options: EditOptions) -> Result:
    """Read path once, edit its text here, and write it back when it changed.

    The content travels as od's hex dump, so bytes that are not UTF-8 survive
    (as surrogate escapes) instead of being replaced. Links are followed, as
    Ansible does, so the real file is edited rather than the link replaced.
    A backup's name is returned in data["backup_file"].
    """
    probe = (f"f={q(path)}\n"
             '[ -L "$f" ] && f=$(readlink -f "$f")\n'
             f"printf 'path %s\\n' \"$f\"\n{UMASK_SH}" + stat_sh('"$f"') +
             # who would create it: Ansible creates a file, then reports the attributes it had to change
             '[ -e "$f" ] || printf \'creator %s %s %s %s\\n\' "$(id -u)" "$(id -g)" "$(id -un)" "$(id -gn)"\n'
             f'[ -f "$f" ] && echo {CONTENT} && od -An -v -tx1 "$f"; exit 0\n')
    res = await quiet(ctx, probe)
    if not res.ok:
        return failure(f"could not read {path}", res)
    tags, dump = tagged(res.stdout)
    real, st = first(tags, "path") or path, Stat.parse(first(tags, "stat"))
    umask = int(first(tags, "umask") or "022", 8)
    if st and st.kind != "file":
        return Result(failed=True, msg=f"{path} is a {st.kind}, not a regular file")
    if st is None and options.absent:
        return Result(msg=options.not_present.format(path=path))
    if st is None and not options.create:
        if ctx.check:   # an earlier task, not run in check mode, may be the one that creates it
            return Result(skipped=True, msg=f"cannot check: {path} does not exist (yet)")
        return Result(failed=True, rc=257, msg=options.missing.format(path=path))
    old = bytes.fromhex(dump or "").decode("utf-8", "surrogateescape") if st else None
    new, msg = edit(old)
    rewrite = new is not None and new != old
    # Ansible in check mode leaves a new file's attributes out of what it reports
    created = st is None and rewrite and not ctx.check
    changes = attrs.changes(st, umask) if st else attrs.changes(_created(first(tags, "creator"), umask), umask) \
        if created else []
    if not rewrite and not changes:
        flagged, problem = await ensure_flags(ctx, real, options.flags)
        return problem or Result(changed=flagged, msg=ATTRS_CHANGED if flagged else "")
    msg = " and ".join(filter(None, [msg if rewrite else "", ATTRS_CHANGED if changes else ""]))
    diff = text_diff(old, new, path) if rewrite else ""
    if ctx.check:
        return Result(changed=True, msg=msg, diff=diff)
    out: dict[str, list[str]] = {}
    if rewrite:
        data = new.encode("utf-8", "surrogateescape")
        write = WriteOptions(backup=options.backup, validate=options.validate)
        problem, out = await _write(ctx, data, real, attrs, umask, st, write, mkdir=st is None)
    else:
        problem, _ = await _set_attrs(ctx, real, attrs)
    if problem and "exit_status" in problem.data:   # lineinfile's and blockinfile's words for it
        problem = Result(failed=True, msg=f"failed to validate: rc:{problem.data['exit_status']} "
                                          f"error:{problem.data['stderr']}")
    if not problem:
        problem = (await ensure_flags(ctx, real, options.flags))[1]
    return problem or Result(changed=True, msg=msg, diff=diff,
                             data={"backup_file": first(out, "backup")} if "backup" in out else {})

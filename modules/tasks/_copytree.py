"""copy with a directory src: a local tree uploaded in one tar stream, or a tree copied on the target (remote_src).

Ansible's action plugin copies a local tree file by file (a stat, an upload and a module run each); here one
probe reads the state of every path the tree touches, the decisions are made on the controller with Ansible's
rules, and one script (fed the new files as a tar stream) makes the changes. A remote tree is copied by one
shell script that follows the module's own copy_directory: shutil.copytree for a missing dest, else a merge.
"""
from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from engine.build.taskmodule import Result, TaskContext
from modules.tasks._attrs import STAT_FMT, Attrs, Stat, new_mode, target_mode
from modules.tasks._content import WriteOptions, source_mode, stat_data
from modules.tasks._remote import (UMASK_SH, backup_command, expanded_word, failure, first, payload, place_commands,
                                   q, quiet, stat_sh, tagged, temp_path, unstage)


@dataclass
class Tree:
    """What a local tree asks for, in Ansible's order: files first, then directories, then links."""

    files: list[tuple[Path, str]] = field(default_factory=list)    # (local file to read, path under dest)
    directories: list[str] = field(default_factory=list)           # paths under dest
    symlinks: list[tuple[str, str]] = field(default_factory=list)  # (link target, path under dest)


def walk(top: str, local_follow: bool) -> Tree:
    """The tree under top as Ansible's _walk_dirs sees it: top with a trailing slash gives its contents,
    without, the directory itself. local_follow copies what a link points to, but a link to a directory
    that contains the link (a loop) stays a link; without it every link stays a link."""
    tree = Tree()
    base = top if top.endswith("/") else posixpath.dirname(top)
    offset = len(base) + (0 if base.endswith("/") else 1)
    top_stat = os.stat(top)
    _walk(tree, top, offset, frozenset({(top_stat.st_dev, top_stat.st_ino)}), "", local_follow)
    return tree


def _walk(tree: Tree, top: str, offset: int, parents: frozenset, rel_base: str, local_follow: bool) -> None:
    # os.walk's order (the file system's, not sorted) as Ansible's: a one-file tree registers its last step
    for here, folders, files in os.walk(top):
        for name in files:
            path = os.path.join(here, name)
            rel = os.path.join(rel_base, path[offset:])
            if not os.path.islink(path):
                tree.files.append((Path(path), rel))
            elif local_follow and os.path.isfile(os.path.realpath(path)):
                tree.files.append((Path(os.path.realpath(path)), rel))
            else:
                tree.symlinks.append((os.readlink(path), rel))
        for name in folders:
            path = os.path.join(here, name)
            rel = os.path.join(rel_base, path[offset:])
            if not os.path.islink(path):
                tree.directories.append(rel)
            elif not local_follow:
                tree.symlinks.append((os.readlink(path), rel))
            else:
                _walk_linked_dir(tree, path, rel, parents, local_follow)


def _walk_linked_dir(tree: Tree, path: str, rel: str, parents: frozenset, local_follow: bool) -> None:
    """A link to a directory, followed: walked as a directory unless it points at one of its own parents."""
    real = os.path.realpath(path)
    real_stat = os.stat(real)
    if (real_stat.st_dev, real_stat.st_ino) in parents:
        tree.symlinks.append((os.readlink(path), rel))
        return
    new_parents = set()
    parts = os.path.dirname(path).split(os.sep)
    for end in range(len(parts), 0, -1):
        parent = os.stat("/".join(parts[:end]) or "/")
        if (parent.st_dev, parent.st_ino) in parents:
            break                     # the tree above is known already
        new_parents.add((parent.st_dev, parent.st_ino))
    if (real_stat.st_dev, real_stat.st_ino) in new_parents:
        tree.symlinks.append((os.readlink(path), rel))
        return
    tree.directories.append(rel)
    _walk(tree, real, len(real) + 1, parents | new_parents, rel, local_follow)


@dataclass(frozen=True)
class Seen:
    """One path on the target as the probe saw it."""

    stat: Stat | None
    sha1: str | None      # a regular file's
    link: str | None      # a link's target


UNSEEN = Seen(None, None, None)     # a path the probe was not asked about


async def _probe(ctx: TaskContext, paths: list[str]) -> tuple[dict[str, Seen], int] | Result:
    """Every path's stat, checksum and link target in one round trip; the paths travel on stdin."""
    script = (UMASK_SH + "while IFS= read -r p; do\n"
              f"  stat -c '{STAT_FMT}' \"$p\" 2>/dev/null || echo absent\n"
              '  s=-; if [ -f "$p" ] && [ ! -L "$p" ]; then s=$(sha1sum < "$p") && s=${s%% *}; fi\n'
              '  l=; [ -L "$p" ] && l=$(readlink "$p")\n'
              "  printf '%s %s\\n' \"$s\" \"$l\"\n"
              "done\n")
    res = await quiet(ctx, script, stdin="".join(path + "\n" for path in paths))
    if not res.ok:
        return failure("could not inspect the copy's destination", res)
    lines = res.stdout.split("\n")
    umask = int(lines[0].split()[-1], 8)
    seen = {}
    for index, path in enumerate(paths):
        st_line, rest = lines[1 + 2 * index], lines[2 + 2 * index]
        sha1, _, link = rest.partition(" ")
        st = Stat.parse(st_line)
        seen[path] = Seen(st, None if sha1 == "-" else sha1, link if st and st.kind == "link" else None)
    return seen, umask


def _ancestors(path: str) -> list[str]:
    """path's directories from the root down, path excluded: /a/b/c -> [/, /a, /a/b]."""
    parts, out = path.rstrip("/").split("/")[:-1], []
    for end in range(1, len(parts) + 1):
        out.append("/".join(parts[:end]) or "/")
    return out


@dataclass
class Plan:
    """What the copy will do, decided from the probe: shell steps, the new files' bytes, and what changed."""

    seen: dict[str, Seen]
    umask: int
    dir_attrs: Attrs
    steps: list[str] = field(default_factory=list)
    uploads: list[bytes] = field(default_factory=list)
    made: set[str] = field(default_factory=set)        # directories this copy creates
    changed: bool = False
    executed: bool = False                              # Ansible ran a module: one file's result is registered
    last: dict = field(default_factory=dict)            # that module's return values, but for the path's stat
    last_path: str = ""
    stage: str = field(default_factory=temp_path)       # the target's directory the new files are unpacked in

    def exists(self, path: str) -> bool:
        return path in self.made or self.seen.get(path, UNSEEN).stat is not None

    def make_dirs(self, path: str) -> None:
        """mkdir path and its missing parents, each given directory_mode, owner and group as Ansible's copy
        (and file) modules give the directories they create."""
        for directory in [*_ancestors(path), path]:
            if not self.exists(directory):
                self.made.add(directory)
                self.steps += [f"mkdir {q(directory)}", *self.dir_attrs.commands(q(directory))]

    def executed_step(self, path: str, data: dict) -> None:
        self.executed, self.last, self.last_path = True, data, path


async def put_tree(ctx: TaskContext, top: Path, src: str, dest: str, attrs: Attrs, directory_mode: str | None,
                   options: WriteOptions, local_follow: bool, preserve: bool) -> Result:
    """copy a local directory: src with a trailing slash copies its contents into dest, without it the
    directory itself. The registered value is Ansible's: the module's for a one-file tree, else dest, src."""
    shown = str(top) + ("/" if src.endswith("/") else "")
    if options.validate:
        # Ansible validates each file; the tree's files are placed by one script, which has no such step yet
        return Result(failed=True, msg="validate is not supported with a directory src")
    tree = walk(shown, local_follow)
    dest = dest if dest.endswith("/") else dest + "/"     # as Ansible marks a recursive copy's dest
    targets = [dest + rel for _, rel in tree.files] + [dest + rel for rel in tree.directories] + \
              [dest + rel for _, rel in tree.symlinks]
    paths = list(dict.fromkeys([*(a for t in targets for a in _ancestors(t)), dest.rstrip("/") or "/", *targets]))
    probed = await _probe(ctx, paths)
    if isinstance(probed, Result):
        return probed
    plan = Plan(*probed, Attrs(directory_mode, attrs.owner, attrs.group))
    for local, rel in tree.files:
        problem = _plan_file(ctx, plan, local, dest + rel, attrs, options, preserve)
        if problem:
            return problem
    for rel in tree.directories:
        problem = _plan_directory(plan, dest + rel)
        if problem:
            return problem
    for target, rel in tree.symlinks:
        _plan_link(plan, target, dest + rel, attrs)
    after, backups = None, []
    if plan.steps and not ctx.check:
        done = await _apply(ctx, plan)
        if isinstance(done, Result):
            return done
        after, backups = done
    if plan.executed and len(tree.files) == 1:
        data = {**plan.last, **({"backup_file": backups[-1]} if backups and "md5sum" in plan.last else {})}
        if "path" in data or "dest" in data:
            st = after if after is not None else plan.seen.get(plan.last_path, UNSEEN).stat
            data.update(stat_data(st) if st else {})
        if "path" in data:
            data.setdefault("dest", data["path"])         # as the action plugin adds it to the file module's
        result = Result(changed=plan.changed, msg=f"{plan.last_path}: {'copied' if plan.changed else 'up to date'}",
                        data=data)
    else:
        result = Result(changed=plan.changed, msg=f"{dest}: {'changed' if plan.changed else 'up to date'}",
                        data={"dest": dest, "src": shown})
    return result


def _plan_file(ctx: TaskContext, plan: Plan, local: Path, path: str, attrs: Attrs, options: WriteOptions,
               preserve: bool) -> Result | None:
    seen = plan.seen.get(path, UNSEEN)
    st = seen.stat
    if st and st.kind == "directory":
        return Result(failed=True, msg=f"dest {path} is a directory", data={"dest": path})
    if st and not options.force:
        return None                                    # Ansible leaves an existing file alone, runs nothing
    data = local.read_bytes()
    sha1 = hashlib.sha1(data).hexdigest()
    file_attrs = Attrs(source_mode(local) if preserve else attrs.mode, attrs.owner, attrs.group)
    regular = st is not None and st.kind == "file"
    if regular and seen.sha1 == sha1:
        # same content: Ansible's file module sets the attributes
        changes = file_attrs.changes(st, plan.umask)
        plan.changed |= bool(changes)
        if changes:
            plan.steps += file_attrs.commands(q(path))
        plan.executed_step(path, {"path": path, "dest": path, "checksum": sha1})
        return None
    plan.changed = True
    if ctx.check:                                      # Ansible's action plugin stops before the module
        plan.executed_step(path, {"changed": True})
        return None
    plan.make_dirs(posixpath.dirname(path))
    existing = st if regular else None
    plan.steps += [backup_command(path)] if options.backup and existing else []
    staged = f"{plan.stage}/{len(plan.uploads)}"
    plan.uploads.append(data)
    plan.steps += place_commands(q(staged), path, new_mode(file_attrs, existing, plan.umask), file_attrs, existing)
    plan.steps += [f"chattr {q(options.flags)} {q(path)}"] if options.flags else []
    # src: the copy written (gone now), as Ansible registers its upload's path
    plan.executed_step(path, {"dest": path, "src": staged, "checksum": sha1,
                              "md5sum": hashlib.md5(data).hexdigest()})
    return None


def _plan_directory(plan: Plan, path: str) -> Result | None:
    """Ansible's file module with state=directory, mode=directory_mode: on every directory of the tree."""
    st = plan.seen.get(path, UNSEEN).stat
    if path in plan.made or st is None:
        plan.changed |= path not in plan.made
        plan.make_dirs(path)
    elif st.kind != "directory":
        return Result(failed=True, msg=f"{path} already exists as a {st.kind}", data={"path": path})
    else:
        changes = plan.dir_attrs.changes(st, plan.umask)
        plan.changed |= bool(changes)
        plan.steps += plan.dir_attrs.commands(q(path)) if changes else []
    plan.executed_step(path, {"path": path})
    return None


def _plan_link(plan: Plan, target: str, path: str, attrs: Attrs) -> None:
    """Ansible's file module with state=link, force=yes: the link made or repointed, its owner set with lchown.
    A mode is "changed" every time, as Ansible compares it with the link's own 0777 (and restores the
    target's mode after chmod)."""
    seen = plan.seen.get(path, UNSEEN)
    st = seen.stat
    owner = Attrs(None, attrs.owner, attrs.group)
    if st is None or st.kind != "link" or seen.link != target:
        plan.changed = True
        plan.make_dirs(posixpath.dirname(path))
        remove = [f"rm -f {q(path)}"] if st is not None else []
        plan.steps += [*remove, f"ln -s {q(target)} {q(path)}", *owner.commands(q(path), link=True)]
    elif owner.changes(st, plan.umask):
        plan.changed = True
        plan.steps += owner.commands(q(path), link=True)
    if attrs.mode and target_mode(attrs.mode, 0o777, False, plan.umask) != 0o777:
        plan.changed = True
    plan.executed_step(path, {"dest": path, "src": target})


async def _apply(ctx: TaskContext, plan: Plan) -> tuple[Stat | None, list[str]] | Result:
    """Run the plan's steps in one script, the new files extracted from a tar stream into a private
    directory first; return the stat of the last path the plan touched and the backups made."""
    upload, stdin = "", None
    if plan.uploads:
        upload, stdin = await payload(ctx, _tar(plan.uploads))
    stage = q(plan.stage)
    unpack = [f"mkdir -m 700 {stage}", f"tar -xo -f {q(upload) if upload else '-'} -C {stage}"] if plan.uploads else []
    script = ("{ " + " && ".join([*unpack, *plan.steps]) + "; }; rc=$?\n"
              f'rm -rf {stage if plan.uploads else ""} {q(upload) if upload else ""}\n[ $rc = 0 ] || exit $rc\n'
              + stat_sh(q(plan.last_path), "after"))
    try:
        res = await quiet(ctx, script, stdin=stdin)
    finally:
        if upload:
            await unstage(ctx, upload)
    if not res.ok:
        return failure("could not copy the directory", res)
    tags = tagged(res.stdout)[0]
    return Stat.parse(first(tags, "after")), tags.get("backup", [])


def _tar(contents: list[bytes]) -> bytes:
    """The new files as a tar stream, each named by its index: the steps move them into place."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for index, data in enumerate(contents):
            info = tarfile.TarInfo(str(index))
            info.size, info.mode = len(data), 0o600
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# dircmp's default ignores: Ansible's merge of an existing dest skips these names
_IGNORED = "RCS|CVS|tags|.git|.hg|.bzr|_darcs|__pycache__"


def _merge_sh(follow: bool | None, owner: Attrs) -> str:
    """A shell function `merge SRC DEST`, Ansible's copy_diff_files/copy_left_only/copy_common_dirs: files
    whose content differs are rewritten with the source's mode, what only the source has is copied (with
    local_follow unset, Ansible's module copies no link there), common directories are merged. It runs
    in a subshell so that its variables stay its own when it recurses; it prints `changed` per change."""
    own = "".join(f" && {cmd}" for cmd in owner.commands('"$t"', link=True))
    own_tree = "".join(f" && {cmd}" for cmd in owner.commands('"$t"', recurse=True, link=True))
    cp = "cp -RLp" if follow else "cp -RPp"
    link = {True: f'if [ -d "$e" ]; then {cp} "$e" "$t"{own_tree}; elif [ -f "$e" ]; then cat "$e" > "$t"{own}; fi',
            False: 'ln -s "$(readlink "$e")" "$t"', None: ":"}[follow]
    copy_file = f'cat "$e" > "$t" && chmod "$(stat -L -c %a "$e")" "$t"{own}'
    return ("merge() (\n"
            '  for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do\n'
            '    [ -e "$e" ] || [ -L "$e" ] || continue\n'
            f'    n=${{e##*/}}; t=$2/$n; case $n in {_IGNORED}) continue;; esac\n'
            '    if [ -e "$t" ] || [ -L "$t" ]; then\n'
            '      if [ -d "$e" ] && [ -d "$t" ]; then merge "$e" "$t" || exit 1\n'
            '      elif [ -f "$e" ] && [ -f "$t" ] && ! cmp -s "$e" "$t"; then\n'
            f'        echo changed; [ $c = 1 ] || {{ {copy_file}; }} || exit 1\n'
            "      fi\n"
            "    else\n"
            "      echo changed; [ $c = 1 ] && continue\n"
            f'      if [ -L "$e" ]; then {link}\n'
            f'      elif [ -f "$e" ]; then {copy_file}\n'
            f'      elif [ -d "$e" ]; then {cp} "$e" "$t"{own_tree}\n'
            "      fi || exit 1\n"
            "    fi\n"
            "  done\n"
            ")\n")


def remote_tree_script(src: str, dest: str, attrs: Attrs, directory_mode: str | None, follow: bool | None,
                       force: bool, check: bool) -> str:
    """The script for copy with remote_src and a directory src, after Ansible's module: prints `notdir` when
    src is no directory (the caller copies a file then), else tagged lines (see put_remote_tree)."""
    owner = Attrs(None, attrs.owner, attrs.group)
    c = "1" if check else "0"
    lines = [f"s={expanded_word(src)}; d={q(dest)}; c={c}", '[ -d "$s" ] || { echo notdir; exit 0; }', UMASK_SH.rstrip("\n")]
    if dest.endswith("/"):                      # the module makes a missing dest/ with its parents
        parent = posixpath.dirname(dest)
        made = Attrs(directory_mode, attrs.owner, attrs.group)
        mkdirs = "; ".join(f"[ -e {q(a)} ] || {{ {' && '.join([f'mkdir {q(a)}', *made.commands(q(a))])}; }} || exit 1"
                           for a in [*_ancestors(parent), parent])
        lines.append(f"if [ ! -e {q(parent)} ]; then " +
                     ("echo would; exit 0; fi" if check else f"{mkdirs}; echo changed; fi"))
    lines += [f'r=$d; [ -d "$d" ] && r={q(posixpath.join(dest, posixpath.basename(src)))}',
              "printf 'dest %s\\n' \"$r\"",
              ('[ -e "$r" ] && { echo exists; exit 0; }' if not force else ":"),
              '[ -e "$r" ] || [ -d "$(dirname "$r")" ] || { printf \'noparent %s\\n\' "$(dirname "$r")"; exit 0; }']
    target = dest if src.endswith("/") else posixpath.join(dest, posixpath.basename(src))
    cp = "cp -RLp" if follow else "cp -RPp"
    chown_tree = " && ".join(owner.commands('"$T"', recurse=True, link=True))
    new = f'mkdir -p "$(dirname "$T")" && {cp} "$s" "$T"' + (f" && {chown_tree}" if chown_tree else "")
    owned = ""
    if attrs.owner or attrs.group:              # Ansible's chown_recursive over an existing dest
        wrong = " -o ".join([*([f"! -user {q(attrs.owner)}"] if attrs.owner else []),
                             *([f"! -group {q(attrs.group)}"] if attrs.group else [])])
        owned = (f'\n  if [ -n "$(find "$T" \\( {wrong} \\) -print | head -n 1)" ]; then echo changed; '
                 f"[ $c = 1 ] || {chown_tree} || exit 1; fi")
    lines += [_merge_sh(follow, owner).rstrip("\n"),
              f'T={q(target)}\nif [ -d "$d" ] || [ ! -e "$d" ]; then',
              f'  if [ ! -e "$T" ]; then echo changed; [ $c = 1 ] || {{ {new}; }} || exit 1',
              f'  else merge "$s/" "$T" || exit 1{owned}',
              "  fi\nfi",
              stat_sh('"$r"', "before").rstrip("\n")]
    final = Attrs(attrs.mode, attrs.owner, attrs.group).commands('"$r"')
    if final and not check:
        lines.append(f'[ -e "$r" ] && {{ {" && ".join(final)} || exit 1; }}')
    lines.append(stat_sh('"$r"', "after").rstrip("\n"))
    return "\n".join(lines) + "\n"


async def put_remote_tree(ctx: TaskContext, src: str, dest: str, attrs: Attrs, directory_mode: str | None,
                          follow: bool | None, force: bool) -> Result | None:
    """copy with remote_src of a directory on the target, or None when src is not a directory there."""
    res = await quiet(ctx, remote_tree_script(src, dest, attrs, directory_mode, follow, force, ctx.check))
    tags, _ = tagged(res.stdout)
    if "notdir" in tags:
        return None
    if not res.ok:
        return failure(f"could not copy {src} to {dest}", res)
    changed = "changed" in tags
    if "would" in tags:
        return Result(changed=True, msg=f"dest directory {posixpath.dirname(dest)} would be created",
                      data={"src": src})
    if "noparent" in tags:
        return Result(failed=True, msg=f"Destination directory {first(tags, 'noparent')} does not exist")
    path = first(tags, "dest") or dest
    before, after = Stat.parse(first(tags, "before")), Stat.parse(first(tags, "after"))
    data = {"dest": path, "src": src, **(stat_data(after) if after else {})}
    if "exists" in tags:
        return Result(msg="file already exists", data=data)
    if ctx.check:
        umask = int(first(tags, "umask") or "022", 8)
        changed |= bool(before and Attrs(attrs.mode, attrs.owner, attrs.group).changes(before, umask))
    else:
        changed |= (before and after and (before.mode, before.uid, before.gid) != (after.mode, after.uid, after.gid))
    data.update(md5sum=None, checksum=None)
    return Result(changed=bool(changed), msg=f"{path}: {'copied' if changed else 'up to date'}", data=data)

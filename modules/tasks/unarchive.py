"""unarchive: unpack a .tar (plain, gz, bz2, xz) or .zip archive into a directory on the target.

The archive is a local file from files/ (uploaded only when something must be extracted) or, with
remote_src, a file already on the target. It is listed (here with tarfile/zipfile for a local one, with
`tar -tv`/`unzip -l` on the target otherwise) and every listed path is compared with dest in one batched
stat: it is extracted when a file is missing or differs in size, as Ansible judges it. `creates` skips
all of that. The target needs tar (and gzip, bzip2 or xz for compressed ones), or unzip for a .zip.
"""
from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
import stat as st_mod
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, each
from modules.tasks._attrs import Attrs, Stat
from modules.tasks._remote import (ATTRIBUTES, CONTENT, UMASK_SH, failure, first, maybe, q, quiet, stage, stat_sh,
                                   tagged, tail, text, unstage, words)

# The format, as the probe prints it: tar's compression flag (or "" for none), or zip.
MAGIC = ((b"\x1f\x8b", "z"), (b"BZh", "j"), (b"\xfd7zXZ\x00", "J"), (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"))
FORMAT_SH = ("m=$(od -An -tx1 -N6 \"$s\" | tr -d ' \\n')\n"
             "case $m in 1f8b*) f=z;; 425a68*) f=j;; fd377a585a00) f=J;; 504b0304*|504b0506*) f=zip;; *) f=;; esac\n"
             "echo \"format $f\"\n")
# stat every path named on stdin (one a line, relative to the current directory), in batches
COMPARE_SH = "tr '\\n' '\\0' | xargs -0 -r stat -c '%f %s %n' -- 2>/dev/null; exit 0\n"
TAR_LINE = re.compile(r"^(\S)\S*\s+\S+\s+(\S+)\s+\S+\s+\S+ (.*)$")
ZIP_LINE = re.compile(r"^\s*(\d+)\s+\S+\s+\S+\s+(.*)$")


@dataclass(frozen=True)
class Entry:
    kind: str           # file, directory or other (a link, a device: only its existence is compared)
    size: int
    name: str           # relative to dest, without ./ or a trailing /


def clean(name: str) -> str | None:
    """An archive member's name as a path under dest; None for the archive's root or a path leaving it."""
    name = posixpath.normpath(name.lstrip("/"))
    if name in (".", "") or name == ".." or name.startswith("../"):
        return None
    return name


def names_of(entries: list[Entry]) -> str:
    return "".join(entry.name + "\n" for entry in entries)


def local_format(path: Path) -> str | None:
    with open(path, "rb") as handle:
        head = handle.read(6)
    for magic, code in MAGIC:
        if head.startswith(magic):
            return code
    return "" if tarfile.is_tarfile(path) else None


def list_local(path: Path, fmt: str) -> list[Entry]:
    entries = []
    if fmt == "zip":
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                link = st_mod.S_ISLNK(info.external_attr >> 16)
                kind = "directory" if info.is_dir() else ("other" if link else "file")
                entries.append(Entry(kind, info.file_size, info.filename))
    else:
        with tarfile.open(path, "r:*") as archive:
            for member in archive.getmembers():
                kind = "file" if member.isfile() else ("directory" if member.isdir() else "other")
                entries.append(Entry(kind, member.size, member.name))
    return entries


def parse_listing(text_: str, fmt: str) -> list[Entry]:
    """`tar -tv` (GNU or BusyBox) or `unzip -l` output as entries."""
    entries = []
    if fmt == "zip":
        dashes = 0
        for line in text_.splitlines():
            if line.startswith("-----"):
                dashes += 1
                continue
            match = ZIP_LINE.match(line) if dashes == 1 else None
            if match:
                name = match[2]
                entries.append(Entry("directory" if name.endswith("/") else "file", int(match[1]), name))
        return entries
    for line in text_.splitlines():
        match = TAR_LINE.match(line)
        if not match:
            continue
        kind, size, name = match[1], match[2], match[3]
        if kind == "l":
            name = name.split(" -> ", 1)[0]
        elif kind == "h":
            name = name.split(" link to ", 1)[0]
        entries.append(Entry({"-": "file", "d": "directory"}.get(kind, "other"),
                             int(size) if size.isdigit() else 0, name))
    return entries


def strip_components(extra_opts: list[str]) -> int:
    for index, opt in enumerate(extra_opts):
        if opt.startswith("--strip-components="):
            return int(opt.partition("=")[2])
        if opt == "--strip-components" and index + 1 < len(extra_opts):
            return int(extra_opts[index + 1])
    return 0


def select(entries: list[Entry], include: list[str], exclude: list[str], strip: int) -> list[Entry]:
    """The entries extraction writes, named as they land under dest."""
    wanted = [clean(name) for name in include]
    out = {}
    for entry in entries:
        name = clean(entry.name)
        if name is None:
            continue
        if wanted and not any(w and (name == w or name.startswith(w + "/")) for w in wanted):
            continue
        parts = name.split("/")
        if any(fnmatch.fnmatch(name, pat) or any(fnmatch.fnmatch(part, pat) for part in parts) for pat in exclude):
            continue
        if strip:
            if len(parts) <= strip:
                continue
            name = "/".join(parts[strip:])
        if "\n" not in name:
            out[name] = Entry(entry.kind, entry.size, name)
    return list(out.values())


def differing(entries: list[Entry], stat_lines: list[str]) -> list[str]:
    """Names missing under dest, or not of the same kind, or (files) not of the same size."""
    have = {}
    for line in stat_lines:
        raw, size, name = (line.split(" ", 2) + ["", ""])[:3]
        try:
            have[name] = (st_mod.S_IFMT(int(raw, 16)), int(size))
        except ValueError:
            continue
    out = []
    for entry in entries:
        found = have.get(entry.name)
        if found is None:
            out.append(entry.name)
        elif entry.kind == "directory" and found[0] != st_mod.S_IFDIR:
            out.append(entry.name)
        elif entry.kind == "file" and (found[0] not in (st_mod.S_IFREG, st_mod.S_IFLNK) or found[1] != entry.size):
            out.append(entry.name)   # a zip's link is listed as a file as long as the link's target name
    return out


def extract_command(fmt: str, archive: str, dest: str, extra_opts: list[str], include: list[str],
                    exclude: list[str]) -> str:
    if fmt == "zip":
        return (f"unzip -o -q {words(extra_opts)} {archive} {words(include)} "
                + (f"-x {words(exclude)} " if exclude else "") + f"-d {q(dest)}")
    excludes = words([f"--exclude={pattern}" for pattern in exclude])
    return (f"tar -x{fmt}f {archive} -C {q(dest)} {words(extra_opts)} {excludes}"
            + (f" -- {words(include)}" if include else ""))


class Unarchive(TaskModule, name="unarchive"):
    description = "Unpack a tar (gz, bz2, xz) or zip archive, local or already on the target, into a directory"
    # No local_files: validate would then require src on this machine even with remote_src: true. A missing
    # local src still stops the task, when it runs, with the same message (ctx.find_file).
    schema = {
        vol.Required("src"): str,
        vol.Required("dest"): str,
        vol.Optional("remote_src", default=False): boolean,
        vol.Optional("creates", default=None): maybe(str),
        # chattr on every extracted file is not done: attributes is refused rather than ignored.
        **{key: value for key, value in ATTRIBUTES.items() if str(key) != "attributes"},
        vol.Optional("extra_opts", default=[]): each(text),
        vol.Optional("include", default=[]): each(text),
        vol.Optional("exclude", default=[]): each(text),
    }

    @dataclass(frozen=True)
    class Params:
        src: str
        dest: str
        remote_src: bool = False
        creates: str | None = None
        mode: str | None = None
        owner: str | None = None
        group: str | None = None
        unsafe_writes: bool = False
        extra_opts: list[str] | None = None
        include: list[str] | None = None
        exclude: list[str] | None = None

        def __post_init__(self) -> None:
            if any(opt.startswith("--strip-components") for opt in self.extra_opts or []):
                try:
                    strip_components(self.extra_opts or [])
                except ValueError:
                    raise vol.Invalid("--strip-components takes a number", path=["extra_opts"]) from None

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        data = {"dest": p.dest, "src": p.src, "extracted": False}
        local, fmt, entries = None, "", []
        strip = strip_components(p.extra_opts or [])
        if not p.remote_src:   # listed here, so one probe also compares dest with it
            local = ctx.find_file(p.src, "files")
            fmt = local_format(local)
            if fmt is None:
                return Result(failed=True, msg=f"{p.src} is neither a tar nor a zip archive", data=data)
            entries = select(list_local(local, fmt), p.include or [], p.exclude or [], strip)
        probe = stat_sh(q(p.dest)) + UMASK_SH
        if p.creates:
            probe += f"[ -e {q(p.creates)} ] && {{ echo creates; exit 0; }}\n"
        if local is not None:
            probe += f"cd {q(p.dest)} 2>/dev/null || exit 0\necho {CONTENT}\n{COMPARE_SH}"
        else:   # the listing goes after the tags, as content; dest is compared with it in a second probe
            probe += (f"s={q(p.src)}\n"
                      "[ -f \"$s\" ] || { printf 'failed %s is not a file on the target\\n' \"$s\"; exit 0; }\n"
                      + FORMAT_SH +
                      "case $f in zip) command -v unzip >/dev/null 2>&1 || { echo nounzip; exit 0; }\n"
                      f"echo {CONTENT}; LC_ALL=C unzip -l \"$s\";;\n"
                      "*) if tar --version 2>/dev/null | grep -q GNU; then set -- --quoting-style=literal; fi\n"
                      f"echo {CONTENT}; LC_ALL=C tar -t${{f}}v \"$@\" -f \"$s\";; esac\n")
        res = await quiet(ctx, probe, stdin=names_of(entries) if local is not None else None)
        if not res.ok:
            return failure(f"could not read the archive {p.src}", res).replace(data=data)
        tags, content = tagged(res.stdout)
        if "creates" in tags:
            return Result(msg=f"skipped: {p.creates} exists", data=data)
        if "failed" in tags:
            return Result(failed=True, msg=first(tags, "failed") or "", data=data)
        if "nounzip" in tags:
            return Result(failed=True, msg=f"{p.src} is a zip archive and unzip is not on the target", data=data)
        dest = Stat.parse(first(tags, "stat"))
        if dest is None or dest.kind != "directory":
            if ctx.check and dest is None:   # an earlier task may create it
                return Result(changed=True, msg=f"would extract {p.src} into {p.dest} (it does not exist yet)",
                              data=data)
            return Result(failed=True, msg=f"dest {p.dest} must be an existing directory", data=data)
        if local is None:
            fmt = first(tags, "format") or ""
            entries = select(parse_listing(content or "", fmt), p.include or [], p.exclude or [], strip)
            res = await quiet(ctx, f"cd {q(p.dest)} || exit\n{COMPARE_SH}", stdin=names_of(entries))
            if not res.ok:
                return failure(f"could not compare {p.dest} with the archive", res).replace(data=data)
            content = res.stdout
        missing = differing(entries, (content or "").splitlines())
        attrs = Attrs(p.mode, p.owner, p.group)
        changes = attrs.changes(dest, int(first(tags, "umask") or "022", 8))
        if not missing and not changes:
            return Result(msg=f"{p.dest} already holds the contents of {p.src}", data=data)
        said = [f"extracted {p.src} into {p.dest} ({len(missing)} of {len(entries)} entries missing or different)"
                ] if missing else []
        msg = "; ".join(said + changes)
        if ctx.check:
            return Result(changed=True, msg=msg, data={**data, "extracted": bool(missing)})
        problem = await self.extract(ctx, p, fmt, local, attrs, bool(missing))
        if problem:
            return problem.replace(data=data)
        return Result(changed=True, msg=msg, data={**data, "extracted": bool(missing)})

    @staticmethod
    async def extract(ctx: TaskContext, p: Params, fmt: str, local: Path | None, attrs: Attrs,
                      unpack: bool) -> Result | None:
        upload = await stage(ctx, local.read_bytes()) if unpack and local is not None else ""
        try:
            steps = []
            if unpack:
                if fmt == "zip":
                    steps.append("{ command -v unzip >/dev/null 2>&1 || { echo 'unzip is not on the target' >&2; "
                                 "exit 127; }; }")
                archive = shlex.quote(upload) if upload else q(p.src)
                steps.append(extract_command(fmt, archive, p.dest, p.extra_opts or [], p.include or [],
                                             p.exclude or []))
            steps += attrs.commands(q(p.dest))
            script = "{ " + " && ".join(steps) + "; }; rc=$?" + (f"; rm -f {shlex.quote(upload)}" if upload else "")
            res = await quiet(ctx, script + "; exit $rc\n")
        finally:
            if upload:
                await unstage(ctx, upload)
        if not res.ok:
            return Result(failed=True, rc=res.rc, stderr=res.stderr,
                          msg=f"could not extract {p.src} into {p.dest}: {tail(res.stderr) or f'exit status {res.rc}'}")
        return None

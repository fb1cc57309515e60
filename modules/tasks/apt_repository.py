"""apt_repository: a one-line apt source (deb/deb-src, or an Ubuntu ppa:) in sources.list or sources.list.d,
as Ansible's module adds, enables and removes it.

Like Ansible, the module reads /etc/apt/sources.list and every sources.list.d/*.list, and compares the files
normalised as it writes them (a disabled line is "# " + the line, whitespace collapsed): a repository already
there, even in another file, is not added again, a disabled copy of it is enabled instead; removing takes it
out of every file, and a file left empty is deleted. A new repository goes to a file named after its URL
(or `filename`.list), mode 0644 unless `mode` says otherwise. A change updates apt's cache, with retries;
when that fails, the files are put back as they were.
"""
from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass, replace

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, file_mode, integer, string
from modules.tasks._aptsources import Sources, read_sources, update_cache
from modules.tasks._attrs import Attrs
from modules.tasks._conffile import TextFile, write_file
from modules.tasks._remote import maybe, q, quiet, tail, text_diff

VALID_TYPES = ("deb", "deb-src")
PPA_URI = "https://ppa.launchpadcontent.net"
LP_API = "https://api.launchpad.net/1.0/~{owner}/+archive/{name}"
KEY_DIRS = ("/etc/apt/keyrings", "/etc/apt/trusted.gpg.d", "/usr/share/keyrings")
KEYSERVER = "hkp://keyserver.ubuntu.com:80"


@dataclass(frozen=True)
class Line:
    valid: bool
    enabled: bool
    source: str
    comment: str

    def render(self) -> str:
        return ("# " if not self.enabled else "") + self.source + (f" # {self.comment}" if self.comment else "") + "\n"


class InvalidSource(Exception):
    pass


def parse_line(line: str, strict: bool = False) -> Line:
    """Ansible's SourcesList._parse: a leading # disables, a later # starts a comment, whitespace collapses."""
    line = line.strip()
    enabled, comment, valid = True, "", False
    if line.startswith("#"):
        enabled, line = False, line[1:]
    at = line.find("#")
    if at > 0:
        comment, line = line[at + 1:].strip(), line[:at]
    source = line.strip()
    if source and source.split()[0] in VALID_TYPES:
        valid, source = True, " ".join(source.split())
    if strict and (not valid or not enabled):
        raise InvalidSource(line)
    return Line(valid, enabled, source, comment)


def suggest_filename(line: str, filename: str | None) -> str:
    """Ansible's name for a new source's file: `filename`.list, else the URL's host and path as words."""
    if filename is not None:
        return f"{filename}.list"
    line = re.sub(r"\w+://", "", re.sub(r"\[[^\]]+\]", "", line))
    parts = [part for part in line.split() if part not in VALID_TYPES]
    first = parts[0].split("@", 1)[-1] if parts else ""
    return "_".join(re.sub("[^a-zA-Z0-9]", " ", first).split()) + ".list"


def expand_ppa(line: str, codename: str) -> tuple[str, str, str]:
    """ppa:owner/name (name defaulting to ppa) as its deb line, owner and name."""
    owner, _, name = line.split(":")[1].partition("/")
    name = name.split("/")[0] if name else "ppa"
    return f"deb {PPA_URI}/{owner}/{name}/ubuntu {codename} main", owner, name


Files = dict[str, list[Line]]


def dump(files: Files) -> dict[str, str]:
    """Each file as Ansible would write it; files without lines are left out (Ansible deletes them)."""
    return {path: "".join(line.render() for line in lines) for path, lines in files.items() if lines}


def add_source(files: Files, source: str, comment: str, file: str, default_file: str) -> set[str]:
    """Enable every copy of source, or append it to file; the files that got a new line (mode applies)."""
    found = False
    for path, lines in files.items():
        for index, line in enumerate(lines):
            if line.valid and line.source == source:
                lines[index] = replace(line, enabled=True)
                found = True
    if found:
        return set()
    file = file or default_file
    files.setdefault(file, []).append(Line(True, True, source, comment))
    return {file}


def remove_source(files: Files, source: str) -> None:
    for path, lines in files.items():
        lines[:] = [line for line in lines if not (line.valid and line.enabled and line.source == source)]


class AptRepository(TaskModule, name="apt_repository"):
    description = "Add, enable or remove an apt repository line (sources.list.d/*.list), then update the cache"
    aliases = {"update-cache": "update_cache"}
    # where apt's one-line sources are (Ansible asks apt's Dir::Etc::sourcelist and sourceparts); tests move them
    sources_list = "/etc/apt/sources.list"
    sources_dir = "/etc/apt/sources.list.d"
    schema = {
        vol.Required("repo"): string,
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
        vol.Optional("mode", default=None): maybe(file_mode),
        vol.Optional("update_cache", default=True): boolean,
        vol.Optional("update_cache_retries", default=5): integer,
        vol.Optional("update_cache_retry_max_delay", default=12): integer,
        vol.Optional("filename", default=None): maybe(string),
        # Ansible installs python3-apt for itself when missing; recipe needs no Python on the target
        vol.Optional("install_python_apt", default=True): boolean,
        vol.Optional("validate_certs", default=True): boolean,
        vol.Optional("codename", default=None): maybe(string),
    }

    @dataclass(frozen=True)
    class Params:
        repo: str
        state: str = "present"
        mode: str | None = None
        update_cache: bool = True
        update_cache_retries: int = 5
        update_cache_retry_max_delay: int = 12
        filename: str | None = None
        install_python_apt: bool = True
        validate_certs: bool = True
        codename: str | None = None

    def path_of(self, filename: str) -> str:
        return filename if "/" in filename else posixpath.join(self.sources_dir, filename)

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        data = {"repo": p.repo, "state": p.state, "sources_added": [], "sources_removed": [], "diff": []}
        if not p.repo:
            return Result(failed=True, msg="Please set argument 'repo' to a non-empty value", data=data)
        found = await read_sources(ctx, [self.sources_list], [(self.sources_dir, "*.list")])
        if isinstance(found, Result):
            return found
        files: Files = {path: [parse_line(line) for line in (f.text or "").splitlines(True)]
                        for path, f in found.files.items()}
        before = dump(files)
        codename = p.codename or found.codename
        ppa = p.repo.startswith("ppa:")
        try:
            appended = self.edit(files, p, codename)
        except InvalidSource as exc:
            return Result(failed=True, msg=f"Invalid repository string: {exc}", data=data)
        after = dump(files)
        if before == after:
            return Result(msg=f"{p.repo} is {'there' if p.state == 'present' else 'not there'}", data=data)
        added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
        diff = "".join(text_diff(before.get(path), after.get(path, ""), path)
                       for path in sorted(set(before) | set(after)) if before.get(path) != after.get(path))
        data.update(sources_added=added, sources_removed=removed, diff=[
            {"before": before.get(path, ""), "after": after.get(path, ""),
             "before_header": path if path in before else "/dev/null",
             "after_header": path if path in after else "/dev/null"} for path in added + removed] if ctx.diff else [])
        msg = f"{p.repo} {'added' if p.state == 'present' else 'removed'}"
        if ctx.check:
            return Result(changed=True, msg=msg, diff=diff, data=data)
        if ppa and p.state == "present":
            failed = await self.ppa_key(ctx, p.repo, codename)
            if failed:
                return failed.replace(data=data)
        written = await self.save(ctx, found, after, appended, p.mode)
        if isinstance(written, Result):
            return written.replace(data=data)
        if p.update_cache:
            problem = await update_cache(ctx, p.update_cache_retries, p.update_cache_retry_max_delay)
            if problem:
                await self.restore(ctx, found, written)
                return Result(failed=True, msg=problem, diff=diff, data=data)
        return Result(changed=True, msg=msg, diff=diff, data=data)

    def edit(self, files: Files, p: Params, codename: str) -> set[str]:
        """Add or remove p.repo in files; the files given a new line."""
        ppa = p.repo.startswith("ppa:")
        source = expand_ppa(p.repo, codename)[0] if ppa else parse_line(p.repo, strict=True).source
        if p.state == "absent":
            remove_source(files, source)
            return set()
        if ppa:
            enabled = [line.source for lines in files.values() for line in lines if line.valid and line.enabled]
            if source in enabled:
                return set()
            name = suggest_filename(f"{p.repo}_{codename}", p.filename)
        else:
            name = suggest_filename(source, p.filename)
        return add_source(files, source, "", self.path_of(name), self.sources_list)

    @staticmethod
    async def save(ctx: TaskContext, found: Sources, after: dict[str, str], appended: set[str],
                   mode: str | None) -> list[str] | Result:
        """Write the files whose text changed, delete the ones left empty; the paths written."""
        written = []
        for path, text in after.items():
            old = found.files.get(path)
            if old is not None and old.text == text and path not in appended:
                continue
            target = old or TextFile(path, None, found.umask, None)
            done = await write_file(ctx, target, text, Attrs(mode if path in appended else None), mkdir=old is None)
            if isinstance(done, Result):
                return done
            written.append(path)
        empty = [path for path in found.files if path not in after]
        if empty:
            res = await quiet(ctx, "rm -f " + " ".join(q(path) for path in empty))
            if not res.ok:
                return Result(failed=True, msg=f"could not remove {', '.join(empty)}: {tail(res.stderr)}")
        return written

    @staticmethod
    async def restore(ctx: TaskContext, found: Sources, written: list[str]) -> None:
        """Put the files back as they were read: Ansible's revert after a failed cache update."""
        for path, original in found.files.items():
            await write_file(ctx, original, original.text or "", Attrs())
        created = [path for path in written if path not in found.files]
        if created:
            await quiet(ctx, "rm -f " + " ".join(q(path) for path in created))

    @staticmethod
    async def ppa_key(ctx: TaskContext, repo: str, codename: str) -> Result | None:
        """The PPA's signing key, from Launchpad, into a keyring apt reads, unless one of them has it."""
        _, owner, name = expand_ppa(repo, codename)
        api = LP_API.format(owner=owner, name=name)
        res = await quiet(ctx, f"u={shlex.quote(api)}\n"
                               "curl -fsSL -H 'Accept: application/json' \"$u\" 2>/dev/null || "
                               "wget -qO- --header='Accept: application/json' \"$u\"")
        try:
            fingerprint = json.loads(res.stdout)["signing_key_fingerprint"] if res.ok else None
        except (ValueError, KeyError, TypeError):
            fingerprint = None
        if not fingerprint or not re.match(r"^[0-9A-Fa-f]+$", fingerprint):
            return Result(failed=True, msg=f"failed to fetch PPA information from {api}: "
                                           f"{tail(res.stderr) or 'no signing_key_fingerprint'}")
        fpr = shlex.quote(fingerprint)
        keyfile = f"{posixpath.basename(expand_ppa(repo, codename)[0]).replace(' ', '-')}-{owner}-{name}.gpg"
        dirs = " ".join(KEY_DIRS)
        script = (f"for f in /etc/apt/trusted.gpg {' '.join(d + '/*' for d in KEY_DIRS)}; do\n"
                  f'  [ -f "$f" ] && gpg --list-packets "$f" 2>/dev/null | grep -q {fpr} && exit 0\ndone\n'
                  "if command -v apt-key >/dev/null 2>&1; then\n"
                  f"  exec apt-key adv --recv-keys --no-tty --keyserver {KEYSERVER} {fpr}\nfi\n"
                  f"for d in {dirs}; do [ -d \"$d\" ] && break; done\n"
                  "h=$(mktemp -d) && trap 'rm -rf \"$h\"' EXIT && "
                  f"gpg --homedir \"$h\" --no-tty --keyserver {KEYSERVER} --recv-keys {fpr} && "
                  f"gpg --homedir \"$h\" --export {fpr} > \"$d\"/{shlex.quote(keyfile)} && "
                  f"test -s \"$d\"/{shlex.quote(keyfile)}\n")
        res = await ctx.sh(script)
        if not res.ok:
            return Result(failed=True, rc=res.rc, stderr=res.stderr,
                          msg=f"Unable to add the PPA's signing key {fingerprint}: {tail(res.stderr) or res.rc}")
        return None

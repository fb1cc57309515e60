"""git: check out a git repository on the target with the target's own git, as Ansible's git module does.

A port of Ansible's module (ansible.builtin.git, 2.19): the same git commands, in the same order, decided the
same way, with the same return values (before, after, remote_url_changed, ...) and failure messages. Where
Ansible runs one git command at a time, this runs them in a few scripts: a read-only probe of the checkout,
then steps that stop at the first failing command (see RUNNER), each phase one round trip.

Only git is needed on the target; a missing git fails with Ansible's message and the package to install.
Old-git fallbacks (before git 1.9: no --depth, an ssh wrapper script) are left out.
"""
from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, integer, one_or_more, string
from engine.remote.connection import CommandResult
from modules.tasks._remote import failure, first, maybe, q, quiet, tagged, words

LOCALE = "export LANG=C LC_ALL=C LC_MESSAGES=C LC_CTYPE=C LANGUAGE=C\n"   # git's output is parsed: C locale
SBIN = ("/sbin", "/usr/sbin", "/usr/local/sbin")                         # where Ansible's get_bin_path also looks
ARCHIVE_FORMATS = {".zip": "zip", ".gz": "tar.gz", ".tar": "tar", ".tgz": "tgz"}

# `step NAME CWD FATAL ARGV...` runs one command (in CWD when that is a directory, as Ansible's run_command
# ignores an invalid cwd) and prints `rc:NAME <status>`, its stdout lines tagged NAME and its stderr lines
# tagged NAME!. A failing FATAL step ends the script, so later steps never run on a broken state.
RUNNER = """t=$(mktemp) || exit 1
trap 'rm -f "$t" "$t.e"' EXIT
step() {
  n=$1 c=$2 f=$3; shift 3
  ( if [ -n "$c" ]; then cd "$c" 2>/dev/null; fi; exec "$@" ) >"$t" 2>"$t.e"
  r=$?
  printf 'rc:%s %s\\n' "$n" "$r"
  awk -v n="$n" '{print n " " $0}' "$t"
  awk -v n="$n!" '{print n " " $0}' "$t.e"
  [ "$r" = 0 ] || [ "$f" = 0 ] || exit 0
}
"""


# Finding a program as Ansible's get_bin_path does: PATH, then the sbin directories; its message otherwise.
SEARCH_PATHS_SH = ("printf 'path %s\\n' \"$PATH\"\n"
                   f"for d in {' '.join(SBIN)}; do [ -d \"$d\" ] && printf 'sbin %s\\n' \"$d\"; done\n")


def bin_path_sh(var: str, name: str, tag: str) -> str:
    """Shell lines setting var to name's path and printing `<tag> <path>`; nothing printed when it is nowhere."""
    return (f"{var}=$(command -v {q(name)}) || for d in {' '.join(SBIN)}; do [ -x \"$d\"/{q(name)} ] && "
            f"{var}=$d/{q(name)} && break; done\n[ -n \"${var}\" ] && printf '{tag} %s\\n' \"${var}\"\n")


def missing_executable(name: str, tags: dict[str, list[str]]) -> str:
    """get_bin_path's message, from the `path` and `sbin` lines SEARCH_PATHS_SH printed."""
    paths = (first(tags, "path") or "").split(":")
    paths += [d for d in tags.get("sbin", []) if d not in paths]
    return f'Failed to find required executable "{name}" in paths: {":".join(paths)}'


class Failed(Exception):
    """Ansible's fail_json: the task's failed Result, raised from wherever the failure is found."""

    def __init__(self, result: Result):
        super().__init__(result.msg)
        self.result = result


def fail(msg: str, out: CommandResult | None = None, **data: Any) -> Failed:
    if out is None:
        return Failed(Result(failed=True, msg=msg, data=data))
    return Failed(Result(failed=True, msg=msg, rc=out.rc, stdout=out.stdout, stderr=out.stderr, data=data))


@dataclass(frozen=True)
class Step:
    """One git command of a script. fail turns its failure into the task's (Ansible's message for that
    command); None: a failure is for the caller to read, and the script goes on."""

    name: str
    argv: tuple[str, ...]
    cwd: str | None = None
    fail: Callable[["Step", CommandResult], Failed] | None = None

    @property
    def cmd(self) -> str:
        return shlex.join(self.argv)


def check_rc(step: Step, out: CommandResult) -> Failed:
    """run_command(check_rc=True): stderr is the message."""
    return fail(out.stderr.rstrip(), out, cmd=step.cmd)


def failing(msg: str, with_cmd: bool = True) -> Callable[[Step, CommandResult], Failed]:
    return lambda step, out: fail(msg, out, **({"cmd": step.cmd} if with_cmd else {}))


def lines(tags: dict[str, list[str]], name: str) -> str:
    return "".join(line + "\n" for line in tags.get(name, []))


def head_splitter(line: str | None, remote: str) -> str | None:
    """The branch a HEAD file's first line names, parsed as Ansible's head_splitter does (None: no file)."""
    if line is None:
        return None
    line = line.replace(f"refs/remotes/{remote}", "", 1)
    return line.split(" ")[-1].split("/", 2)[-1].rstrip("\n")


def umask_value(value: Any) -> int | None:
    """Ansible's umask: a quoted octal string (a YAML number is refused, as 0022 would be read as 18)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise fail("umask must be defined as a quoted octal integer")
    try:
        return int(value, 8)
    except ValueError as exc:
        raise fail("umask must be an octal integer", details=str(exc)) from None


def gpg_fingerprint(stderr: str) -> str | None:
    """The primary key's fingerprint from `verify-commit --raw`'s VALIDSIG line, as Ansible picks it."""
    for line in stderr.splitlines():
        data = line.split()
        if len(data) > 1 and data[1] == "VALIDSIG":
            index = 11 if len(data) == 11 else 2
            return data[index] if index < len(data) else None
    return None


@dataclass
class Checkout:
    """What the probe found: where the repository is and the state of an existing one."""

    git: str
    home: str
    pwd: str
    dest: str | None = None
    repo_path: str | None = None
    config: bool = False           # repo_path/config exists: there is a repository to update
    head: str = ""                 # `git rev-parse HEAD`
    mods: bool = False             # tracked files differ from HEAD
    url: str | None = None         # the remote's URL, None when git could not say
    branches: list[str] = field(default_factory=list)   # `git branch -a`, stripped
    head_file: str | None = None   # first line of HEAD
    remote_head_file: str | None = None   # first line of refs/remotes/<remote>/HEAD

    def head_branch(self, remote: str) -> str | None:
        """get_head_branch: HEAD's branch, or the remote's HEAD branch when HEAD is detached."""
        detached = any(b.startswith("* ") and ("no branch" in b or "detached from" in b or "detached at" in b)
                       for b in self.branches)
        return head_splitter(self.remote_head_file if detached else self.head_file, remote)

    def is_local_branch(self, branch: str) -> bool:
        return branch in self.branches or f"* {branch}" in self.branches


class Git(TaskModule, name="git"):
    description = "Clone or update a git repository on the target, with the target's git"
    aliases = {"name": "repo", "gpg_whitelist": "gpg_allowlist"}
    schema = {
        vol.Required("repo"): string,
        vol.Optional("dest", default=None): maybe(string),
        vol.Optional("version", default="HEAD"): string,
        vol.Optional("remote", default="origin"): string,
        vol.Optional("refspec", default=None): maybe(string),
        vol.Optional("reference", default=None): maybe(string),
        vol.Optional("force", default=False): boolean,
        vol.Optional("depth", default=None): maybe(integer),
        vol.Optional("clone", default=True): boolean,
        vol.Optional("update", default=True): boolean,
        vol.Optional("verify_commit", default=False): boolean,
        vol.Optional("gpg_allowlist", default=[]): one_or_more(string),
        vol.Optional("accept_hostkey", default=False): boolean,
        vol.Optional("accept_newhostkey", default=False): boolean,
        vol.Optional("key_file", default=None): maybe(string),
        vol.Optional("ssh_opts", default=None): maybe(string),
        vol.Optional("executable", default=None): maybe(string),
        vol.Optional("bare", default=False): boolean,
        vol.Optional("recursive", default=True): boolean,
        vol.Optional("single_branch", default=False): boolean,
        vol.Optional("track_submodules", default=False): boolean,
        vol.Optional("umask", default=None): object,           # Ansible's raw: checked when the task runs
        vol.Optional("archive", default=None): maybe(string),
        vol.Optional("archive_prefix", default=None): maybe(string),
        vol.Optional("separate_git_dir", default=None): maybe(string),
    }

    @dataclass(frozen=True)
    class Params:
        repo: str
        dest: str | None = None
        version: str = "HEAD"
        remote: str = "origin"
        refspec: str | None = None
        reference: str | None = None
        force: bool = False
        depth: int | None = None
        clone: bool = True
        update: bool = True
        verify_commit: bool = False
        gpg_allowlist: list[str] = field(default_factory=list)
        accept_hostkey: bool = False
        accept_newhostkey: bool = False
        key_file: str | None = None
        ssh_opts: str | None = None
        executable: str | None = None
        bare: bool = False
        recursive: bool = True
        single_branch: bool = False
        track_submodules: bool = False
        umask: Any = None
        archive: str | None = None
        archive_prefix: str | None = None
        separate_git_dir: str | None = None

        def __post_init__(self) -> None:
            for a, b in (("separate_git_dir", "bare"), ("accept_hostkey", "accept_newhostkey")):
                if getattr(self, a) and getattr(self, b):
                    raise vol.Invalid(f"parameters are mutually exclusive: {a}|{b}", path=[b])
            if self.archive_prefix is not None and self.archive is None:
                raise vol.Invalid("missing parameter(s) required by 'archive_prefix': archive", path=["archive_prefix"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        try:
            session = await Session.start(p, ctx)
            return await session.checkout()
        except Failed as exc:
            return exc.result


@dataclass
class Session:
    """One task's run: its parameters, what the probe found, and the result as Ansible builds it."""

    p: Git.Params
    ctx: TaskContext
    state: Checkout
    prelude: str                   # every script's first lines: locale, umask, GIT_SSH_COMMAND
    repo: str                      # the repo option, a local path as a file:// URL
    result: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    # --- starting: checks, the probe, ssh options ---------------------------------------------------------

    @classmethod
    async def start(cls, p: Git.Params, ctx: TaskContext) -> "Session":
        umask = umask_value(p.umask)
        if not p.dest and p.clone:
            raise fail("the destination directory must be specified unless clone=no")
        prelude = LOCALE + (f"umask {umask:04o}\n" if umask is not None else "")
        tags = await probe(p, ctx, prelude)
        state, warnings = parse_probe(p, tags)
        expanded = state.home + p.repo[1:] if p.repo == "~" or p.repo.startswith("~/") else p.repo
        repo = "file://" + expanded if expanded.startswith("/") else p.repo
        prelude += f"GIT_SSH_COMMAND=\"${{GIT_SSH:-${{GIT_SSH_COMMAND:-ssh}}}}\"{shlex.quote(ssh_options(p, tags))}\n"
        session = cls(p, ctx, state, prelude + "export GIT_SSH_COMMAND\n", repo, warnings=warnings)
        if p.separate_git_dir and state.dest:
            await session.relocate(first(tags, "sgd") or p.separate_git_dir, first(tags, "sgd-exists") is not None)
        return session

    def git(self, *args: str) -> tuple[str, ...]:
        return (self.state.git, *args)

    async def steps(self, *steps: Step, extra: str = "") -> dict[str, CommandResult]:
        """Run steps in one script; what each one that ran printed. A fatal step's failure raises."""
        script = self.prelude + RUNNER + extra + "".join(
            f"step {shlex.quote(s.name)} {q(s.cwd or '')} {0 if s.fail is None else 1} {words(s.argv)}\n"
            for s in steps)
        res = await quiet(self.ctx, script)
        if not res.ok:
            raise Failed(failure("could not run git", res))
        tags, _ = tagged(res.stdout)
        outputs: dict[str, CommandResult] = {}
        for s in steps:
            rc = first(tags, f"rc:{s.name}")
            if rc is None:
                break
            outputs[s.name] = out = CommandResult(int(rc), lines(tags, s.name), lines(tags, s.name + "!"))
            if out.rc != 0 and s.fail is not None:
                raise s.fail(s, out)
        return outputs

    def done(self) -> Result:
        """The Result of Ansible's exit_json(**result)."""
        data = {k: v for k, v in self.result.items() if k not in ("changed", "msg")}
        if self.warnings:
            data["warnings"] = self.warnings
        diff = data.get("diff", {}).get("prepared", "") if self.ctx.diff else ""
        return Result(changed=bool(self.result.get("changed")), msg=self.result.get("msg", ""), diff=diff, data=data)

    # --- the flow of Ansible's main() ---------------------------------------------------------------------

    async def checkout(self) -> Result:
        p, st = self.p, self.state
        self.result.setdefault("changed", False)   # relocate() may have changed it
        self.result["before"] = None
        local_mods = remote_url_changed = False
        if (st.dest and not st.config) or (not st.dest and not p.clone):
            if self.ctx.check or not p.clone:   # Ansible reports what a clone would check out
                self.result.update(changed=True, after=await self.remote_head(self.repo, cloning=True))
                await self.add_diff()
                return self.done()
            await self.clone()
            self.state = st = await self.reinspect()
        elif not p.update:   # a repository is there: report it, whatever it is a checkout of
            self.result.update(before=st.head, after=st.head)
            if p.archive:
                await self.create_archive()
            return self.done()
        else:
            local_mods = st.mods
            self.result["before"] = st.head
            if local_mods and not p.force:   # checked in check mode too
                raise fail(f"Local modifications exist in the destination: {st.dest} (force=no).",
                           before=st.head)
            if self.ctx.check:
                url = st.url
                remote_url_changed = url and url != self.repo and self.unfrack(url) != self.unfrack(self.repo)
                self.result["remote_url_changed"] = remote_url_changed
                after = await self.remote_head(p.remote, cloning=False)
                self.result.update(changed=st.head != after or bool(remote_url_changed), after=after)
                await self.add_diff()
                return self.done()
            remote_url_changed = await self.update(local_mods)
        after, gitmodules = await self.switch_version()
        submodules = False
        if p.recursive and not p.bare and gitmodules is not None:
            submodules = await self.submodules(gitmodules)
            if submodules:
                self.result["submodules_changed"] = True
                after = await self.update_submodules()
        self.result["after"] = after
        if self.result["before"] != after or local_mods or submodules or remote_url_changed:
            self.result["changed"] = True
            await self.add_diff()
        if p.archive:
            await self.create_archive()
        return self.done()

    # --- the probe ---------------------------------------------------------------------------------------

    async def reinspect(self) -> Checkout:
        """The probe again, after a clone made the repository."""
        return parse_probe(self.p, await probe(self.p, self.ctx, self.prelude))[0]

    def unfrack(self, path: str) -> str:
        """unfrackgitpath, lexically: the path made absolute from the module's directory and normalised."""
        if path == "~" or path.startswith("~/"):
            path = self.state.home + path[1:]
        return posixpath.normpath(posixpath.join(self.state.pwd, path))

    async def relocate(self, separate: str, exists: bool) -> None:
        """separate_git_dir for an existing checkout: move its repository there, as Ansible's relocate_repo."""
        st = self.state
        if not st.config or separate == st.repo_path:
            return
        self.result["changed"] = True
        if self.ctx.check:
            return
        if exists:
            raise fail(f"Separate-git-dir path {separate} already exists.")
        res = await quiet(self.ctx, f"mv {q(st.repo_path or '')} {q(separate)} && "
                                    f"printf 'gitdir: %s' {q(separate)} > {q(posixpath.join(st.dest or '', '.git'))}")
        if not res.ok:
            raise fail("Unable to move git dir.", res)
        self.result.update(git_dir_before=st.repo_path, git_dir_now=separate)
        st.repo_path = separate

    # --- what the remote has ------------------------------------------------------------------------------

    def ls_remote(self, name: str, target: str, *pattern: str, cwd: str | None = None) -> Step:
        return Step(name, self.git("ls-remote", target, *pattern), cwd, check_rc)

    async def remote_kind(self, target: str, version: str) -> tuple[bool, bool]:
        """(is_remote_branch, is_remote_tag): version's name anywhere in ls-remote's output, as Ansible tests it."""
        dest = self.state.dest
        out = await self.steps(self.ls_remote("branch", target, "-h", f"refs/heads/{version}", cwd=dest),
                               self.ls_remote("tag", target, "-t", f"refs/tags/{version}", cwd=dest))
        return version in out["branch"].stdout, version in out["tag"].stdout

    async def remote_head(self, target: str, cloning: bool) -> str:
        """get_remote_head: the commit version names on the remote; anything else is taken as a SHA, as it is."""
        v, cwd = self.p.version, None if cloning else self.state.dest
        tag = False
        if v == "HEAD":
            pattern = ("-h", "HEAD" if cloning else f"refs/heads/{self.state.head_branch(self.p.remote)}")
        else:
            branch, tag = await self.remote_kind(target, v)
            if branch:
                pattern, tag = ("-h", f"refs/heads/{v}"), False
            elif tag:
                pattern = ("-t", f"refs/tags/{v}*")
            else:
                return v
        out = (await self.steps(self.ls_remote("head", target, *pattern, cwd=cwd)))["head"]
        if not out.stdout:
            raise fail(f"Could not determine remote revision for {v}", out)
        chosen = out.stdout
        if tag:   # an annotated tag's own line, then the commit it points at (its ^{} line) wins
            for line in out.stdout.split("\n"):
                if line.endswith(v + "^{}"):
                    chosen = line
                    break
                if line.endswith(v):
                    chosen = line
        return chosen.split()[0]

    # --- clone, update, switch ------------------------------------------------------------------------

    async def clone(self) -> None:
        p, dest = self.p, self.state.dest or ""
        branch, tag = await self.remote_kind(self.repo, p.version)
        named = branch or tag
        cmd = ["clone", "--bare"] if p.bare else ["clone", "--origin", p.remote]
        if p.depth:
            if p.version == "HEAD" or p.refspec:
                cmd += ["--depth", str(p.depth)]
            elif named:
                cmd += ["--depth", str(p.depth), "--branch", p.version]
            else:
                self.warnings.append("Ignoring depth argument. Shallow clones are only available for HEAD, "
                                     "branches, tags or in combination with refspec.")
        if p.reference:
            cmd += ["--reference", p.reference]
        if p.single_branch:
            cmd += ["--single-branch", *(["--branch", p.version] if named else [])]
        if p.separate_git_dir:
            cmd.append(f"--separate-git-dir={self.state.repo_path}")
        steps = [Step("clone", self.git(*cmd, self.repo, dest), posixpath.dirname(dest), check_rc)]
        if p.bare and p.remote != "origin":
            steps.append(Step("remote", self.git("remote", "add", p.remote, self.repo), dest, check_rc))
        if p.refspec:
            depth = ["--depth", str(p.depth)] if p.depth else []
            steps.append(Step("refspec", self.git("fetch", *depth, p.remote, p.refspec), dest, check_rc))
        await self.steps(*steps, extra=f"mkdir -p {q(posixpath.dirname(dest))} 2>/dev/null\n")
        if p.verify_commit:
            await self.verify()

    async def update(self, local_mods: bool) -> bool:
        """The non-check update: reset local changes (force), point the remote at repo, fetch. Returns
        remote_url_changed."""
        p, st = self.p, self.state
        steps = []
        if local_mods:
            steps.append(Step("reset", self.git("reset", "--hard", "HEAD"), st.dest, check_rc))
            self.result.update(changed=True, msg=f"Local modifications exist in the destination: {st.dest}")
        url_changed = False
        if not (st.url == self.repo or st.url is not None and self.unfrack(st.url) == self.unfrack(self.repo)):
            label = f"set a new url {self.repo} for {p.remote}"
            steps.append(Step("seturl", self.git("remote", "set-url", p.remote, self.repo), st.dest,
                              lambda s, out: fail(f"Failed to {label}: {out.stdout} {out.stderr}")))
            url_changed = st.url is not None
        self.result["remote_url_changed"] = url_changed
        steps.append(await self.fetch_step())
        await self.steps(*steps)
        return url_changed

    async def fetch_step(self, version: str | None = None, refspec: str | None = None, force: bool | None = None
                         ) -> Step:
        """Ansible's fetch(): with depth, only the refs version needs; otherwise every branch and tag."""
        p, st = self.p, self.state
        version = p.version if version is None else version
        refspec = p.refspec if refspec is None else refspec
        cmd, refspecs = ["fetch"], []
        if p.depth:
            if refspec:
                refspecs.append(refspec)
            elif version == "HEAD":
                refspecs.append(str(st.head_branch(p.remote)))
            else:
                branch, tag = await self.remote_kind(self.repo, version)
                if branch:
                    if st.head_branch(p.remote) != version:
                        refspecs.append(f"+refs/heads/{version}:refs/heads/{version}")
                    refspecs.append(f"+refs/heads/{version}:refs/remotes/{p.remote}/{version}")
                elif tag:
                    refspecs.append(f"+refs/tags/{version}:refs/tags/{version}")
            if refspecs:
                cmd += ["--depth", str(p.depth)]
        if not p.depth or not refspecs:
            if p.bare:
                refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
            else:
                cmd.append("--tags")
            if refspec:
                refspecs.append(refspec)
        if p.force if force is None else force:
            cmd.append("--force")
        argv = self.git(*cmd, p.remote, *refspecs)
        return Step("fetch", argv, st.dest, lambda s, out: fail(
            f"Failed to download remote objects and refs: {out.stdout} {out.stderr}", cmd=list(s.argv)))

    async def switch_version(self) -> tuple[str, str | None]:
        """Check out version (not in a bare repository); then HEAD's commit and .gitmodules (None if absent)."""
        p, st = self.p, self.state
        v, dest, steps = p.version, st.dest, []
        if p.bare:
            pass
        elif v == "HEAD":
            branch = st.head_branch(p.remote)
            steps += [Step("checkout", self.git("checkout", "--force", str(branch)), dest,
                           failing(f"Failed to checkout branch {branch}", with_cmd=False)),
                      Step("switch", self.git("reset", "--hard", f"{p.remote}/{branch}", "--"), dest,
                           failing(f"Failed to checkout branch {branch}"))]
        elif (await self.remote_kind(p.remote, v))[0]:
            local = st.is_local_branch(v)
            if p.depth and not local:   # a shallow clone has only its branch: fetch this one first
                refs = (f"+refs/heads/{v}:refs/heads/{v}", f"+refs/heads/{v}:refs/remotes/{p.remote}/{v}")
                steps.append(Step("branch", self.git("fetch", f"--depth={p.depth}", p.remote, *refs), dest,
                                  failing(f"Failed to fetch branch from remote: {v}", with_cmd=False)))
                local = True   # the fetch made the local branch
            if not local:
                steps.append(Step("switch", self.git("checkout", "--track", "-b", v, f"{p.remote}/{v}"), dest,
                                  failing(f"Failed to checkout {v}")))
            else:
                steps += [Step("checkout", self.git("checkout", "--force", v), dest,
                               failing(f"Failed to checkout branch {v}", with_cmd=False)),
                          Step("switch", self.git("reset", "--hard", f"{p.remote}/{v}"), dest,
                               failing(f"Failed to checkout {v}"))]
        else:
            steps.append(Step("switch", self.git("checkout", "--force", v), dest, failing(f"Failed to checkout {v}")))
        if p.verify_commit and not p.bare:
            await self.steps(*steps)
            await self.verify()
            steps = []
        steps += [Step("after", self.git("rev-parse", "HEAD"), dest), Step("gitmodules", ("cat", ".gitmodules"), dest)]
        out = await self.steps(*steps)
        gitmodules = out["gitmodules"].stdout if out["gitmodules"].ok else None
        return out["after"].stdout.rstrip("\n"), gitmodules

    async def verify(self) -> None:
        """verify_commit: git verify-tag for an annotated tag, verify-commit otherwise; gpg_allowlist checked."""
        p, dest = self.p, self.state.dest
        out = await self.steps(Step("tags", self.git("for-each-ref", "refs/tags/", "--format",
                                                     "%(objecttype):%(refname:short)"), dest))
        if not out["tags"].ok:
            raise fail(f"Could not determine tag data - received {out['tags'].stdout}", stdout=out["tags"].stdout,
                       stderr=out["tags"].stderr)
        annotated = [line.split(":", 1)[1] for line in out["tags"].stdout.splitlines() if line.startswith("tag:")]
        argv = self.git("verify-tag" if p.version in annotated else "verify-commit", p.version,
                        *(["--raw"] if p.gpg_allowlist else []))
        res = (await self.steps(Step("verify", argv, dest)))["verify"]
        if not res.ok:
            raise fail(f'Failed to verify GPG signature of commit/tag "{p.version}"', res)
        if p.gpg_allowlist:
            fingerprint = gpg_fingerprint(res.stderr)
            if fingerprint not in p.gpg_allowlist:
                raise fail(f'The gpg_allowlist does not include the public key "{fingerprint}" for this commit', res)

    # --- submodules ---------------------------------------------------------------------------------------

    async def submodules(self, gitmodules: str) -> bool:
        """submodules_fetch: a new submodule, or one whose commit is not the one wanted, is a change."""
        p, dest = self.p, self.state.dest or ""
        paths = [line.split("=", 1)[1].strip() for line in gitmodules.splitlines()
                 if line.strip().startswith("path") and "=" in line]
        checks = "".join(f"[ -e {q(posixpath.join(dest, path, '.git'))} ] || echo new\n" for path in paths)
        if "new" in (await quiet(self.ctx, checks + "exit 0\n")).stdout:
            return True
        foreach = ("submodule", "foreach", self.state.git)
        steps = [Step("begin", self.git(*foreach, "rev-parse", "HEAD"), dest,
                      failing("Unable to determine hashes of submodules", with_cmd=False)),
                 Step("subfetch", self.git(*foreach, "fetch"), dest, check_rc)]
        if p.track_submodules:   # Ansible compares with <remote>/master, whatever .gitmodules says
            steps.append(Step("tracked", self.git(*foreach, "rev-parse", f"{p.remote}/master"), dest,
                              failing("Unable to determine hashes of submodules", with_cmd=False)))
        else:
            steps.append(Step("status", self.git("submodule", "status"), dest, check_rc))
        out = await self.steps(*steps)
        if p.track_submodules:
            return submodule_versions(out["begin"].stdout) != submodule_versions(out["tracked"].stdout)
        return any(line[:1] != " " for line in out["status"].stdout.splitlines())

    async def update_submodules(self) -> str:
        """submodule_update: sync, then init and update them all (to their remote branch when tracking)."""
        p, dest = self.p, self.state.dest
        update = ["submodule", "update", "--init", "--recursive", *(["--remote"] if p.track_submodules else []),
                  *(["--force"] if p.force else [])]
        out = await self.steps(
            Step("sync", self.git("submodule", "sync"), dest, check_rc),
            Step("update", self.git(*update), dest,
                 lambda s, res: fail(f"Failed to init/update submodules: {res.stdout}{res.stderr}")),
            Step("after", self.git("rev-parse", "HEAD"), dest))
        return out["after"].stdout.rstrip("\n")

    # --- diff and archive ---------------------------------------------------------------------------------

    async def add_diff(self) -> None:
        """get_diff in diff mode: the new commit, or `git diff before after` (fetched first, as Ansible does,
        so that check mode can show it too)."""
        if not self.ctx.diff:
            return
        before, after = self.result.get("before"), self.result.get("after")
        if before is None:
            self.result["diff"] = {"prepared": f">> Newly checked out {after}"}
            return
        if before == after:
            return
        fetch = await self.fetch_step(version=after, refspec="", force=False)
        out = (await self.steps(fetch, Step("diff", self.git("diff", before, after), self.state.dest)))["diff"]
        if out.ok:
            text = out.stdout or f">> No visual differences between {before} and {after}"
        else:
            text = f">> Failed to get proper diff between {before} and {after}" + (
                f":\n>> {out.stderr}" if out.stderr else "")
        self.result["diff"] = {"prepared": text}

    async def create_archive(self) -> None:
        """archive: `git archive` of version; an existing archive is replaced only when it differs."""
        p = self.p
        archive = p.archive or ""
        fmt = ARCHIVE_FORMATS.get(posixpath.splitext(archive)[1])
        if fmt is None:
            raise fail(f"Unable to get file extension from archive file name : {archive}",
                       details="Please specify archive as filename with extension. File extension can be one "
                               "of ['tar', 'tar.gz', 'zip', 'tgz']")
        if self.ctx.check:
            self.result["changed"] = True
            return
        name = self.repo.split("/")[-1].replace(".git", "") + "." + fmt
        prefix = ["--prefix", p.archive_prefix] if p.archive_prefix is not None else []
        build = words(self.git("archive", "--format", fmt, "--output", "$out", *prefix, p.version)).replace(
            "'$out'", '"$out"')
        script = (f"{self.prelude}cd {q(self.state.dest or '')} || exit\na={q(archive)}\n"
                  f"if [ -e \"$a\" ]; then d=$(mktemp -d) || exit; out=$d/{q(name)}; else d=; out=$a; fi\n"
                  f"if e=$({build} 2>&1 >/dev/null); then\n"
                  "  if [ -z \"$d\" ]; then echo created\n"
                  "  elif cmp -s \"$out\" \"$a\"; then echo same\n"
                  "  elif mv -f \"$out\" \"$a\"; then echo moved\n"
                  "  else echo nomove; fi\n"
                  "else printf '%s\\n' \"$e\" | sed 's/^/error /'; fi\n"
                  "[ -z \"$d\" ] || rm -rf \"$d\"\n")
        tags, _ = tagged((await quiet(self.ctx, script)).stdout)
        if "same" in tags:
            self.result["changed"] = False
        elif "created" in tags or "moved" in tags:
            self.result["changed"] = True
        elif "nomove" in tags:
            raise fail(f"Failed to move {name} to {archive}", details="Error occurred while moving")
        else:
            raise fail("Failed to perform archive operation",
                       details=f"Git archive command failed to create archive {archive} using "
                               f"{self.state.dest} directory.Error: " + "\n".join(tags.get("error", [])))


def submodule_versions(stdout: str) -> dict[str, str]:
    """get_submodule_versions: `submodule foreach git rev-parse` output as {submodule: commit}."""
    found, name = {}, None
    for line in stdout.splitlines():
        if line.startswith("Entering '"):
            name = line[10:-1]
        elif len(line.strip()) == 40 and name is not None:
            found[name], name = line.strip(), None
        else:
            raise fail(f"Unable to parse submodule hash line: {line.strip()}")
    if name is not None:
        raise fail(f"Unable to find hash for submodule: {name}")
    return found


def ssh_options(p: Git.Params, tags: dict[str, list[str]]) -> str:
    """What follows ssh in GIT_SSH_COMMAND, built as Ansible's main() and set_git_ssh_env build it."""
    opts = p.ssh_opts
    for wanted, supported in (("no", p.accept_hostkey), ("accept-new", p.accept_newhostkey and "ssh" in tags)):
        if supported and (opts is None or ("-o StrictHostKeyChecking=no" not in opts
                                           and "-o StrictHostKeyChecking=accept-new" not in opts)):
            opts = (opts + " " if opts is not None else "") + f"-o StrictHostKeyChecking={wanted}"
    opts = "" if opts is None else " " + opts
    if p.accept_hostkey and "StrictHostKeyChecking=no" not in opts:
        opts += " -o StrictHostKeyChecking=no"
    if "BatchMode=yes" not in opts:
        opts += " -o BatchMode=yes"
    if p.key_file:
        if f"-i {p.key_file}" not in opts:
            opts += f"  -i {p.key_file}"
        if "IdentitiesOnly=yes" not in opts:
            opts += " -o IdentitiesOnly=yes"
    return " " + opts


async def probe(p: Git.Params, ctx: TaskContext, prelude: str) -> dict[str, list[str]]:
    res = await quiet(ctx, prelude + probe_script(p))
    if not res.ok:
        raise Failed(failure("could not inspect the checkout", res))
    return tagged(res.stdout)[0]


def probe_script(p: Git.Params) -> str:
    """Find git; then, with dest, where its repository is and, if there is one, its state."""
    if p.executable:   # used as it is; one that cannot run fails as Ansible's run_command reports it
        script = (f"g=$(command -v {q(p.executable)}) || {{ [ -e {q(p.executable)} ] && echo 'noexec 13' "
                  "|| echo 'noexec 2'; exit 0; }\nprintf 'git %s\\n' \"$g\"\n")
    else:
        script = bin_path_sh("g", "git", "git") + "if [ -z \"$g\" ]; then\n" + SEARCH_PATHS_SH + "exit 0; fi\n"
    script += "printf 'home %s\\npwd %s\\n' \"$HOME\" \"$PWD\"\n"
    if p.accept_newhostkey:
        script += ("if ! command -v ssh >/dev/null; then echo 'nossh'; exit 0\n"
                   "elif ssh -o StrictHostKeyChecking=accept-new -V 2>/dev/null; then echo ssh; fi\n")
    if not p.dest:
        return script
    script += (f"d={q(p.dest)}; case $d in /*) ;; *) d=$PWD/$d;; esac\nprintf 'dest %s\\n' \"$d\"\n"
               f"r=$d{'' if p.bare else '/.git'}\n"
               "if [ -f \"$r\" ]; then l=$(cat \"$r\")\n"
               "  case $l in 'gitdir: '*) r=${l#gitdir: }; case $r in /*) ;; *) r=$d/$r;; esac\n"
               "    [ -d \"$r\" ] || { printf 'badgit %s is not a directory\\n' \"$r\"; exit 0; };;\n"
               "  *) echo 'badgit .git file has invalid git dir reference format'; exit 0;; esac\nfi\n"
               "printf 'repo %s\\n' \"$r\"\n")
    if p.separate_git_dir:   # its real path, as Ansible compares it
        script += (f"s={q(p.separate_git_dir)}; case $s in /*) ;; *) s=$PWD/$s;; esac\n"
                   "s=$(cd \"$(dirname \"$s\")\" 2>/dev/null && printf '%s/%s' \"$(pwd -P)\" \"$(basename \"$s\")\" "
                   "|| printf %s \"$s\")\nprintf 'sgd %s\\n' \"$s\"; [ -e \"$s\" ] && echo sgd-exists\n")
    script += ("[ -f \"$r/config\" ] || exit 0\necho config\ncd \"$d\" || exit 0\n"
               "printf 'head %s\\n' \"$(\"$g\" rev-parse HEAD 2>/dev/null)\"\n"
               f"u=$(\"$g\" ls-remote --get-url {q(p.remote)} 2>/dev/null) && printf 'url %s\\n' \"$u\"\n"
               "\"$g\" branch --no-color -a 2>/dev/null | awk '{print \"branch \" $0}'\n"
               "[ -f \"$r/HEAD\" ] && printf 'headfile %s\\n' \"$(head -n 1 \"$r/HEAD\")\"\n"
               f"h=\"$r/refs/remotes/\"{q(p.remote)}/HEAD\n"
               "[ -f \"$h\" ] && printf 'remotehead %s\\n' \"$(head -n 1 \"$h\")\"\n")
    if not p.bare:   # tracked files that differ (untracked ones, ?? lines, do not count)
        script += "\"$g\" status --porcelain 2>/dev/null | grep -qv '^??' && echo mods\n"
    return script + "exit 0\n"


def parse_probe(p: Git.Params, tags: dict[str, list[str]]) -> tuple[Checkout, list[str]]:
    """The probe's findings, or Ansible's failure for what it could not find."""
    warnings: list[str] = []
    if "noexec" in tags:   # run_command's OSError: ENOENT (2) or EACCES (13)
        raise Failed(Result(failed=True, msg="Error executing command.", rc=int(first(tags, "noexec") or 2),
                            data={"cmd": f"{p.executable} --version"}))
    if "git" not in tags:
        raise fail(missing_executable("git", tags) + " (install the git package on the target)")
    if "nossh" in tags:
        raise fail("Remote host is missing ssh command, so you cannot use acceptnewhostkey option.",
                   details='Failed to find required executable "ssh"')
    if p.accept_newhostkey and "ssh" not in tags:
        warnings.append("Your ssh client does not support accept_newhostkey option, therefore it cannot be used.")
    if "badgit" in tags:
        raise fail("Current repo does not have a valid reference to a separate Git dir or it refers to the invalid "
                   "path", details=first(tags, "badgit"))
    dest = first(tags, "dest")
    state = Checkout(git=p.executable or first(tags, "git") or "git", home=first(tags, "home") or "/",
                     pwd=first(tags, "pwd") or "/", dest=posixpath.normpath(dest) if dest else None,
                     repo_path=first(tags, "repo"), config="config" in tags, head=first(tags, "head") or "", mods="mods" in tags,
                     url=first(tags, "url"), branches=[b.strip() for b in tags.get("branch", []) if b.strip()],
                     head_file=first(tags, "headfile"), remote_head_file=first(tags, "remotehead"))
    if p.separate_git_dir and not state.config:   # a clone puts its repository there
        state.repo_path = first(tags, "sgd")
    return state, warnings

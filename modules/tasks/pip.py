"""pip: install, upgrade or remove Python packages with pip on the target, as Ansible's pip module does.

This module needs Python on the target, by nature: pip is a Python program. It runs the target's pip (in
a virtualenv it creates first when asked, with `virtualenv` or `python3 -m venv`) and, as Ansible's module,
lets pip decide: pip always runs, and a change is what pip reports ("Successfully installed"), or with a
requirements file or a VCS URL, a different `pip list` before and after. In check mode, a package is present
when `pip list` has a version its specifier accepts, judged here with PEP 440's rules (see Requirement).
"""
from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, string
from engine.remote.connection import CommandResult
from modules.tasks._remote import CONTENT, first, maybe, q, quiet, tagged, words
from modules.tasks.git import SEARCH_PATHS_SH, bin_path_sh, missing_executable

STATES = {"present": ("install",), "absent": ("uninstall", "-y"), "latest": ("install", "-U"),
          "forcereinstall": ("install", "-U", "--force-reinstall")}
LIST_LOCALE = "LANG=C LC_ALL=C LC_MESSAGES=C "    # `pip list` is parsed
VCS = re.compile(r"(svn|git|hg|bzr)\+")
OPERATORS = (">=", "<=", ">", "<", "==", "!=", "~=")


def names(value: Any) -> list[str]:
    """Ansible's list of str: a list, or a comma-separated string split at its commas."""
    if isinstance(value, list):
        return [string(item) for item in value]
    return string(value).split(",")


# --- requirements and versions, as Ansible's Package judges them through `packaging` --------------------

VERSION = re.compile(r"""^\s*v?(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?
    (?P<dev>[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$""", re.VERBOSE | re.IGNORECASE)
PRE_LETTERS = {"alpha": "a", "beta": "b", "c": "rc", "pre": "rc", "preview": "rc"}
NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
REQUIREMENT = re.compile(rf"""^\s*(?P<name>{NAME})\s*(?:\[\s*(?P<extras>{NAME}(?:\s*,\s*{NAME})*)?\s*\])?\s*
    (?:@\s*(?P<url>\S+)\s*|(?P<open>\()?\s*(?P<specs>[^;()]*?)\s*(?(open)\)))
    (?:;\s*(?P<marker>.*?))?\s*$""", re.VERBOSE)
SPEC = re.compile(r"^\s*(?P<op>===|~=|==|!=|<=|>=|<|>)\s*(?P<version>[^\s,;)]+)\s*$")


@dataclass(frozen=True, order=True)
class Version:
    """A PEP 440 version, compared as packaging's Version (its _cmpkey)."""

    key: tuple
    epoch: int = field(compare=False)
    release: tuple[int, ...] = field(compare=False)
    text: str = field(compare=False)
    pre: bool = field(compare=False, default=False)
    post: bool = field(compare=False, default=False)
    local: bool = field(compare=False, default=False)

    @classmethod
    def parse(cls, text: str) -> "Version | None":
        m = VERSION.match(text)
        if not m:
            return None
        epoch, release = int(m["epoch"] or 0), tuple(int(x) for x in m["release"].split("."))
        pre = (1, PRE_LETTERS.get(m["pre_l"].lower(), m["pre_l"].lower()), int(m["pre_n"] or 0)) if m["pre"] else None
        post = (1, int(m["post_n1"] or m["post_n2"] or 0)) if m["post"] else (0,)
        dev = (1, int(m["dev_n"] or 0)) if m["dev"] else (2,)
        local = (0,) if not m["local"] else (1, tuple((1, int(part), "") if part.isdigit() else (0, 0, part.lower())
                                                      for part in re.split(r"[-_.]", m["local"])))
        trimmed = release
        while len(trimmed) > 1 and trimmed[-1] == 0:
            trimmed = trimmed[:-1]
        pre_key = pre or ((0,) if not m["post"] and m["dev"] else (2,))
        return cls((epoch, trimmed, pre_key, post, dev, local), epoch, release, text.strip(),
                   pre=bool(m["pre"] or m["dev"]), post=bool(m["post"]), local=bool(m["local"]))

    @property
    def public(self) -> "Version":
        return Version((*self.key[:5], (0,)), self.epoch, self.release, self.text.split("+")[0])

    @property
    def base(self) -> "Version":
        return Version((self.epoch, self.key[1], (2,), (0,), (2,), (0,)), self.epoch, self.release, "")


def release_prefix(v: Version, prefix: tuple[int, ...], epoch: int) -> bool:
    padded = v.release + (0,) * max(0, len(prefix) - len(v.release))
    return v.epoch == epoch and padded[:len(prefix)] == prefix


@dataclass(frozen=True)
class Specifier:
    op: str
    version: str

    def __str__(self) -> str:
        return self.op + self.version

    @classmethod
    def parse(cls, text: str) -> "Specifier":
        m = SPEC.match(text)
        if not m:
            raise ValueError(f"invalid specifier {text!r}")
        op, version = m["op"], m["version"]
        wildcard = version.endswith(".*")
        if op == "===":
            return cls(op, version)
        parsed = Version.parse(version[:-2] if wildcard else version)
        if parsed is None or (wildcard and op not in ("==", "!=")) or (parsed.local and op not in ("==", "!=")) \
                or (op == "~=" and len(parsed.release) < 2):
            raise ValueError(f"invalid specifier {text!r}")
        return cls(op, version)

    def contains(self, v: Version) -> bool:
        """packaging's Specifier.contains(v, prereleases=True)."""
        if self.op == "===":
            return v.text.lower() == self.version.lower()
        if self.op in ("==", "!="):
            return self._equal(v) == (self.op == "==")
        spec = Version.parse(self.version)
        assert spec is not None   # checked by parse
        if self.op == "~=":
            return v.public >= spec and release_prefix(v, spec.release[:-1], spec.epoch)
        if self.op in ("<=", ">="):
            return v.public <= spec if self.op == "<=" else v.public >= spec
        if self.op == "<":
            return v < spec and not (not spec.pre and v.pre and v.base == spec.base)
        return v > spec and not ((not spec.post and v.post or v.local) and v.base == spec.base)

    def _equal(self, v: Version) -> bool:
        if self.version.endswith(".*"):
            spec = Version.parse(self.version[:-2])
            assert spec is not None
            return release_prefix(v.public, spec.release, spec.epoch)
        spec = Version.parse(self.version)
        assert spec is not None
        return (v if spec.local else v.public) == spec


@dataclass(frozen=True)
class Requirement:
    """A PEP 508 requirement ("name[extra]>=1,<2; marker"), written back as packaging (26) writes it; a
    marker is kept as written, where packaging would respace it."""

    name: str
    extras: tuple[str, ...] = ()
    specifiers: tuple[Specifier, ...] = ()
    url: str | None = None
    marker: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Requirement":
        m = REQUIREMENT.match(text)
        if not m:
            raise ValueError(f"invalid requirement {text!r}")
        specs = m["specs"] or ""
        parsed = tuple({str(s): s for s in (Specifier.parse(part) for part in specs.split(","))}.values()) \
            if specs.strip() else ()
        extras = tuple(sorted({e.strip() for e in (m["extras"] or "").split(",") if e.strip()}))
        return cls(m["name"], extras, parsed, m["url"], m["marker"] or None)

    def __str__(self) -> str:
        text = self.name + (f"[{','.join(self.extras)}]" if self.extras else "")
        text += ",".join(sorted(str(s) for s in self.specifiers))
        if self.url:
            text += f" @ {self.url}" + (" " if self.marker else "")
        return text + (f"; {self.marker}" if self.marker else "")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Package:
    """Ansible's Package: a requirement it could parse (plain), or a path or URL taken as it is."""

    package_name: str
    requirement: Requirement | None = None

    @classmethod
    def of(cls, name: str, version: str | None = None) -> "Package":
        original = name
        if version:
            version = version.lstrip()
            name = ("==" if version[:1].isdigit() else " ").join((name, version))
        try:
            requirement = Requirement.parse(name)
        except ValueError:
            return cls(original)
        return cls(canonical(requirement.name), requirement)

    @property
    def has_version_specifier(self) -> bool:
        return bool(self.requirement and self.requirement.specifiers)

    def is_satisfied_by(self, version: str) -> bool:
        parsed = Version.parse(version)
        if self.requirement is None or parsed is None:
            return False
        return all(spec.contains(parsed) for spec in self.requirement.specifiers)

    def __str__(self) -> str:
        return str(self.requirement) if self.requirement else self.package_name


def recover_package_names(raw: list[str]) -> list[str]:
    """Ansible's _recover_package_name: ["django>1.11.1", "<1.11.3"] (a comma string split) back to
    ["django>1.11.1,<1.11.3"], commas inside [extras] kept."""
    parts = [piece for item in raw for piece in item.split(",")]
    packages: list[str] = []
    current: list[str] = []
    in_brackets = False
    for part in parts:
        if not part.lstrip().startswith(OPERATORS) and not in_brackets:
            if current:
                packages.append(",".join(current))
            current = []
        if "[" in part:
            in_brackets = True
        if in_brackets and "]" in part:
            in_brackets = False
        current.append(part)
    packages.append(",".join(current))
    return packages


def is_present(package: Package, listed: list[str]) -> bool:
    """Ansible's _is_present: a `name==version` line of `pip list` whose version the package accepts."""
    for line in listed:
        if line.count("==") != 1:
            continue
        name, version = line.split("==")
        if canonical(name) == package.package_name and package.is_satisfied_by(version):
            return True
    return False


NOEXEC = "recipe-cannot-execute"   # what the exec guard prints, with the errno Ansible's run_command reports


def exec_sh(argv: list[str], env: str = "") -> str:
    """`exec argv` behind a guard: a program that cannot be run is reported as Ansible's run_command reports
    it (its OSError: ENOENT 2, EACCES 13), not as the shell's 127."""
    program = q(argv[0])
    guard = (f"case {program} in */*) [ -f {program} ] && [ -x {program} ] || "
             f"{{ [ -e {program} ] && echo '{NOEXEC} 13' >&2 || echo '{NOEXEC} 2' >&2; exit 127; }};;\n"
             f"*) command -v {program} >/dev/null || {{ echo '{NOEXEC} 2' >&2; exit 127; }};; esac\n")
    return guard + f"{env}exec {words(argv)}\n"


def not_executed(argv: list[str], res: CommandResult) -> Result | None:
    """Ansible's failure for a program that could not be started, or None when it ran."""
    if res.rc != 127 or not res.stderr.startswith(NOEXEC):
        return None
    return Result(failed=True, msg="Error executing command.", rc=int(res.stderr.split()[1]), stdout="", stderr="",
                  data={"cmd": shlex.join(argv)})


def fail_output(cmd: Any, out: str, err: str) -> Result:
    """Ansible's _fail: the command and its output as the message."""
    msg = (f"stdout: {out}" if out else "") + (f"\n:stderr: {err}" if err else "")
    return Result(failed=True, msg=msg, data={"cmd": cmd})


def is_venv_command(argv: list[str]) -> bool:
    """`pyvenv`, or `<python> -m venv`: they take no -p."""
    if argv[0] == "pyvenv":
        return True
    return any(arg == "-m" and argv[i + 1:i + 2] == ["venv"] or arg == "-mvenv" for i, arg in enumerate(argv[1:], 1))


class Pip(TaskModule, name="pip"):
    description = "Install, upgrade or remove Python packages with pip on the target (needs Python there)"
    schema = {
        vol.Optional("name", default=None): maybe(names),
        vol.Optional("version", default=None): maybe(string),
        vol.Optional("requirements", default=None): maybe(string),
        vol.Optional("state", default="present"): vol.In(list(STATES)),
        vol.Optional("virtualenv", default=None): maybe(string),
        vol.Optional("virtualenv_site_packages", default=False): boolean,
        vol.Optional("virtualenv_command", default="virtualenv"): string,
        vol.Optional("virtualenv_python", default=None): maybe(string),
        vol.Optional("extra_args", default=None): maybe(string),
        vol.Optional("editable", default=False): boolean,
        vol.Optional("chdir", default=None): maybe(string),
        vol.Optional("executable", default=None): maybe(string),
        vol.Optional("umask", default=None): maybe(string),
        vol.Optional("break_system_packages", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        name: list[str] | None = None
        version: str | None = None
        requirements: str | None = None
        state: str = "present"
        virtualenv: str | None = None
        virtualenv_site_packages: bool = False
        virtualenv_command: str = "virtualenv"
        virtualenv_python: str | None = None
        extra_args: str | None = None
        editable: bool = False
        chdir: str | None = None
        executable: str | None = None
        umask: str | None = None
        break_system_packages: bool = False

        def __post_init__(self) -> None:
            if self.name is None and self.requirements is None:
                raise vol.Invalid("one of the following is required: name, requirements", path=["name"])
            for a, b in (("name", "requirements"), ("executable", "virtualenv")):
                if getattr(self, a) is not None and getattr(self, b) is not None:
                    raise vol.Invalid(f"parameters are mutually exclusive: {a}|{b}", path=[b])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        umask = None
        if p.umask:
            try:
                umask = int(p.umask, 8)
            except ValueError as exc:
                return Result(failed=True, msg="umask must be an octal integer", data={"details": str(exc)})
        if p.state == "latest" and p.version is not None:
            return Result(failed=True, msg="version is incompatible with state=latest")
        run = PipRun(p, ctx, f"umask {umask:04o}\n" if umask is not None else "")
        return await run.run()


@dataclass
class PipRun:
    """One task's run: the probe's findings, then Ansible's main() step by step."""

    p: Pip.Params
    ctx: TaskContext
    prelude: str                  # umask, for every script that writes
    tags: dict[str, list[str]] = field(default_factory=dict)
    out: str = ""                 # stdout and stderr so far: the virtualenv's, then pip's
    err: str = ""

    async def probe(self) -> None:
        self.tags = tagged((await quiet(self.ctx, self.probe_script())).stdout)[0]

    def probe_script(self) -> str:
        p = self.p
        script = "printf 'home %s\\ntmp %s\\n' \"$HOME\" \"${TMPDIR:-/tmp}\"\n" + SEARCH_PATHS_SH
        # the Python Ansible's module would run with: virtualenv's -p, and its pip module where nothing else is named
        script += "for c in python3 python; do y=$(command -v $c) && break; done\n[ -z \"$y\" ] || " \
                  "printf 'python %s\\n' \"$y\"\n"
        if p.virtualenv:
            script += (f"e={self.env_expr()}\nprintf 'env %s\\n' \"$e\"\n[ -e \"$e/bin/activate\" ] && echo venv\n"
                       "for n in pip3 pip; do [ -f \"$e/bin/$n\" ] && [ -x \"$e/bin/$n\" ] && "
                       "printf 'envpip %s\\n' \"$e/bin/$n\" && break; done\n")
        elif p.executable:
            if not p.executable.startswith("/"):   # an absolute one is used as it is
                script += bin_path_sh("x", p.executable, "exe")
        else:
            script += ("[ -n \"$y\" ] && \"$y\" -c 'import importlib.util, sys; "
                       "sys.exit(importlib.util.find_spec(\"pip\") is None)' 2>/dev/null && echo pipmodule\n")
            script += bin_path_sh("u", "pip3", "pip3")
        return script + "exit 0\n"

    def env_expr(self) -> str:
        """The virtualenv's path as a shell word: joined to chdir when relative, as Ansible joins them."""
        env, chdir = self.p.virtualenv or "", self.p.chdir
        if chdir and not (env.startswith("/") or env == "~" or env.startswith("~/")):
            return q(chdir) + "/" + q(env) if not chdir.endswith("/") else q(chdir) + q(env)
        return q(env)

    @property
    def chdir(self) -> str:
        return self.p.chdir or first(self.tags, "tmp") or "/tmp"

    @property
    def env(self) -> str | None:
        return first(self.tags, "env") if self.p.virtualenv else None

    def pip_command(self) -> list[str] | Result:
        """_get_pip: the executable given, the virtualenv's pip, the Python's pip module, or pip3."""
        p, tags = self.p, self.tags
        if p.executable and p.executable.startswith("/"):
            return [p.executable]
        if p.executable:
            return [first(tags, "exe") or ""] if "exe" in tags else Result(
                failed=True, msg=f"Unable to find any of {p.executable} to use.  pip needs to be installed.")
        if self.env:
            if "envpip" not in tags:
                return Result(failed=True, msg=f"Unable to find pip in the virtualenv, {self.env}, under any of these "
                                               "names: pip3, pip. Make sure pip is present in the virtualenv.")
            return [first(tags, "envpip") or ""]
        if "pipmodule" in tags:
            return [first(tags, "python") or "python3", "-m", "pip"]
        if "pip3" in tags:
            return [first(tags, "pip3") or "pip3"]
        return Result(failed=True, msg="Unable to find any of pip3 to use.  pip needs to be installed.")

    async def run(self) -> Result:
        p = self.p
        await self.probe()
        venv_created = False
        if self.env and "venv" not in self.tags:
            venv_created = True
            if self.ctx.check:
                return Result(changed=True)
            made = await self.setup_virtualenv()
            if made is not None:
                return made
            await self.probe()   # the new virtualenv's pip
        pip = self.pip_command()
        if isinstance(pip, Result):
            return pip
        cmd = [*pip, *STATES[p.state]]
        has_vcs = any(VCS.match(name) for name in p.name or [] if name)
        packages: list[Package] = []
        if p.name:
            packages = [Package.of(name) for name in recover_package_names(p.name)]
            if p.version is not None:
                if len(packages) > 1:
                    return Result(failed=True, msg="'version' argument is ambiguous when installing multiple package "
                                                   "distributions. Please specify version restrictions next to each "
                                                   "package in 'name' argument.")
                if packages[0].has_version_specifier:
                    return Result(failed=True, msg="The 'version' argument conflicts with any version specifier "
                                                   "provided along with a package name. Please keep the version "
                                                   "specifier, but remove the 'version' argument.")
                packages[0] = Package.of(str(packages[0]), p.version)
        extra_args = p.extra_args
        if p.editable:
            words_ = extra_args.split(" ") if extra_args else []
            if "-e" not in words_:
                extra_args = " ".join([*words_, "-e"])
        if extra_args:
            cmd += shlex.split(extra_args)
        if p.name:
            cmd += [str(package) for package in packages]
        elif p.requirements:
            cmd += ["-r", p.requirements]
        else:
            return Result(data={"warnings": ["No valid name or requirements file found."]})
        if self.ctx.check:
            return await self.check(pip, packages, bool(extra_args))
        return await self.install(pip, cmd, p.requirements is not None or has_vcs, venv_created)

    async def setup_virtualenv(self) -> Result | None:
        """Create the virtualenv as Ansible's setup_virtualenv does; a failed Result, or None."""
        p = self.p
        argv = shlex.split(p.virtualenv_command)
        venv = is_venv_command(argv)
        if venv and p.virtualenv_python:
            return Result(failed=True, msg="virtualenv_python should not be used when using the venv module or pyvenv "
                                           "as virtualenv_command")
        script = self.prelude + f"cd {q(self.chdir)} 2>/dev/null\n"
        if posixpath.basename(argv[0]) == argv[0]:
            script += bin_path_sh("c", argv[0], "command") + "[ -n \"$c\" ] || exit 0\n"
        else:
            script += f"c={q(argv[0])}\n"
        if not p.virtualenv_site_packages:   # an old virtualenv needs --no-site-packages: ask its --help
            script += ("case $c in */*) [ -x \"$c\" ] || { echo noexec; exit 0; };; esac\n"
                       "if h=$(\"$c\" --help 2>/dev/null); then printf '%s\\n' \"$h\" | tr -s ' \\t' '\\n\\n' | "
                       "grep -qx -- --no-site-packages && echo nosite\n"
                       f"else echo helpfailed; echo {CONTENT}; \"$c\" --help 2>&1; exit 0; fi\n")
        res = await quiet(self.ctx, script + "echo ready\n")
        tags, rest = tagged(res.stdout)
        if not {"ready", "helpfailed", "noexec"} & set(tags):
            return Result(failed=True, msg=missing_executable(argv[0], {**self.tags, **tags}))
        command = first(tags, "command") or argv[0]
        if "noexec" in tags:
            return Result(failed=True, msg="Error executing command.", rc=2, stdout="", stderr="",
                          data={"cmd": f"{command} --help"})
        if "helpfailed" in tags:
            return Result(failed=True, msg=f"Could not get output from {command} --help: {rest or ''}")
        argv = [command, *argv[1:]]
        if p.virtualenv_site_packages:
            argv.append("--system-site-packages")
        elif "nosite" in tags:
            argv.append("--no-site-packages")
        if not venv:
            argv.append(f"-p{p.virtualenv_python or first(self.tags, 'python') or 'python3'}")
        argv.append(self.env or "")
        res = await self.ctx.sh(self.prelude + f"cd {q(self.chdir)} 2>/dev/null\n" + exec_sh(argv))
        self.out, self.err = self.out + res.stdout, self.err + res.stderr
        return not_executed(argv, res) or (fail_output(argv, self.out, self.err) if not res.ok else None)

    async def listed(self, pip: list[str]) -> tuple[str, CommandResult] | Result:
        """_get_packages: `pip list --format=freeze`, or `pip freeze` where that fails (an old pip)."""
        env = "PIP_BREAK_SYSTEM_PACKAGES=1 " if self.p.break_system_packages else ""

        async def listing(command: list[str]) -> CommandResult:
            return await quiet(self.ctx, f"cd {q(self.chdir)} 2>/dev/null\n" + exec_sh(command, LIST_LOCALE + env))

        command = [*pip, "list", "--format=freeze"]
        res = await listing(command)
        if (unstarted := not_executed(command, res)) is not None:
            return unstarted
        if not res.ok:
            command = [*pip, "freeze"]
            res = await listing(command)
            if not res.ok:
                return fail_output(command, res.stdout, res.stderr)
        return " ".join(command), res

    async def check(self, pip: list[str], packages: list[Package], extra_args: bool) -> Result:
        p = self.p
        if extra_args or p.requirements or p.state == "latest" or not p.name:
            return Result(changed=True)   # pip alone could say: Ansible reports a change
        listed = await self.listed(pip)
        if isinstance(listed, Result):
            return listed
        command, res = listed
        out, err = self.out + res.stdout, self.err + res.stderr
        lines = [line for line in out.split("\n")
                 if line and not line.startswith("You are using") and not line.startswith("You should consider")]
        changed = any((p.state == "present" and not is_present(package, lines))
                      or (p.state == "absent" and is_present(package, lines)) for package in packages)
        return Result(changed=changed, data=output_data(out, err, cmd=command))

    async def install(self, pip: list[str], cmd: list[str], compare: bool, venv_created: bool) -> Result:
        p = self.p
        before = None
        if compare:   # what pip prints does not tell for a requirements file or a VCS URL: compare the lists
            listed = await self.listed(pip)
            if isinstance(listed, Result):
                return listed
            before = listed[1].stdout
        env = f"PATH={q(posixpath.join(self.env, 'bin'))}:\"$PATH\" " if self.env else ""
        env += "PIP_BREAK_SYSTEM_PACKAGES=1 " if p.break_system_packages else ""
        res = await self.ctx.sh(self.prelude + f"cd {q(self.chdir)} 2>/dev/null\n" + exec_sh(cmd, env))
        if (unstarted := not_executed(cmd, res)) is not None:
            return unstarted
        out, err = self.out + res.stdout, self.err + res.stderr
        if res.rc == 1 and p.state == "absent" and ("not installed" in res.stdout or "not installed" in res.stderr):
            pass   # pip says so with status 1 when the package was not there
        elif not res.ok:
            return fail_output(cmd, out, err)
        if p.state == "absent":
            changed = "Successfully uninstalled" in res.stdout
        elif before is None:
            changed = "Successfully installed" in res.stdout
        else:
            after = await self.listed(pip)
            if isinstance(after, Result):
                return after
            changed = before != after[1].stdout
        return Result(changed=changed or venv_created,
                      data=output_data(out, err, cmd=cmd, name=p.name, version=p.version, state=p.state,
                                       requirements=p.requirements, virtualenv=self.env))


def output_data(out: str, err: str, **values: Any) -> dict[str, Any]:
    """Ansible's return values, with the stdout_lines/stderr_lines Ansible adds to any stdout/stderr."""
    return {**values, "stdout": out, "stderr": err, "stdout_lines": out.splitlines(), "stderr_lines": err.splitlines()}

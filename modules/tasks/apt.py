"""apt: install, upgrade and remove Debian packages with apt-get and dpkg, as Ansible's apt does.

One probe reads every named package's state with a single dpkg-query (and, after an optional cache
update, apt-cache policy for state: latest); the plan is made here; the action is apt-get, whose own
report ("The following NEW packages will be installed: ...") says what changed. In check mode the
action is the same apt-get with -s, which changes nothing and reports the same way.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, integer
from engine.remote.connection import CommandResult
from modules.tasks._packages import STATES, Backend, Plan, Request, ensure, package_names
from modules.tasks._remote import NamedFreeForm, maybe, q, tail, text, words

ENV = "export DEBIAN_FRONTEND=noninteractive LC_ALL=C APT_LISTCHANGES_FRONTEND=none NEEDRESTART_MODE=a\n"
UPGRADES = {"no": None, "safe": "upgrade --with-new-pkgs", "full": "dist-upgrade", "dist": "dist-upgrade"}
SPEC = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?::(?P<arch>[a-z0-9-]+))?"
                  r"(?:=(?P<version>[A-Za-z0-9.+~:_-]+)|/(?P<release>[A-Za-z0-9._-]+))?$")
LISTS = "/var/lib/apt/lists"                             # its age is the cache's, for cache_valid_time
STAMP = "/var/lib/apt/periodic/update-success-stamp"     # touched by apt's periodic update, where it runs
GONE = ("not-installed", "config-files")     # dpkg states in which nothing of the package is in use
# apt-get's report of what it does (or, with -s, would do); other lists (Suggested, ...) change nothing.
REPORTS = {"NEW packages will be installed": "installed", "packages will be upgraded": "upgraded",
           "packages will be DOWNGRADED": "downgraded", "packages will be REMOVED": "removed",
           "held packages will be changed": "changed"}
WORD = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?\*?$")
COUNTS = re.compile(r"(\d+) (upgraded|newly installed|downgraded|reinstalled|to remove)\b")


class Spec(NamedTuple):
    name: str
    arch: str | None
    version: str | None
    release: str | None

    @property
    def query(self) -> str:
        """The name dpkg-query and apt-cache know it by."""
        return f"{self.name}:{self.arch}" if self.arch else self.name


def parse_spec(value: str) -> Spec:
    match = SPEC.match(value)
    if not match:
        raise vol.Invalid(f"{value!r} is not a Debian package name (name, name:arch, name=version or name/release)")
    return Spec(match["name"], match["arch"], match["version"], match["release"])


def spec_of(value: str) -> Spec:
    """parse_spec, except that a name apt would not know is kept whole (package passes names unchecked)."""
    try:
        return parse_spec(value)
    except vol.Invalid:
        return Spec(value, None, None, None)


def apt_names(value: object) -> list[str]:
    names = package_names(value)
    for name in names:
        parse_spec(name)
    return names


def upgrade_choice(value: object) -> str:
    """no|yes|safe|full|dist, yes meaning safe as in Ansible; YAML's yes/no arrive as booleans."""
    if isinstance(value, bool):
        return "safe" if value else "no"
    if value == "yes":
        return "safe"
    if not isinstance(value, str) or value not in UPGRADES:
        raise vol.Invalid(f"upgrade must be one of no, yes, {', '.join(list(UPGRADES)[1:])}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class Row:
    name: str
    arch: str
    status: str
    version: str


def parse_rows(lines: list[str]) -> list[Row]:
    """dpkg-query's `pkg <name> <arch> <status> <version>` lines."""
    rows = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) >= 3:
            rows.append(Row(fields[0], fields[1], fields[2], fields[3] if len(fields) > 3 else ""))
    return rows


def parse_policy(lines: list[str]) -> dict[str, tuple[str, str]]:
    """apt-cache policy's `policy <name> <installed> <candidate>` lines: name -> (installed, candidate)."""
    policy = {}
    for line in lines:
        fields = line.split(" ")
        if len(fields) == 3:
            policy[fields[0]] = (fields[1], fields[2])
    return policy


def parse_report(stdout: str) -> dict[str, list[str]]:
    """What apt-get says it does: {"installed": [...], "upgraded": [...], "removed": [...], ...}."""
    report: dict[str, list[str]] = {}
    section = None
    for line in stdout.splitlines():
        if line.startswith("The following"):
            section = next((kind for header, kind in REPORTS.items() if header in line), None)
        elif line.startswith(" ") and section:
            for word in line.split():
                if WORD.match(word) and word.rstrip("*") not in report.setdefault(section, []):
                    report[section].append(word.rstrip("*"))
        else:
            section = None
    return report


def changes_counted(stdout: str) -> int:
    """The sum of apt-get's summary lines ("1 upgraded, 2 newly installed, 0 to remove and 5 not upgraded")."""
    return sum(int(number) for number, _ in COUNTS.findall(stdout))


def brief(names: list[str], shown: int = 8) -> str:
    """A list for a message: an upgrade of a whole system names a hundred packages; data keeps them all."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def deb_path(path: str) -> str:
    """apt-get installs a file only when the argument looks like a path."""
    return path if "/" in path else f"./{path}"


def options(req: Request) -> list[str]:
    """apt-get's options for every command: no prompts, the dpkg lock waited for, dpkg's options as asked."""
    words = ["-y", "-q", "-o", f"DPkg::Lock::Timeout={req.lock_timeout}"]
    for option in filter(None, (part.strip() for part in req.dpkg_options.split(","))):
        words += ["-o", f"Dpkg::Options::=--{option}"]
    return words


def install_flags(req: Request) -> list[str]:
    flags = {None: [], True: ["--install-recommends"], False: ["--no-install-recommends"]}[req.install_recommends]
    flags += ["--allow-downgrades"] if req.allow_downgrade else []
    flags += ["--only-upgrade"] if req.only_upgrade else []
    flags += ["--allow-unauthenticated"] if req.allow_unauthenticated else []
    flags += ["--allow-change-held-packages"] if req.allow_change_held_packages else []
    return flags + (["-t", req.default_release] if req.default_release else [])


class Apt(Backend):
    tool = "apt-get"

    def probe(self, req: Request, check: bool) -> str:
        script = ENV
        if req.update_cache and not check:
            update = (f"if apt-get update -q -o DPkg::Lock::Timeout={req.lock_timeout} >&2; then touch {LISTS}; "
                      "echo updated; else echo 'failed apt-get update failed'; fi")
            if req.cache_valid_time:   # the newer of apt's own stamp and the lists directory
                script += (f"t=0; for f in {STAMP} {LISTS}; do "
                           "m=$(stat -c %Y $f 2>/dev/null) && [ \"$m\" -gt $t ] && t=$m; done\n"
                           f"if [ $(( $(date +%s) - t )) -ge {req.cache_valid_time} ]; then {update}; fi\n")
            else:
                script += update + "\n"
        if req.update_cache:   # Ansible's cache_update_time: the newer of apt's stamp and the lists directory
            script += (f"t=0; for f in {STAMP} {LISTS}; do "
                       "m=$(stat -c %Y $f 2>/dev/null) && [ \"$m\" -gt $t ] && t=$m; done; echo \"cachetime $t\"\n")
        specs = [spec_of(name) for name in req.names]
        queries = list(dict.fromkeys(spec.query for spec in specs))
        if queries:
            script += ("dpkg-query -W -f='pkg ${Package} ${Architecture} ${db:Status-Status} ${Version}\\n' -- "
                       f"{words(queries)} 2>/dev/null\n")
        if queries and req.state == "latest":
            script += (f"apt-cache policy -- {words(queries)} 2>/dev/null | awk '/^[^ ].*:$/ "
                       "{n=substr($0, 1, length($0)-1)} /^  Installed:/ {i=$2} "
                       "/^  Candidate:/ {print \"policy \" n \" \" i \" \" $2}'\n")
        if req.deb:
            script += (f"if [ -f {q(req.deb)} ]; then set -- $(dpkg-deb -W --showformat='${{Package}} ${{Version}}' "
                       f"-- {q(req.deb)}) && echo \"deb $*\" && dpkg-query -W "
                       "-f='debpkg ${Package} ${Architecture} ${db:Status-Status} ${Version}\\n' -- \"$1\" "
                       f"2>/dev/null; else printf 'nofile %s\\n' {q(req.deb)}; fi\n")
        return script

    def plan(self, req: Request, tags: dict[str, list[str]]) -> Plan:
        rows = parse_rows(tags.get("pkg", []))
        policy = parse_policy(tags.get("policy", []))
        install, upgrade, remove = [], [], []
        for raw in req.names:
            spec = spec_of(raw)
            mine = [r for r in rows if r.name == spec.name and (spec.arch is None or r.arch in (spec.arch, "all"))]
            installed = [r for r in mine if r.status == "installed"]
            if req.state == "absent":
                if any(r.status not in GONE or (req.purge and r.status == "config-files") for r in mine):
                    remove.append(spec.query)
            elif not installed or (spec.version and all(r.version != spec.version for r in installed)):
                install.append(raw)
            elif req.state == "latest":
                have, candidate = policy.get(spec.query, ("", "(none)"))
                if candidate not in ("(none)", have):
                    upgrade.append(spec.query)
        if req.deb:
            version = (tags.get("deb") or ["? ?"])[0].partition(" ")[2]
            if not any(r.status == "installed" and r.version == version for r in parse_rows(tags.get("debpkg", []))):
                install.append(deb_path(req.deb))
        steps = [f"{req.upgrade} upgrade"] if UPGRADES[req.upgrade] else []
        steps += ["autoremove"] if req.autoremove else []
        return Plan(tuple(install), tuple(upgrade), tuple(remove), tuple(steps))

    def action(self, req: Request, plan: Plan, check: bool) -> str | None:
        return ENV + " && ".join(self.commands(req, plan, check)) + "\n"

    def commands(self, req: Request, plan: Plan, check: bool = False) -> list[str]:
        base = "apt-get " + words([*options(req), *(["-s"] if check else [])])
        commands = []
        if UPGRADES[req.upgrade]:
            commands.append(f"{base} {UPGRADES[req.upgrade]}")
        if plan.install or plan.upgrade:
            install = words([*install_flags(req), "--", *plan.install, *plan.upgrade])
            commands.append(f"{base} install {install}")
        if plan.remove:
            commands.append(f"{base} {'purge' if req.purge else 'remove'} -- {words(plan.remove)}")
        if req.autoremove:
            commands.append(f"{base} autoremove" + (" --purge" if req.purge else ""))
        return commands

    def outcome(self, req: Request, plan: Plan, res: CommandResult, check: bool) -> Result:
        report = parse_report(res.stdout)
        changed = [name for kind in ("installed", "upgraded", "downgraded", "removed", "changed")
                   for name in report.get(kind, [])]
        data = {"packages": changed}
        output = dict(rc=res.rc, stdout=res.stdout, stderr=res.stderr)
        if not res.ok:
            detail = tail(res.stderr) or tail(res.stdout) or "no message"
            if check and req.update_cache:   # the simulation ran on the old lists: the real run updates them first
                return Result(changed=True, msg=f"{plan.words()} (apt-get -s, on the lists not updated in check "
                                                f"mode, said: {detail})",
                              data={"packages": plan.packages}, **output)
            return Result(failed=True, msg=f"apt-get failed with rc {res.rc}: {detail}", data=data, **output)
        if not changed and not changes_counted(res.stdout):
            return Result(msg="the packages are as asked" if req.names or req.deb else "nothing to upgrade or remove",
                          data=data, **output)
        msg = "; ".join(f"{kind} {brief(names)}" for kind, names in report.items() if names)
        return Result(changed=True, msg=msg or "changed packages", data=data, **output)


APT = Apt()


class AptModule(NamedFreeForm, TaskModule, name="apt"):
    description = "Install, upgrade or remove Debian packages with apt-get (dpkg lock waited for, no prompts)"
    free_form = "name"
    aliases = {"pkg": "name", "package": "name", "update-cache": "update_cache",
               "install-recommends": "install_recommends",
               "default-release": "default_release", "allow-downgrade": "allow_downgrade",
               "allow_downgrades": "allow_downgrade", "allow-downgrades": "allow_downgrade"}
    schema = {
        vol.Optional("name", default=[]): apt_names,
        vol.Optional("state", default="present"): vol.In(STATES),
        vol.Optional("update_cache", default=False): boolean,
        vol.Optional("cache_valid_time", default=None): maybe(vol.All(integer, vol.Range(min=0))),
        vol.Optional("install_recommends", default=None): maybe(boolean),
        vol.Optional("purge", default=False): boolean,
        vol.Optional("autoremove", default=False): boolean,
        vol.Optional("upgrade", default="no"): upgrade_choice,
        vol.Optional("deb", default=None): maybe(str),
        vol.Optional("allow_downgrade", default=False): boolean,
        vol.Optional("default_release", default=None): maybe(text),
        vol.Optional("only_upgrade", default=False): boolean,
        vol.Optional("allow_unauthenticated", default=False): boolean,
        vol.Optional("allow_change_held_packages", default=False): boolean,
        vol.Optional("dpkg_options", default="force-confdef,force-confold"): text,
        vol.Optional("lock_timeout", default=60): vol.All(integer, vol.Range(min=0)),
        # Ansible falls back from aptitude to apt-get unless this is set; apt-get is all this module uses.
        vol.Optional("force_apt_get", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        name: list[str]
        state: str = "present"
        update_cache: bool = False
        cache_valid_time: int | None = None
        install_recommends: bool | None = None
        purge: bool = False
        autoremove: bool = False
        upgrade: str = "no"
        deb: str | None = None
        allow_downgrade: bool = False
        default_release: str | None = None
        only_upgrade: bool = False
        allow_unauthenticated: bool = False
        allow_change_held_packages: bool = False
        dpkg_options: str = "force-confdef,force-confold"
        lock_timeout: int = 60
        force_apt_get: bool = False

        def __post_init__(self) -> None:
            if not (self.name or self.deb or self.update_cache or self.cache_valid_time is not None
                    or self.upgrade != "no" or self.autoremove):
                raise vol.Invalid("give name, deb, upgrade, autoremove or update_cache", path=["name"])
            if self.state != "present" and any(parse_spec(n).version for n in self.name):
                raise vol.Invalid("a version (name=1.2) goes with state: present", path=["state"])
            if self.deb and self.state != "present":
                raise vol.Invalid("deb installs a package: it goes with state: present", path=["deb"])

    @staticmethod
    def request(p: Params) -> Request:
        return Request(tuple(p.name), p.state, p.update_cache or p.cache_valid_time is not None,
                       p.cache_valid_time, p.install_recommends, p.purge, p.autoremove, p.upgrade, p.deb,
                       p.allow_downgrade, p.default_release, p.only_upgrade, p.allow_unauthenticated,
                       p.allow_change_held_packages, p.dpkg_options, p.lock_timeout)

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        return await ensure(ctx, [APT], self.request(params))

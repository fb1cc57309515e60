"""package: install or remove packages with whichever package manager the target has.

The probe looks for apt-get, dnf, yum, apk, zypper and pacman in that order (`command -v`) and, in the
same script, reads the named packages' state with that manager's own query; on Debian the apt module's
backend does the work, so `package` and `apt` behave the same there. Names are passed as they are:
each manager has its own names for the same software.
"""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from engine.registry import TASK_MODULES
from modules.tasks._packages import STATES, Backend, Plan, Request, ensure, package_names
from modules.tasks._remote import NamedFreeForm, words
from modules.tasks.apt import APT


class Manager(Backend):
    """A manager whose query answers installed-or-not per name, and whose plan the probe makes certain.

    have: a shell test for "$n" being installed (provides count, as the manager itself counts them);
    updates: shell reading the names from "$@" and printing `update <name>` for each with a newer version.
    """

    def __init__(self, tool: str, have: str, refresh: str, updates: str, install: str, upgrade: str,
                 remove: str):
        self.tool = tool
        self.have, self.refresh, self.updates = have, refresh, updates
        self.install, self.upgrade, self.remove = install, upgrade, remove

    def probe(self, req: Request, check: bool) -> str:
        script = ""
        if req.update_cache and not check:
            script += (f"if {self.refresh} >&2; then echo updated; "
                       f"else echo 'failed {self.tool} could not refresh its package lists'; fi\n")
        if req.names:
            script += (f"set -- {words(req.names)}\n"
                       f"for n in \"$@\"; do if {self.have} >/dev/null 2>&1; then echo \"have $n\"; "
                       "else echo \"missing $n\"; fi; done\n")
            if req.state == "latest":
                script += self.updates + "\n"
        return script

    def plan(self, req: Request, tags: dict[str, list[str]]) -> Plan:
        have, missing = tags.get("have", []), tags.get("missing", [])
        if req.state == "absent":
            return Plan(remove=tuple(have))
        if req.state == "present":
            return Plan(install=tuple(missing))
        newer = {line.split(" ")[0] for line in tags.get("update", [])}
        newer |= {name.rsplit(".", 1)[0] for name in newer}   # dnf names them name.arch
        upgrade = [name for name in have if name in newer]
        if not upgrade and "newer" in tags:   # dnf has updates for them under other names (a provide, a path)
            upgrade = have
        return Plan(install=tuple(missing), upgrade=tuple(upgrade))

    def action(self, req: Request, plan: Plan, check: bool) -> str | None:
        if check:
            return None
        commands = [f"{command} {words(names)}" for command, names in
                    ((self.install, plan.install), (self.upgrade, plan.upgrade), (self.remove, plan.remove)) if names]
        return " && ".join(commands) + "\n"


def _rpm(tool: str) -> Manager:
    # check-update exits 100 when there are updates; 1 is an error (no network, broken repository).
    updates = (f"out=$({tool} -q check-update \"$@\" 2>&1); rc=$?\n"
               "case $rc in 0) ;; 100) printf '%s\\n' \"$out\" | awk 'NF == 3 && $1 ~ /\\./ {print \"update \" $1}'; "
               "echo newer;; "
               f"*) echo 'failed {tool} check-update failed'; printf '%s\\n' \"$out\" >&2;; esac")
    return Manager(tool, have='rpm -q --quiet --whatprovides "$n"', refresh=f"{tool} -q -y makecache",
                   updates=updates, install=f"{tool} -y install", upgrade=f"{tool} -y upgrade",
                   remove=f"{tool} -y remove")


BACKENDS: list[Backend] = [
    APT,
    _rpm("dnf"),
    _rpm("yum"),
    Manager("apk", have='apk info -e "$n"', refresh="apk update -q",
            updates="apk add -s -u --no-progress \"$@\" 2>/dev/null | "
                    "awk '/^\\([0-9]+\\/[0-9]+\\) (Upgrading|Installing)/ {print \"update \" $3}'",
            install="apk add --no-progress", upgrade="apk add -u --no-progress", remove="apk del --no-progress"),
    Manager("zypper", have='rpm -q --quiet --whatprovides "$n"', refresh="zypper -n -q refresh",
            updates="zypper -n -q list-updates 2>/dev/null | "
                    "awk -F'|' '$1 ~ /v/ && NF >= 5 {gsub(/ /, \"\", $3); print \"update \" $3}'",
            install="zypper -n install", upgrade="zypper -n update", remove="zypper -n remove"),
    Manager("pacman", have='pacman -T "$n"', refresh="pacman -Sy --noconfirm",
            updates="pacman -Qu \"$@\" 2>/dev/null | awk '{print \"update \" $1}'",
            install="pacman -S --noconfirm --needed", upgrade="pacman -S --noconfirm", remove="pacman -R --noconfirm"),
]
USES = ("auto", *(b.tool.replace("apt-get", "apt") for b in BACKENDS))


class Package(NamedFreeForm, TaskModule, name="package"):
    description = "Install or remove packages with the target's own manager (apt, dnf, yum, apk, zypper, pacman)"
    free_form = "name"
    schema = {
        vol.Required("name"): package_names,
        vol.Optional("state", default="present"): vol.In(STATES),
        vol.Optional("update_cache", default=False): boolean,
        vol.Optional("use", default="auto"): vol.In(USES),
    }

    @dataclass(frozen=True)
    class Params:
        name: list[str]
        state: str = "present"
        update_cache: bool = False
        use: str = "auto"

        def __post_init__(self) -> None:
            if not self.name and not self.update_cache:
                raise vol.Invalid("name a package", path=["name"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        backends = [b for b in BACKENDS if params.use in ("auto", b.tool.replace("apt-get", "apt"))]
        return await ensure(ctx, backends, Request(tuple(params.name), params.state, params.update_cache))


def dnf_state(value: object) -> str:
    """dnf's states, with its synonyms installed and removed."""
    state = {"installed": "present", "removed": "absent"}.get(str(value), str(value))
    if state not in STATES:
        raise vol.Invalid(f"state must be one of present, installed, latest, absent, removed; got {value!r}")
    return state


class Dnf(Package, name="dnf"):
    """Ansible's dnf (and yum, which ansible-core now runs as dnf) for what they share with package:
    names, state and update_cache. Their other options are refused as unknown, not ignored."""

    description = "Install or remove packages with dnf (or yum where there is no dnf)"
    aliases = {"pkg": "name", "expire-cache": "update_cache"}
    schema = {
        vol.Required("name"): package_names,
        vol.Optional("state", default="present"): dnf_state,
        vol.Optional("update_cache", default=False): boolean,
    }

    async def run(self, params: Package.Params, ctx: TaskContext) -> Result:
        backends = [b for b in BACKENDS if b.tool in ("dnf", "yum")]
        return await ensure(ctx, backends, Request(tuple(params.name), params.state, params.update_cache))


TASK_MODULES.add("yum", Dnf)

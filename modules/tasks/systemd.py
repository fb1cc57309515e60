"""systemd (also systemd_service): mask, enable, start, stop, restart or reload a unit, as Ansible's module does.

One probe runs the requested daemon-reload/daemon-reexec and reads the unit (`systemctl show`, is-enabled,
list-unit-files, its SysV script); each change is then one systemctl command, in Ansible's order: mask,
enable, state. Where systemd does not run (a chroot, a container), `show` says nothing: enabling still works
(systemctl edits links offline), a state fails with Ansible's "Service is in unknown state", or is only
warned about in a chroot, as Ansible does.
"""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from engine.registry import TASK_MODULES
from modules.tasks._remote import failure, first, maybe, quiet, tagged, tail
from modules.tasks._systemd import CHROOT_SH, parse_show, running, unit_name

STATES = ("reloaded", "restarted", "started", "stopped")
# is-enabled's answers for a unit systemd knows (man systemctl, systemd 244)
KNOWN = ("enabled", "enabled-runtime", "linked", "linked-runtime", "masked", "masked-runtime", "static",
         "indirect", "disabled", "generated", "transient")
# exit 0, yet Ansible enables anyway: transiently enabled, or enabled only through something else
NOT_ENABLED = ("enabled-runtime", "indirect", "alias")


@dataclass(frozen=True)
class Unit:
    """What the probe read about one unit."""

    status: dict[str, str]       # systemctl show, {} where systemd does not answer
    enabled_rc: int
    enabled_word: str            # is-enabled's answer
    listed: bool                 # list-unit-files knows it
    initd: bool                  # /etc/init.d/<name> exists
    sysv_enabled: bool           # an S link in /etc/rc?.d

    @classmethod
    def parse(cls, tags: dict[str, list[str]]) -> "Unit":
        rc, _, word = (first(tags, "isenabled") or "1 ").partition(" ")
        return cls(parse_show(tags.get("show", [])), int(rc), word.strip(), first(tags, "listed") == "0",
                   "initd" in tags, "sysvon" in tags)

    @property
    def answered(self) -> bool:
        return bool(self.status)

    @property
    def is_systemd(self) -> bool:
        if self.answered:
            return self.status.get("LoadState", "not-found") != "not-found"
        return self.enabled_word in KNOWN or self.listed

    def enabled(self, scope: str) -> bool:
        if self.enabled_rc == 0:
            return self.enabled_word not in NOT_ENABLED
        if self.enabled_rc == 1:   # a SysV script systemd wraps: its rc?.d links say
            return scope == "system" and self.initd and not self.enabled_word.endswith("disabled") \
                and self.sysv_enabled
        return False


def enabled_sh(p: "Systemd.Params") -> str:
    """is-enabled's exit status and first line of answer."""
    return (f"w=$({p.systemctl} is-enabled -- {shlex.quote(p.name or '')} 2>/dev/null); r=$?; set -- $w; "
            "printf 'isenabled %s %s\\n' $r \"${1:-}\"\n")


def state_action(status: dict[str, str], state: str) -> str | None:
    if state == "started":
        return None if running(status) else "start"
    if state == "stopped":
        return "stop" if running(status) or status.get("ActiveState") == "deactivating" else None
    return state[:-2] if running(status) else "start"     # restart/reload what runs, start what does not


class Systemd(TaskModule, name="systemd"):
    description = "Manage a systemd unit: mask, enable, start, stop, restart, reload; daemon-reload"
    aliases = {"service": "name", "unit": "name", "daemon-reload": "daemon_reload", "daemon-reexec": "daemon_reexec"}
    schema = {
        vol.Optional("name", default=None): maybe(unit_name),
        vol.Optional("state", default=None): maybe(vol.In(STATES)),
        vol.Optional("enabled", default=None): maybe(boolean),
        vol.Optional("force", default=None): maybe(boolean),
        vol.Optional("masked", default=None): maybe(boolean),
        vol.Optional("daemon_reload", default=False): boolean,
        vol.Optional("daemon_reexec", default=False): boolean,
        vol.Optional("scope", default="system"): vol.In(["system", "user", "global"]),
        vol.Optional("no_block", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        name: str | None = None
        state: str | None = None
        enabled: bool | None = None
        force: bool | None = None
        masked: bool | None = None
        daemon_reload: bool = False
        daemon_reexec: bool = False
        scope: str = "system"
        no_block: bool = False

        def __post_init__(self) -> None:
            if (self.state, self.enabled, self.masked) == (None, None, None) and not (self.daemon_reload or
                                                                                    self.daemon_reexec):
                raise vol.Invalid("give one of state, enabled, masked, daemon_reload or daemon_reexec",
                                  path=["state"])
            for option in ("state", "enabled", "masked"):
                if getattr(self, option) is not None and self.name is None:
                    raise vol.Invalid(f"{option} needs name (the unit)", path=["name"])

        @property
        def systemctl(self) -> str:
            flags = [f"--{self.scope}"] if self.scope != "system" else []
            flags += ["--no-block"] if self.no_block else []
            flags += ["--force"] if self.force else []
            return " ".join(["systemctl", *flags])

    def probe(self, p: Params, check: bool) -> str:
        script = ("command -v systemctl >/dev/null 2>&1 || { echo nosystemctl; exit 0; }\n"
                  "XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}; export XDG_RUNTIME_DIR\n" + CHROOT_SH)
        for verb, wanted in (("daemon-reload", p.daemon_reload), ("daemon-reexec", p.daemon_reexec)):
            if wanted and not check:
                script += (f"o=$({p.systemctl} {verb} 2>&1); r=$?; [ $r = 0 ] || "
                           f"printf '{verb} %s %s\\n' $r \"$(printf %s \"$o\" | tr '\\n' ' ')\"\n")
        if p.name:
            n, s = shlex.quote(p.name), p.systemctl
            script += (f"{s} show -- {n} 2>/dev/null | sed 's/^/show /'\n" + enabled_sh(p) +
                       f"{s} list-unit-files -- {n} >/dev/null 2>&1; echo \"listed $?\"\n"
                       f"[ -e /etc/init.d/{n} ] && echo initd\n"
                       f"ls /etc/rc?.d/S??{n} >/dev/null 2>&1 && echo sysvon\n")
        return script + "exit 0\n"

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        res = await quiet(ctx, self.probe(p, ctx.check))
        if not res.ok:
            return failure("could not read the state of systemd", res)
        tags, _ = tagged(res.stdout)
        data: dict = {"name": p.name, "status": {}}
        if "nosystemctl" in tags:
            return Result(failed=True, msg="systemctl not found on the target: the systemd module needs systemd",
                          data=data)
        chroot, notes = "chroot" in tags, []
        for verb in ("daemon-reload", "daemon-reexec"):
            if verb in tags:
                rc, _, err = (first(tags, verb) or "1 ").partition(" ")
                if not chroot:
                    return Result(failed=True, msg=f"failure {rc} during {verb}: {err.strip()}", data=data)
                notes.append(f"{verb} failed, but the target is a chroot or systemd is offline: {err.strip()}")
        if not p.name:
            return Result(msg="; ".join(notes) or "daemon reloaded", data=data)
        unit = Unit.parse(tags)
        data["status"] = unit.status
        if unit.is_systemd and unit.status.get("LoadState") != "masked" and "LoadError" in unit.status:
            return Result(failed=True, msg=f"Error loading unit file '{p.name}': {unit.status['LoadError']}",
                          data=data)
        if not unit.answered and not unit.is_systemd:   # as Ansible: does systemctl work here at all?
            bare = await quiet(ctx, p.systemctl + " >/dev/null")
            if not bare.ok:
                return Result(failed=True, rc=bare.rc, stderr=bare.stderr, data=data,
                              msg=tail(bare.stderr) or f"{p.systemctl} failed with exit status {bare.rc}")
        if unit.initd and not unit.is_systemd:
            notes.append(f"The service ({p.name}) is actually an init script but the system is managed by systemd")
        return await Change(p, ctx, unit, data, notes, chroot).apply()


@dataclass
class Change:
    """The actions in Ansible's order, each decided on the state left by the one before."""

    p: Systemd.Params
    ctx: TaskContext
    unit: Unit
    data: dict
    notes: list[str]
    chroot: bool
    changed: bool = False

    @property
    def found(self) -> bool:
        return self.unit.is_systemd or self.unit.initd

    def missing(self) -> Result:
        return Result(failed=True, msg=f"Could not find the requested service {self.p.name}: host", data=self.data)

    async def act(self, action: str) -> str | None:
        """Run one systemctl action (not in check mode); its output when it failed, else None."""
        self.changed = True
        if self.ctx.check:
            return None
        res = await self.ctx.sh(f"{self.p.systemctl} {action} -- {shlex.quote(self.p.name or '')}")
        return None if res.ok else (tail(res.stdout + "\n" + res.stderr) or f"exit status {res.rc}")

    async def apply(self) -> Result:
        for step in (self.mask, self.enable, self.state):
            problem = await step()
            if problem:
                return problem
        said = "; ".join(self.notes)
        return Result(changed=self.changed, msg=said or (f"{self.p.name} changed" if self.changed else
                                                         f"{self.p.name} is as asked"), data=self.data)

    async def mask(self) -> Result | None:
        if self.p.masked is None or (self.unit.enabled_word == "masked") == self.p.masked:
            return None
        action = "mask" if self.p.masked else "unmask"
        error = await self.act(action)
        if error is not None:
            return self.missing() if not self.found else Result(
                failed=True, msg=f"Failed to {action} the service ({self.p.name}): {error}", data=self.data)
        if not self.ctx.check and self.p.enabled is not None:   # enabling is decided on what is-enabled says now
            res = await quiet(self.ctx, enabled_sh(self.p))
            now = Unit.parse(tagged(res.stdout)[0])
            self.unit = dataclasses.replace(self.unit, enabled_rc=now.enabled_rc, enabled_word=now.enabled_word)
        return None

    async def enable(self) -> Result | None:
        if self.p.enabled is None:
            return None
        if not self.found:
            return self.missing()
        enabled = self.unit.enabled(self.p.scope)
        self.data["enabled"] = enabled
        if enabled == self.p.enabled:
            return None
        action = "enable" if self.p.enabled else "disable"
        error = await self.act(action)
        if error is not None:
            return Result(failed=True, msg=f"Unable to {action} service {self.p.name}: {error}", data=self.data)
        self.data["enabled"] = not enabled
        return None

    async def state(self) -> Result | None:
        if self.p.state is None:
            return None
        if not self.found:
            return self.missing()
        status = self.unit.status
        self.data["state"] = "started" if self.p.state in ("restarted", "reloaded") else self.p.state
        if "ActiveState" not in status:
            if self.unit.answered or not self.chroot:
                return Result(failed=True, msg="Service is in unknown state", data=self.data)
            self.notes.append("Target is a chroot or systemd is offline. This can lead to false positives or "
                              "prevent the init system tools from working.")
            return None
        action = state_action(status, self.p.state)
        if action is None:
            return None
        error = await self.act(action)
        if error is not None:
            return Result(failed=True, msg=f"Unable to {action} service {self.p.name}: {error}", data=self.data)
        return None


TASK_MODULES.add("systemd_service", Systemd)

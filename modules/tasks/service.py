"""service: start, stop, restart or reload a service, and enable or disable it at boot.

systemd first (when /run/systemd/system says it is running, as the facts do), then OpenRC (rc-service,
rc-update), then SysV init scripts (service or /etc/init.d/<name>, update-rc.d or chkconfig). One probe
reads whether the service runs and starts at boot; one action changes what differs. started, stopped and
enabled are idempotent; restarted and reloaded always act, and always report a change.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._remote import NamedFreeForm, failure, first, maybe, quiet, tagged, tail, text

STATES = ("started", "stopped", "restarted", "reloaded")
NAME = re.compile(r"^[A-Za-z0-9@_.:\\-]+$")
RUNNING = ("active", "activating", "reloading")
# is-enabled answers that need no enable or disable: such units start because something else pulls them in.
FIXED = ("static", "generated", "transient")


def service_name(value: object) -> str:
    if not isinstance(value, str) or not NAME.match(value) or value.startswith("-"):
        raise vol.Invalid(f"{value!r} is not a service name")
    return value


def probe_script(name: str, daemon_reload: bool) -> str:
    n = shlex.quote(name)
    reload = "systemctl daemon-reload || echo 'failed systemctl daemon-reload failed'\n" if daemon_reload else ""
    return (
        f"n={n}\n"
        "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then\n"
        "echo init systemd\n" + reload +
        "systemctl show -p LoadState -p ActiveState -- \"$n\" 2>/dev/null | sed 's/^/show /'\n"
        "e=$(systemctl is-enabled -- \"$n\" 2>/dev/null); echo \"enabled $? $e\"\n"
        "elif command -v rc-service >/dev/null 2>&1; then\n"
        "echo init openrc\n"
        "rc-service -e \"$n\" && echo show LoadState=loaded\n"
        "rc-service \"$n\" status >/dev/null 2>&1; echo \"status $?\"\n"
        "ls /etc/runlevels/*/\"$n\" >/dev/null 2>&1; echo \"enabled $?\"\n"
        "else\n"
        "echo init sysv\n"
        "[ -x /etc/init.d/\"$n\" ] && echo show LoadState=loaded\n"
        "if command -v service >/dev/null 2>&1; then service \"$n\" status; else /etc/init.d/\"$n\" status; fi "
        ">/dev/null 2>&1; echo \"status $?\"\n"
        "ls /etc/rc[2345].d/S[0-9][0-9]\"$n\" >/dev/null 2>&1; echo \"enabled $?\"\n"
        "for t in update-rc.d chkconfig; do command -v $t >/dev/null 2>&1 && echo \"tool $t\"; done\n"
        "fi\nexit 0\n")


@dataclass(frozen=True)
class Current:
    init: str                  # systemd, openrc or sysv
    exists: bool
    running: bool
    stopping: bool             # systemd's deactivating: neither running nor stopped yet
    enabled: bool
    enabled_word: str          # what is-enabled said (systemd), "" elsewhere
    tools: tuple[str, ...]

    @classmethod
    def parse(cls, tags: dict[str, list[str]]) -> "Current":
        show = dict(line.partition("=")[::2] for line in tags.get("show", []))
        init = first(tags, "init") or "sysv"
        rc, _, word = (first(tags, "enabled") or "1").partition(" ")
        word = word.strip().splitlines()[0] if word.strip() else ""
        enabled = rc == "0"
        if init == "systemd":
            active = show.get("ActiveState", "")
            running = active in RUNNING
            if word in ("indirect", "alias"):   # as Ansible counts them: started by something else, not enabled
                enabled = False
        else:
            active, running = "", first(tags, "status") == "0"
        exists = show.get("LoadState", "not-found") not in ("not-found", "")
        return cls(init, exists, running, active == "deactivating", enabled, word, tuple(tags.get("tool", [])))


def commands(init: str, name: str, verb: str, tools: tuple[str, ...] = (), arguments: str = "") -> list[str]:
    """The shell for one verb (start, stop, restart, reload, enable, disable) under one init system.

    arguments go after a start/stop/restart/reload of an init script; systemd has no place for them, and
    Ansible's service drops them there too.
    """
    n = shlex.quote(name)
    extra = "".join(" " + shlex.quote(word) for word in shlex.split(arguments))
    if init == "systemd":
        return [f"systemctl {verb} -- {n}"]
    if init == "openrc":
        if verb in ("enable", "disable"):
            return [f"rc-update add {n} default" if verb == "enable" else f"rc-update -a del {n}"]
        return [f"rc-service {n} {verb}{extra}"]
    if verb in ("enable", "disable"):
        if "update-rc.d" in tools:
            return [f"update-rc.d {n} defaults", f"update-rc.d {n} enable"] if verb == "enable" else \
                [f"update-rc.d {n} disable"]
        if "chkconfig" in tools:
            return [f"chkconfig {n} {'on' if verb == 'enable' else 'off'}"]
        return [f"echo 'no update-rc.d or chkconfig to {verb} {name} with' >&2", "false"]
    return [f"if command -v service >/dev/null 2>&1; then service {n} {verb}{extra}; "
            f"else /etc/init.d/{n} {verb}{extra}; fi"]


def plan(current: Current, state: str | None, enabled: bool | None) -> tuple[list[str], list[str], str]:
    """(verbs to run, in order; what they change in words; a note on what was left as it is)."""
    verbs, said, note = [], [], ""
    if enabled is not None and enabled != current.enabled:
        if not enabled and current.enabled_word in FIXED:
            note = f"it is {current.enabled_word}: there is nothing to disable"
        else:
            verbs.append("enable" if enabled else "disable")
            said.append("enabled" if enabled else "disabled")
    if state == "started" and not current.running:
        verbs.append("start")
        said.append("started")
    elif state == "stopped" and (current.running or current.stopping):
        verbs.append("stop")
        said.append("stopped")
    elif state == "restarted":
        verbs.append("restart")
        said.append("restarted")
    elif state == "reloaded":   # as Ansible does: a service that does not run is started, not reloaded
        verbs.append("reload" if current.running else "start")
        said.append("reloaded" if current.running else "started")
    return verbs, said, note


class Service(NamedFreeForm, TaskModule, name="service"):
    description = "Start, stop, restart or reload a service; enable or disable it at boot (systemd, OpenRC, SysV)"
    free_form = "name"
    aliases = {"args": "arguments"}
    schema = {
        vol.Required("name"): service_name,
        vol.Optional("state", default=None): maybe(vol.In(STATES)),
        vol.Optional("enabled", default=None): maybe(boolean),
        vol.Optional("daemon_reload", default=False): boolean,
        vol.Optional("arguments", default=""): text,
    }

    @dataclass(frozen=True)
    class Params:
        name: str
        state: str | None = None
        enabled: bool | None = None
        daemon_reload: bool = False
        arguments: str = ""

        def __post_init__(self) -> None:
            if self.state is None and self.enabled is None and not self.daemon_reload:
                raise vol.Invalid("give state, enabled or daemon_reload", path=["state"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        res = await quiet(ctx, probe_script(p.name, p.daemon_reload and not ctx.check))
        if not res.ok:
            return failure(f"could not read the state of {p.name}", res)
        tags, _ = tagged(res.stdout)
        if "failed" in tags:
            return Result(failed=True, msg=f"{first(tags, 'failed')}: {tail(res.stderr) or 'no message'}")
        current = Current.parse(tags)
        data = {"name": p.name, "state": "started" if current.running else "stopped", "enabled": current.enabled,
                "init": current.init}
        if p.state is None and p.enabled is None:   # daemon_reload alone: like Ansible, not a change
            said = "daemon reloaded" if not ctx.check else "daemon-reload not run in check mode"
            return Result(msg=said if current.init == "systemd" else "not systemd: nothing to reload", data=data)
        if not current.exists:
            if ctx.check:   # an earlier task, not run in check mode, may be the one that installs it
                return Result(skipped=True, msg=f"cannot check: there is no service {p.name} (yet)", data=data)
            return Result(failed=True, msg=f"could not find the service {p.name} ({current.init})", data=data)
        verbs, said, note = plan(current, p.state, p.enabled)
        if not verbs:
            return Result(msg=f"{p.name} is as asked" + (f" ({note})" if note else ""), data=data)
        msg = f"{p.name} " + ", ".join(said)
        after = {**data, "enabled": "enable" in verbs or current.enabled and "disable" not in verbs}
        if p.state:
            after["state"] = "stopped" if p.state == "stopped" else "started"
        if ctx.check:
            return Result(changed=True, msg=msg, data=after)
        script = " && ".join(c for verb in verbs
                             for c in commands(current.init, p.name, verb, current.tools, p.arguments))
        res = await ctx.sh(script)
        if not res.ok:
            return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr, data=data,
                          msg=f"could not {' and '.join(verbs)} {p.name}: {tail(res.stderr) or tail(res.stdout)}")
        return Result(changed=True, msg=msg, data=after)

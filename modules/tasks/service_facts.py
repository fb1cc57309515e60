"""service_facts: the `services` fact as Ansible gathers it, {"ssh.service": {name, state, status, source}}.

One script asks every init system the target has, as Ansible does: SysV's `service --status-all`, upstart's
`initctl list`, OpenRC's rc-status and rc-update, and, where systemd is PID 1, `systemctl list-units` then
`list-unit-files`; a unit file that list-units did not show gets its ActiveState from one `systemctl show`
for all of them (Ansible runs one per unit, which costs seconds under emulation). Parsed here, by Ansible's
rules: a later source overwrites an earlier one's entry of the same name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._remote import failure, quiet, tagged

BAD_STATES = ("not-found", "masked", "failed")
SYSV = re.compile(r"^\s*\[ (?P<state>\+|\-) \]\s+(?P<name>.+)$")
UPSTART = re.compile(r"^\s?(?P<name>.*)\s(?P<goal>\w+)\/(?P<state>\w+)(\,\sprocess\s(?P<pid>[0-9]+))?\s*$")

SCRIPT = r"""export LANG=C LC_ALL=C
have() { command -v "$1" >/dev/null 2>&1; }
if have service && ! have chkconfig && ! have rc-status; then
  service --status-all 2>/dev/null | sed 's/^/sysv /'
fi
if have initctl && ! have chkconfig; then
  initctl list 2>/dev/null | tr -d '\r' | sed 's/^/upstart /'
elif ! have chkconfig && have rc-status && have rc-update; then
  rc-status -a -s -m 2>&1 | grep '^ ' | tr -d '[]' | sed 's/^/openrc /'
  rc-update show -v 2>&1 | grep '|' | sed 's/^/openrcupdate /'
fi
if have systemctl && { [ -e /run/systemd/system/ ] || [ -e /dev/.run/systemd/ ] || [ -e /dev/.systemd/ ] ||
   [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }; then
  units=$(systemctl list-units --no-pager --type service --all --plain) || echo 'warning list-units failed'
  files=$(systemctl list-unit-files --no-pager --type service --all) || echo 'warning list-unit-files failed'
  printf '%s\n' "$units" | grep -F .service | sed 's/^/unit /'
  printf '%s\n' "$files" | grep -F .service | sed 's/^/file /'
  # the unit files list-units did not show, except templates (systemctl cannot show them: Ansible's unknown)
  listed=" $(printf '%s\n' "$units" | grep -F .service | awk '{printf "%s ", $1}')"
  rest=
  for u in $(printf '%s\n' "$files" | grep -F .service | awk '{print $1}'); do
    case "$u" in *@.service) continue;; esac
    case "$listed" in *" $u "*) continue;; esac
    rest="$rest $u"
  done
  if [ -n "$rest" ]; then
    set -- $rest
    out=$(systemctl show --property=ActiveState -- "$@" 2>/dev/null)
    if [ "$(printf '%s\n' "$out" | grep -c '^ActiveState=')" -eq $# ]; then
      printf '%s\n' "$out" | grep '^ActiveState=' | while read -r line; do
        printf 'active %s %s\n' "$1" "${line#ActiveState=}"; shift; done
    else
      for u; do s=$(systemctl show "$u" --property=ActiveState 2>/dev/null) && [ -n "$s" ] &&
        printf 'active %s %s\n' "$u" "$(printf '%s' "$s" | sed 's/ActiveState=//g')"; done
    fi
  fi
fi
exit 0
"""

Services = dict[str, dict[str, Any]]


def parse_sysv(lines: list[str], services: Services) -> None:
    for line in lines:
        match = SYSV.match(line)
        if match:
            name = match["name"]
            services[name] = {"name": name, "state": "running" if match["state"] == "+" else "stopped",
                              "source": "sysv"}


def parse_upstart(lines: list[str], services: Services) -> None:
    for line in lines:
        match = UPSTART.match(line)
        if match:
            services[match["name"]] = {"name": match["name"], "state": match["state"], "goal": match["goal"],
                                       "source": "upstart"}


def parse_openrc(status: list[str], update: list[str], services: Services) -> None:
    runlevels: dict[str, list[str] | None] = {}
    for line in update:
        fields = line.split("|")
        if len(fields) >= 2:
            runlevels[fields[0].strip()] = fields[1].split() or None
    for line in status:
        fields = line.split()
        if len(fields) < 2 or fields[0] == "*" or fields[0] not in runlevels:
            continue
        services[fields[0]] = {"name": fields[0], "runlevels": runlevels[fields[0]], "state": fields[1],
                               "source": "openrc"}


def parse_systemd(units: list[str], files: list[str], active: dict[str, str], services: Services) -> None:
    """list-units first (state running or stopped, status its ACTIVE column or a bad state), then the unit files:
    a new one with its ActiveState (unknown when systemctl could not show it), a known one its file state."""
    for line in units:
        fields = line.split()
        if len(fields) < 4:
            continue
        status = next((bad for bad in BAD_STATES if bad in fields[:-1]), fields[2])
        services[fields[0]] = {"name": fields[0], "state": "running" if fields[3] == "running" else "stopped",
                               "status": status, "source": "systemd"}
    for line in files:
        fields = line.split()
        if len(fields) < 2:
            continue
        name, status = fields[:2]
        if name not in services:
            services[name] = {"name": name, "state": active.get(name, "unknown"), "status": status,
                              "source": "systemd"}
        elif services[name]["status"] not in BAD_STATES:
            services[name]["status"] = status


def gather(tags: dict[str, list[str]]) -> Services:
    services: Services = {}
    parse_sysv(tags.get("sysv", []), services)
    parse_upstart(tags.get("upstart", []), services)
    parse_openrc(tags.get("openrc", []), tags.get("openrcupdate", []), services)
    active = dict(line.split(" ", 1) for line in tags.get("active", []) if " " in line)
    parse_systemd(tags.get("unit", []), tags.get("file", []), active, services)
    return services


class ServiceFacts(TaskModule, name="service_facts"):
    description = "Gather the services (systemd, SysV, upstart, OpenRC) as the `services` fact"
    schema: dict = {}

    @dataclass(frozen=True)
    class Params:
        pass

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        res = await quiet(ctx, SCRIPT)
        if not res.ok:
            return failure("could not list the services", res)
        services = gather(tagged(res.stdout)[0])
        if not services:
            return Result(skipped=True, msg="Failed to find any services. This can be due to privileges or some "
                                            "other configuration issue.")
        facts = {"services": services}
        return Result(msg=f"{len(services)} services", facts=facts, data={"ansible_facts": facts})

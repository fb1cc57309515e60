"""timezone (community.general): the system's time zone and whether the hardware clock keeps UTC or local time.

As Ansible on Linux: where `timedatectl` runs (systemd), it reads `timedatectl status` and sets with
set-timezone / set-local-rtc. Elsewhere, on Debian's family (dpkg-reconfigure there), the zone is the first
word of /etc/timezone and /etc/localtime's link, set by editing the file, `ln -sf` the zone file and
`dpkg-reconfigure --frontend noninteractive tzdata`; the clock is UTC= in /etc/default/rcS and /etc/adjtime,
set with `hwclock --systohc`. After a change the state is read again and must be the one asked, as in Ansible.
The registered `diff` is Ansible's {before: {...}, after: {...}} over the options given.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import TRUE_WORDS, string
from modules.tasks._conffile import edit_file
from modules.tasks._remote import first, maybe, q, quiet, tagged, tail

STATUS_NAME = re.compile(r"^\s*Time ?zone\s*:\s*([^\s]+)", re.M)
STATUS_RTC = re.compile(r"^\s*RTC in local TZ\s*:\s*([^\s]+)", re.M)
FILE_NAME = re.compile(r"^([^\s]+)")
RCS_UTC = re.compile(r"^UTC\s*=\s*([^\s]+)")
ADJTIME = re.compile(r"^(UTC|LOCAL)$")
LINKED_ZONE = re.compile(r"(?:/(?:usr/share|etc)/zoneinfo/)(.*)")


@dataclass(frozen=True)
class Found:
    """What one probe saw; files as lists of lines, None when missing."""

    timedatectl: str | None       # its path when `timedatectl` ran (systemd)
    status: str
    zone_file: bool               # the asked zone exists under zoneinfo
    debian: bool                  # dpkg-reconfigure there
    hwclock: str | None
    timezone: list[str] | None
    rcs: list[str] | None
    adjtime: list[str] | None
    link: str | None              # /etc/localtime's raw link, when it is a link
    link_ok: bool                 # ... and it resolves
    same_file: bool               # /etc/localtime has the asked zone's bytes


def search(lines: list[str] | None, regexp: re.Pattern[str]) -> str | None:
    for line in lines or []:
        match = regexp.search(line)
        if match:
            return match.group(1)
    return None


def file_zone(found: Found, planned: str | None) -> str:
    """Ansible's NosystemdTimezone.get('name'): /etc/timezone's word, and when that is the planned zone,
    what /etc/localtime says (its link's zone, or n/a when it is not the planned zone's file)."""
    value = search(found.timezone, FILE_NAME) or "n/a"
    if value != planned:
        return value
    if found.link is not None:
        if not found.link_ok:
            return "n/a"
        linked = LINKED_ZONE.search(found.link)
        return (linked.group(1) if linked.group(1) != planned else value) if linked else "n/a"
    return value if found.same_file else "n/a"


def file_clock(found: Found, planned: str | None) -> str:
    """Ansible's NosystemdTimezone.get('hwclock'): UTC= in rcS, then /etc/adjtime when that agrees."""
    word = search(found.rcs, RCS_UTC)
    value = "n/a" if word is None else ("UTC" if word.lower() in TRUE_WORDS else "local")
    if value != planned:
        return value
    adjtime = search(found.adjtime, ADJTIME)
    return "local" if adjtime == "LOCAL" else "UTC"


def replaced(old: str | None, regexp: re.Pattern[str], line: str) -> str:
    """Ansible's _edit_file: the matching lines go, the new line takes the first one's place (or the top)."""
    lines = (old or "").splitlines(True)
    matched = [index for index, text in enumerate(lines) if regexp.search(text)]
    kept = [text for index, text in enumerate(lines) if index not in matched]
    kept.insert(matched[0] if matched else 0, line)
    return "".join(kept)


class Timezone(TaskModule, name="timezone"):
    description = "Set the system time zone and whether the hardware clock keeps UTC or local time"
    aliases = {"rtc": "hwclock"}
    # where the non-systemd strategy looks; tests move them
    zoneinfo = "/usr/share/zoneinfo"
    timezone_file = "/etc/timezone"
    localtime = "/etc/localtime"
    rcs_file = "/etc/default/rcS"
    adjtime_file = "/etc/adjtime"
    schema = {
        vol.Optional("name", default=None): maybe(string),
        vol.Optional("hwclock", default=None): maybe(vol.In(["local", "UTC"])),
    }

    @dataclass(frozen=True)
    class Params:
        name: str | None = None
        hwclock: str | None = None

        def __post_init__(self) -> None:
            if self.name is None and self.hwclock is None:
                raise vol.Invalid("one of name or hwclock is required (e.g. name: Europe/Paris)", path=["name"])

    def probe(self, name: str | None) -> str:
        def lines(tag: str, path: str) -> str:
            return f"[ -f {q(path)} ] && echo has-{tag} && sed 's/^/{tag} /' {q(path)}\n"

        zone = q(f"{self.zoneinfo}/{name or ''}")
        return ("t=$(command -v timedatectl 2>/dev/null) && timedatectl >/dev/null 2>&1 && "
                "printf 'timedatectl %s\\n' \"$t\" && timedatectl status | sed 's/^/status /'\n"
                f"[ -n {shlex.quote(name or '')} ] && [ -f {zone} ] && echo zonefile\n"
                "command -v dpkg-reconfigure >/dev/null 2>&1 && echo debian\n"
                "printf 'hwclock %s\\n' \"$(command -v hwclock)\"\n"
                + lines("tz", self.timezone_file) + lines("rcs", self.rcs_file) + lines("adj", self.adjtime_file) +
                f"l={q(self.localtime)}\n"
                "[ -L \"$l\" ] && printf 'link %s\\n' \"$(readlink \"$l\")\" && [ -e \"$l\" ] && echo link-ok\n"
                f"[ -n {shlex.quote(name or '')} ] && cmp -s \"$l\" {zone} && echo same\nexit 0\n")

    async def look(self, ctx: TaskContext, name: str | None) -> Found | Result:
        res = await quiet(ctx, self.probe(name))
        if not res.ok:
            return Result(failed=True, msg=f"could not read the time zone: {tail(res.stderr) or res.rc}")
        tags, _ = tagged(res.stdout)

        def text(tag: str) -> list[str] | None:
            return tags.get(tag, []) if f"has-{tag}" in tags else None

        return Found(first(tags, "timedatectl"), "\n".join(tags.get("status", [])), "zonefile" in tags,
                     "debian" in tags, first(tags, "hwclock") or None, text("tz"), text("rcs"), text("adj"),
                     first(tags, "link"), "link-ok" in tags, "same" in tags)

    def state(self, found: Found, p: Params) -> dict[str, str] | Result:
        """{hwclock, name} now (the options given only), in Ansible's words."""
        values = {}
        if found.timedatectl:
            zone, rtc = STATUS_NAME.search(found.status), STATUS_RTC.search(found.status)
            if (p.name and not zone) or (p.hwclock and not rtc):
                return Result(failed=True, msg=f"could not read `timedatectl status`: {tail(found.status)}")
            if p.hwclock and rtc:
                values["hwclock"] = "local" if rtc.group(1).lower() in TRUE_WORDS else "UTC"
            if p.name and zone:
                values["name"] = zone.group(1)
            return values
        if p.hwclock:
            values["hwclock"] = file_clock(found, p.hwclock)
        if p.name:
            values["name"] = file_zone(found, p.name)
        return values

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        found = await self.look(ctx, p.name)
        if isinstance(found, Result):
            return found
        problem = self.unsupported(found, p)
        if problem:
            return Result(failed=True, msg=f"Error message:\n{problem}")
        before = self.state(found, p)
        if isinstance(before, Result):
            return before
        planned = {key: value for key, value in (("hwclock", p.hwclock), ("name", p.name)) if value is not None}
        if before == planned or ctx.check:
            return self.done(before, planned, [])
        msgs = []
        for key in planned:
            if before[key] != planned[key]:
                failed = await self.change(ctx, found, key, planned[key], msgs)
                if failed:
                    return failed
        again = await self.look(ctx, p.name)
        after = again if isinstance(again, Result) else self.state(again, p)
        if isinstance(after, Result):
            return after
        if after != planned:
            return Result(failed=True, msg="Error message:\nstill not desired state, though changes have made - "
                                           f"planned: {planned}, after: {after}\nOther message(s):\n" + "\n".join(msgs))
        return self.done(before, after, msgs)

    def unsupported(self, found: Found, p: Params) -> str | None:
        if p.name and not found.zone_file:
            return f'given timezone "{p.name}" is not available'
        if not found.timedatectl and not found.debian:
            return ("recipe's timezone knows timedatectl (systemd) and Debian's files (dpkg-reconfigure); "
                    "this target has neither")
        if not found.timedatectl and p.hwclock and not found.hwclock:
            return "Failed to find required executable \"hwclock\" in paths"
        return None

    @staticmethod
    def done(before: dict[str, str], after: dict[str, str], msgs: list[str]) -> Result:
        changed = before != after
        diff = {"before": before, "after": after}
        text = "".join(f"-{key} = {before[key]}\n+{key} = {after[key]}\n" for key in after if before[key] != after[key])
        data: dict[str, object] = {"diff": diff, **({"msg": "\n".join(msgs)} if msgs else {})}
        summary = ", ".join(f"{key} {before[key]} -> {after[key]}" for key in after if before[key] != after[key])
        return Result(changed=changed, msg="\n".join(msgs) or summary or "time zone is as asked", diff=text, data=data)

    async def change(self, ctx: TaskContext, found: Found, key: str, value: str, msgs: list[str]) -> Result | None:
        if found.timedatectl:
            subcommand = f"set-timezone {shlex.quote(value)}" if key == "name" else \
                f"set-local-rtc {'yes' if value == 'local' else 'no'}"
            command = f"{found.timedatectl} {subcommand}"
            msgs.append(f"executed `{command}`")
            return await run(ctx, command)
        if key == "name":
            failed = await self.edit(ctx, self.timezone_file, FILE_NAME, f"{value}\n", found.timezone, msgs)
            zone = q(f"{self.zoneinfo}/{value}")
            return failed or await run(ctx, f"ln -sf {zone} {q(self.localtime)} && "
                                            "dpkg-reconfigure --frontend noninteractive tzdata")
        failed = await self.edit(ctx, self.rcs_file, RCS_UTC, f"UTC={'no' if value == 'local' else 'yes'}\n",
                                 found.rcs, msgs)
        command = f"{found.hwclock} --systohc {'--localtime' if value == 'local' else '--utc'}"
        if not failed:
            msgs.append(f"executed `{command}`")
        return failed or await run(ctx, command)

    @staticmethod
    async def edit(ctx: TaskContext, path: str, regexp: re.Pattern[str], line: str, lines: list[str] | None,
                   msgs: list[str]) -> Result | None:
        result = await edit_file(ctx, path, lambda old: (replaced(old, regexp, line), ""))
        if result.failed:
            return result
        deleted = sum(1 for text in lines or [] if regexp.search(text))
        msgs.append(f"Added 1 line and deleted {deleted} line(s) on {path}")
        return None


async def run(ctx: TaskContext, command: str) -> Result | None:
    res = await ctx.sh(command)
    if res.ok:
        return None
    return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr,
                  msg=f"Error message:\n{tail(res.stderr) or f'{command} failed with status {res.rc}'}")

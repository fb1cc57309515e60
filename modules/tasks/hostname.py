"""hostname: the machine's name, now (current) and across boots (permanent), with Ansible's strategies.

As Ansible: `use` picks the strategy; without it, a Linux whose PID 1 is systemd uses hostnamectl, and
otherwise the distribution decides (Debian's family writes /etc/hostname, Red Hat's /etc/sysconfig/network,
Alpine's /etc/hostname then `hostname -F`, Gentoo's /etc/conf.d/hostname). The file strategies keep no
separate current name: the file's is both, and setting it sets nothing else, as in Ansible.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import ClassVar

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import string
from modules.tasks._attrs import Attrs
from modules.tasks._conffile import edit_file, read_file
from modules.tasks._remote import first, maybe, quiet, tagged

STRATEGIES = ("alpine", "debian", "freebsd", "generic", "macos", "macosx", "darwin", "openbsd", "openrc",
              "redhat", "sles", "solaris", "systemd")
REDHAT = ("alinux", "altlinux", "amzn", "anolis", "centos", "cloudlinux", "eurolinux", "ol", "rhel",
          "scientific", "virtuozzo")
DEBIAN = ("cumulus-linux", "debian", "deepin", "devuan", "kali", "kylin", "linaro", "linuxmint", "neon",
          "parrot", "pop", "raspbian", "ubuntu", "uos", "void")

# Ansible's is_systemd_managed: systemctl there, and sd_booted's canaries or PID 1 named systemd
PROBE = ("if command -v systemctl >/dev/null 2>&1 && { [ -e /run/systemd/system/ ] || [ -e /dev/.run/systemd/ ] ||"
         " [ -e /dev/.systemd/ ] || [ \"$(cat /proc/1/comm 2>/dev/null)\" = systemd ]; }; then echo systemd; fi\n"
         "printf 'os %s\\n' \"$(. /etc/os-release 2>/dev/null; echo \"${ID:-}\")\"\n"
         "printf 'kernel %s\\n' \"$(uname -s)\"\n")
FQDN_SH = "printf 'fqdn %s\\n' \"$(hostname -f 2>/dev/null || hostname 2>/dev/null || uname -n)\"\n"


class Strategy:
    """How one system keeps its names; `file` strategies read and write one file through _conffile."""

    file: ClassVar[str] = ""

    async def names(self, ctx: TaskContext) -> tuple[str, str] | Result:
        """(current, permanent)."""
        permanent = await self.permanent(ctx)
        return permanent if isinstance(permanent, Result) else (permanent, permanent)

    async def permanent(self, ctx: TaskContext) -> str | Result:
        found = await read_file(ctx, self.file)
        if isinstance(found, Result):
            return found
        return self.parse(found.text) if found.text is not None else ""

    def parse(self, text: str) -> str:
        return text.strip()

    def render(self, old: str | None, name: str) -> str:
        return f"{name}\n"

    async def set_permanent(self, ctx: TaskContext, name: str) -> Result | None:
        result = await edit_file(ctx, self.file, lambda old: (self.render(old, name), ""), Attrs())
        return result if result.failed else None

    async def set_current(self, ctx: TaskContext, name: str) -> Result | None:
        return None

    def check(self, name: str) -> str | None:
        return None


class FileStrategy(Strategy):
    file = "/etc/hostname"


class SLESStrategy(FileStrategy):
    file = "/etc/HOSTNAME"


class AlpineStrategy(FileStrategy):
    async def set_current(self, ctx: TaskContext, name: str) -> Result | None:
        return await run(ctx, f"hostname -F {shlex.quote(self.file)}")


class RedHatStrategy(Strategy):
    file = "/etc/sysconfig/network"

    def parse(self, text: str) -> str:
        for line in text.splitlines():
            if line.strip().startswith("HOSTNAME"):
                return line.strip().split("=")[1].strip()
        return ""

    def render(self, old: str | None, name: str) -> str:
        lines = [f"HOSTNAME={name}\n" if line.strip().startswith("HOSTNAME") else line
                 for line in (old or "").splitlines(True)]
        return "".join(lines) + ("" if any(line.startswith("HOSTNAME=") for line in lines) else f"HOSTNAME={name}\n")


class OpenRCStrategy(Strategy):
    file = "/etc/conf.d/hostname"

    def parse(self, text: str) -> str:
        for line in text.splitlines():
            if line.strip().startswith("hostname="):
                return line.strip()[10:].strip('"')
        return ""

    def render(self, old: str | None, name: str) -> str:
        lines = [line.strip() for line in (old or "").splitlines()]
        for index, line in enumerate(lines):
            if line.startswith("hostname="):
                lines[index] = f'hostname="{name}"'
                break
        return "\n".join(lines) + "\n"


class SystemdStrategy(Strategy):
    async def names(self, ctx: TaskContext) -> tuple[str, str] | Result:
        res = await quiet(ctx, "hostnamectl --transient status && echo --recipe-- && hostnamectl --static status",
                          become=False)
        if not res.ok:
            return Result(failed=True, rc=res.rc, msg=f"Command failed rc={res.rc}, out={res.stdout}, err={res.stderr}")
        current, _, permanent = res.stdout.partition("--recipe--")
        return current.strip(), permanent.strip()

    def check(self, name: str) -> str | None:
        if len(name) > 64:
            return "name cannot be longer than 64 characters on systemd servers, try a shorter name"
        return None

    async def set_permanent(self, ctx: TaskContext, name: str) -> Result | None:
        return await run(ctx, f"hostnamectl --pretty --static set-hostname {shlex.quote(name)}")

    async def set_current(self, ctx: TaskContext, name: str) -> Result | None:
        return await run(ctx, f"hostnamectl --transient set-hostname {shlex.quote(name)}")


async def run(ctx: TaskContext, command: str) -> Result | None:
    res = await ctx.sh(command)
    if res.ok:
        return None
    return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr,
                  msg=f"Command failed rc={res.rc}, out={res.stdout}, err={res.stderr}")


BY_USE = {"systemd": SystemdStrategy, "debian": SystemdStrategy, "alpine": AlpineStrategy, "redhat": RedHatStrategy,
          "openrc": OpenRCStrategy, "sles": SLESStrategy}


def choose(use: str | None, systemd: bool, os_id: str, kernel: str) -> type[Strategy] | str:
    """The strategy Ansible would use, or why there is none (Ansible's words)."""
    if use is not None:
        return BY_USE.get(use) or f"recipe has no {use} strategy for hostname (it has {', '.join(BY_USE)})"
    if kernel == "Linux" and systemd:
        return SystemdStrategy
    if os_id in DEBIAN:
        return FileStrategy
    if os_id in REDHAT:
        return RedHatStrategy
    found = {"alpine": AlpineStrategy, "gentoo": OpenRCStrategy, "sles": SLESStrategy}.get(os_id)
    return found or f"hostname module cannot be used on platform {kernel}" + (f" ({os_id})" if os_id else "")


def facts(name: str, fqdn: str) -> dict[str, str]:
    return {"ansible_hostname": name.split(".")[0], "ansible_nodename": name, "ansible_fqdn": fqdn,
            "ansible_domain": ".".join(fqdn.split(".")[1:])}


class Hostname(TaskModule, name="hostname"):
    description = "Set the machine's hostname, now and across boots (hostnamectl, or the distribution's file)"
    schema = {
        vol.Required("name"): string,
        vol.Optional("use", default=None): maybe(vol.In(STRATEGIES)),
    }

    @dataclass(frozen=True)
    class Params:
        name: str
        use: str | None = None

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        res = await quiet(ctx, PROBE, become=False)
        tags, _ = tagged(res.stdout)
        chosen = choose(p.use, "systemd" in tags, first(tags, "os", "") or "", first(tags, "kernel", "") or "")
        if isinstance(chosen, str):
            return Result(failed=True, msg=chosen)
        strategy = chosen()
        names = await strategy.names(ctx)
        if isinstance(names, Result):
            return names
        current, permanent = names
        changed = p.name != permanent or p.name != current
        if changed and strategy.check(p.name):
            return Result(failed=True, msg=strategy.check(p.name) or "")
        if changed and not ctx.check:
            # systemd: the permanent name first, or NetworkManager complains of a name set behind its back
            steps = [(p.name != permanent, strategy.set_permanent), (p.name != current, strategy.set_current)]
            if not isinstance(strategy, SystemdStrategy):
                steps.reverse()
            for needed, step in steps:
                failed = await step(ctx, p.name) if needed else None
                if failed:
                    return failed
        fqdn = first(tagged((await quiet(ctx, FQDN_SH, become=False)).stdout)[0], "fqdn", "") or ""
        before = current if p.name != current else permanent
        found = facts(p.name, fqdn)
        diff = f"-hostname = {before}\n+hostname = {p.name}\n" if changed else ""
        return Result(changed=changed, msg=f"hostname {before} -> {p.name}" if changed else f"hostname is {p.name}",
                      diff=diff, facts=found, data={"name": p.name, "ansible_facts": found})

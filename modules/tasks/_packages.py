"""What apt and package share: one probe that finds the package manager and reads what is installed, a plan
made here from what it printed, then one action.

A Backend is what one package manager needs: the shell of its probe and of its action, and the parsing of
what they print. The flow around them is the same for every manager, so `package` on a Debian guest does
exactly what `apt` does, through the same code.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext
from engine.remote.connection import CommandResult
from modules.tasks._remote import failure, first, quiet, tagged, tail, text

STATES = ("present", "absent", "latest")
NAME = re.compile(r"^[^\s-][^\s]*$")


def package_names(value: Any) -> list[str]:
    """A name, a list of names, or "a,b" (Ansible's list form), as a list; [] for nothing."""
    names: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        names += [part.strip() for part in text(item).split(",") if part.strip()]
    for name in names:
        if not NAME.match(name):
            raise vol.Invalid(f"{name!r} is not a package name")
    return names


@dataclass(frozen=True)
class Request:
    """What a task asks of the package manager; the options only apt has keep their defaults elsewhere."""

    names: tuple[str, ...] = ()
    state: str = "present"
    update_cache: bool = False
    cache_valid_time: int | None = None
    install_recommends: bool | None = None   # None: as the manager is configured (apt: recommends too)
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


@dataclass(frozen=True)
class Plan:
    install: tuple[str, ...] = ()   # as the install command takes them (apt: "pkg=1.2", a .deb path)
    upgrade: tuple[str, ...] = ()   # installed, with a newer version to go to
    remove: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()     # whole-system steps only the action can tell the effect of (upgrade, autoremove)

    def __bool__(self) -> bool:
        return bool(self.install or self.upgrade or self.remove or self.steps)

    @property
    def packages(self) -> list[str]:
        return [*self.install, *self.upgrade, *self.remove]

    def words(self) -> str:
        parts = [f"{verb} {', '.join(items)}" for verb, items in
                 zip(("installed", "upgraded", "removed"), (self.install, self.upgrade, self.remove)) if items]
        return "; ".join(parts + list(self.steps))


class Backend:
    """One package manager. tool is what `command -v` looks for; subclasses fill in the shell and the parsing."""

    tool: ClassVar[str]

    def probe(self, req: Request, check: bool) -> str:
        """Shell lines printing tagged state (and `failed <what>` on a failure); they must not exit."""
        raise NotImplementedError

    def plan(self, req: Request, tags: dict[str, list[str]]) -> Plan:
        raise NotImplementedError

    def action(self, req: Request, plan: Plan, check: bool) -> str | None:
        """The script that carries out plan; in check mode a dry run, or None when the plan says it all."""
        raise NotImplementedError

    def outcome(self, req: Request, plan: Plan, res: CommandResult, check: bool) -> Result:
        """What the action did. By default the plan, made from the probe, is what changed."""
        data = {"packages": plan.packages}
        if not res.ok:
            return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr, data=data,
                          msg=f"{self.tool} failed with rc {res.rc}: {tail(res.stderr) or tail(res.stdout)}")
        return Result(changed=True, msg=plan.words(), rc=res.rc, stdout=res.stdout,
                      stderr=res.stderr, data=data)


def probe_script(backends: Sequence[Backend], req: Request, check: bool) -> str:
    """One script: the first manager found prints `manager <tool>`, then its own probe runs."""
    script = ""
    for index, backend in enumerate(backends):
        script += (f"{'if' if index == 0 else 'elif'} command -v {backend.tool} >/dev/null 2>&1; then\n"
                   f"echo 'manager {backend.tool}'\n{backend.probe(req, check)}")
    return script + "else echo 'manager none'\nfi\nexit 0\n"


async def ensure(ctx: TaskContext, backends: Sequence[Backend], req: Request) -> Result:
    """Probe, plan, and act when the plan is not empty: the whole of apt and package."""
    res = await quiet(ctx, probe_script(backends, req, ctx.check))
    if not res.ok:
        return failure("could not read the installed packages", res)
    tags, _ = tagged(res.stdout)
    tool = first(tags, "manager")
    backend = next((b for b in backends if b.tool == tool), None)
    if backend is None:
        found = " or ".join(b.tool for b in backends)
        return Result(failed=True, msg=f"no package manager on the target: {found} not found")
    data: dict[str, Any] = {"packages": [], "cache_updated": "updated" in tags}
    if (first(tags, "cachetime") or "").isdigit():
        data["cache_update_time"] = int(first(tags, "cachetime"))
    if "failed" in tags:
        detail = tail(res.stderr)
        return Result(failed=True, data=data, msg=f"{first(tags, 'failed')}" + (f": {detail}" if detail else ""))
    if "nofile" in tags:   # a .deb to install: in check mode, an earlier task may be the one that fetches it
        missing = first(tags, "nofile")
        if ctx.check:
            return Result(skipped=True, msg=f"cannot check: {missing} does not exist (yet)", data=data)
        return Result(failed=True, msg=f"{missing} is not a file on the target", data=data)
    plan = backend.plan(req, tags)
    if not plan:
        msg = "the packages are as asked" if req.names or req.deb else "nothing to do"
        # only updating the lists (no package named) is a change, as Ansible's apt reports it
        # (changed=updated_cache); with packages named, the packages alone decide
        return Result(changed=bool(data["cache_updated"]) and not (req.names or req.deb),
                      msg=("package lists updated; " if data["cache_updated"] else "") + msg, data=data)
    script = backend.action(req, plan, ctx.check)
    if script is None:
        return Result(changed=True, msg=plan.words(), data={**data, "packages": plan.packages})
    res = await (quiet(ctx, script) if ctx.check else ctx.sh(script))
    result = backend.outcome(req, plan, res, ctx.check)
    return result.replace(data={**data, **result.data})

"""group: make a local group exist (with a gid) or not, with groupadd/groupmod/groupdel or BusyBox's tools."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, integer
from modules.tasks._accounts import account_name, entry_sh, fields, tools_sh
from modules.tasks._remote import NamedFreeForm, failure, first, maybe, quiet, tagged, tail

TOOLS = ("groupadd", "groupmod", "groupdel", "addgroup", "delgroup")


def group_commands(name: str, state: str, gid: int | None, system: bool, entry: list[str] | None,
                   tools: set[str]) -> tuple[list[str], str]:
    """(commands, what they do in words); no commands: nothing to do. Raises ValueError when no tool can."""
    n = shlex.quote(name)
    if state == "absent":
        if entry is None:
            return [], ""
        if "groupdel" in tools:
            return [f"groupdel {n}"], "removed"
        if "delgroup" in tools:
            return [f"delgroup {n}"], "removed"
        raise ValueError("neither groupdel nor delgroup is on the target")
    if entry is None:
        if "groupadd" in tools:
            return [" ".join(["groupadd", *(["-g", str(gid)] if gid is not None else []),
                              *(["-r"] if system else []), n])], "created"
        if "addgroup" in tools:
            return [" ".join(["addgroup", *(["-g", str(gid)] if gid is not None else []),
                              *(["-S"] if system else []), n])], "created"
        raise ValueError("neither groupadd nor addgroup is on the target")
    if gid is not None and entry[2] != str(gid):
        if "groupmod" not in tools:
            raise ValueError(f"groupmod is not on the target, so the gid of {name} cannot change")
        return [f"groupmod -g {gid} {n}"], f"gid {entry[2]} -> {gid}"
    return [], ""


class Group(NamedFreeForm, TaskModule, name="group"):
    description = "Create or remove a local group, or change its gid"
    free_form = "name"
    schema = {
        vol.Required("name"): account_name,
        vol.Optional("state", default="present"): vol.In(("present", "absent")),
        vol.Optional("gid", default=None): maybe(vol.All(integer, vol.Range(min=0))),
        vol.Optional("system", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        name: str
        state: str = "present"
        gid: int | None = None
        system: bool = False

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        res = await quiet(ctx, entry_sh("group", p.name, "group") + tools_sh(*TOOLS) + "exit 0\n")
        if not res.ok:
            return failure(f"could not read group {p.name}", res)
        tags, _ = tagged(res.stdout)
        entry = fields(first(tags, "group"), 4)
        data = {"name": p.name, "state": p.state, "system": p.system,
                "gid": int(entry[2]) if entry and entry[2].isdigit() else p.gid}
        try:
            cmds, said = group_commands(p.name, p.state, p.gid, p.system, entry, set(tags.get("tool", [])))
        except ValueError as exc:
            return Result(failed=True, msg=f"cannot manage group {p.name}: {exc}", data=data)
        if not cmds:
            return Result(msg=f"group {p.name} is as asked", data=data)
        msg = f"group {p.name} {said}" if said in ("created", "removed") else f"group {p.name}: {said}"
        if ctx.check:
            return Result(changed=True, msg=msg, data=data)
        script = " && ".join(cmds) + (f" && {entry_sh('group', p.name, 'group')}" if p.state == "present" else "\n")
        res = await quiet(ctx, script)
        if not res.ok:
            verb = {"created": "create", "removed": "remove"}.get(said, "change")
            detail = tail(res.stderr) or f"exit status {res.rc}"
            return Result(failed=True, msg=f"could not {verb} group {p.name}: {detail}", data=data)
        after = fields(first(tagged(res.stdout)[0], "group"), 4)
        if after and after[2].isdigit():
            data["gid"] = int(after[2])
        return Result(changed=True, msg=msg, data=data)

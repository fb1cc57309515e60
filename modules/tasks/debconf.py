"""debconf: one answer in debconf's database, the way a package's installation would ask for it.

As Ansible's module: the package's answers are read with `debconf-show <name>` (a password, which it hides, with
`debconf-get-selections`); a question missing or answered otherwise is set with `debconf-set-selections`
(`-u`: marked unseen). The answer goes on that command's stdin, never on a command line. Returns Ansible's
`current`, `previous` and `msg`, and `diff` when the user asked for --diff.

Unlike Ansible, which prints everything unless the task says no_log, a password answer is masked in what the
task returns and shows.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, string
from engine.secrets import MASK
from modules.tasks._remote import maybe, quiet, tail, text

VTYPES = ("boolean", "error", "multiselect", "note", "password", "seen", "select", "string", "text", "title")


def answer(value: Any) -> str | list[str]:
    """Ansible's raw value: text, or a list (a multiselect's choices); YAML's true is debconf's "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [answer(item) for item in value]  # type: ignore[misc]
    return text(value)


def parse_show(stdout: str) -> dict[str, str]:
    """debconf-show's `* question: value` lines (the * marks a seen question)."""
    selections = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            selections[key.strip("*").strip()] = value.strip()
    return selections


def password_of(stdout: str, name: str, question: str, vtype: str) -> str | None:
    """Ansible's get_password_value over debconf-get-selections' tab-separated lines."""
    for line in stdout.split("\n"):
        if not line.startswith(name):
            continue
        fields = line.split("\t")
        if len(fields) <= 3:
            return ""
        if fields[1] == question and fields[2] == vtype:
            return fields[3]
    return None


class Debconf(TaskModule, name="debconf"):
    description = "Set an answer in debconf's database (debconf-set-selections)"
    aliases = {"pkg": "name", "selection": "question", "setting": "question", "answer": "value"}
    schema = {
        vol.Required("name"): string,
        vol.Optional("question", default=None): maybe(string),
        vol.Optional("vtype", default=None): maybe(vol.In(VTYPES)),
        vol.Optional("value", default=None): maybe(answer),
        vol.Optional("unseen", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        name: str
        question: str | None = None
        vtype: str | None = None
        value: str | list[str] | None = None
        unseen: bool = False

        def __post_init__(self) -> None:
            given = [self.question is not None, self.vtype is not None, self.value is not None]
            if any(given) and not all(given):
                raise vol.Invalid("question, vtype and value go together: give all three or none",
                                  path=["question"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        res = await quiet(ctx, f"debconf-show {shlex.quote(p.name)}")
        if not res.ok:
            return Result(failed=True, rc=res.rc, msg=tail(res.stderr) or f"debconf-show failed (rc={res.rc})")
        prev = parse_show(res.stdout)
        if p.question is None or p.vtype is None or p.value is None:
            return Result(msg="", data={"msg": "", "current": prev})
        value = p.value.lower() if p.vtype == "boolean" and isinstance(p.value, str) else p.value
        existing = await self.existing(ctx, p, prev)
        if isinstance(existing, Result):
            return existing
        if p.vtype == "multiselect" and isinstance(value, list):
            value = sorted(value)
            existing = sorted(item.strip() for item in (existing or "").split(","))
        if p.question in prev and value == existing:
            return Result(msg="", data={"msg": "", "current": prev})
        msg = ""
        if not ctx.check:
            written = ", ".join(value) if isinstance(value, list) else value
            res = await quiet(ctx, "debconf-set-selections" + (" -u" if p.unseen else ""),
                              stdin=" ".join([p.name, p.question, p.vtype, written]))
            if not res.ok:
                return Result(failed=True, rc=res.rc, msg=tail(res.stderr) or f"debconf-set-selections rc={res.rc}")
            msg = res.stdout
        shown = MASK if p.vtype == "password" else value
        before = {p.question: prev.get(p.question, "")}
        after = {p.question: shown}
        data: dict[str, Any] = {"msg": msg, "current": after, "previous": before,
                                "diff": {"before": before, "after": after} if ctx.diff else {}}
        return Result(changed=True, msg=msg or f"{p.name} {p.question} set", data=data,
                      diff=f"-{p.question}: {before[p.question]}\n+{p.question}: {shown}\n")

    @staticmethod
    async def existing(ctx: TaskContext, p: Params, prev: dict[str, str]) -> str | None | Result:
        """The answer to compare with: debconf-show's, except that it hides passwords."""
        if p.question not in prev:
            return None
        if p.vtype == "boolean":
            return prev[p.question].lower()
        if p.vtype != "password":
            return prev[p.question]
        res = await quiet(ctx, "command -v debconf-get-selections >/dev/null || "
                               "{ echo 'Failed to find required executable \"debconf-get-selections\" in paths "
                               "(it is in the debconf-utils package)' >&2; exit 1; }; debconf-get-selections")
        if not res.ok:
            return Result(failed=True, msg=f"Failed to get the value '{p.question}' from '{p.name}': "
                                           f"{tail(res.stderr)}")
        return password_of(res.stdout, p.name, p.question or "", p.vtype)

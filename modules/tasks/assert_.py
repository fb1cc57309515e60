"""assert: check that expressions hold, as Ansible's assert action does; changes nothing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import HintedInvalid, boolean, expression, one_or_more
from engine.recipe.template import SandboxRefusal, TemplateFailure, broken_conditional


def message(value: Any) -> str | list[str]:
    """A message, or a list of lines, as Ansible's fail_msg and success_msg take them."""
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        return value
    raise HintedInvalid(f"expected a string or a list of strings, got {value!r}", hint='quote it: "..."')


def conditional(value: Any, shown: Any) -> Result | None:
    """A failed Result unless value is a boolean: Ansible 2.19 refuses "truthy" conditionals."""
    problem = broken_conditional(value, shown)
    return Result(failed=True, msg=problem) if problem else None


# Ansible 2.19's words for an empty entry of that: (a stray `-`), which fails the task when it runs
EMPTY = "Task failed: Empty conditional expressions are not allowed."


def assertion(value: Any) -> Any:
    """An entry of that:, or an empty one: Ansible loads it, and the task fails when it runs."""
    return None if value is None else expression(value)


class Assert(TaskModule, name="assert"):
    description = "Fail unless every expression of that: holds"
    raw_options: ClassVar[tuple[str, ...]] = ("that",)   # bare expressions: the engine must not render them
    aliases = {"msg": "fail_msg"}
    schema = {
        vol.Required("that"): one_or_more(assertion),
        vol.Optional("fail_msg", default="Assertion failed"): message,
        vol.Optional("success_msg", default="All assertions passed"): message,
        vol.Optional("quiet", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        that: list[str | bool | None]
        fail_msg: str | list[str] = "Assertion failed"
        success_msg: str | list[str] = "All assertions passed"
        quiet: bool = False

    @classmethod
    def notes(cls, args: Any) -> list[str]:
        that = args.get("that") if isinstance(args, dict) else None
        return [f"an empty entry of that: fails the task when it runs ({EMPTY})"] \
            if isinstance(that, list) and None in that else []

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        for that in params.that:
            if that is None:
                return Result(failed=True, msg=EMPTY)
            try:
                value = ctx.evaluate(that)
            except SandboxRefusal:
                raise           # not an assertion that failed: the task says what was refused
            except TemplateFailure as exc:
                return Result(failed=True, msg=f"Error while evaluating conditional: {exc.message}",
                              data={"assertion": that})
            problem = conditional(value, that)
            if problem:
                return problem
            if not value:
                return Result(failed=True, msg=str(params.fail_msg),
                              data={"assertion": that, "evaluated_to": False, "msg": params.fail_msg})
        return Result(msg=str(params.success_msg), data={"msg": params.success_msg})

"""debug: show a message or a variable's value; changes nothing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import integer
from engine.recipe.template import SandboxRefusal, TemplateFailure
from modules.tasks._remote import NamedFreeForm, maybe


class Debug(NamedFreeForm, TaskModule, name="debug"):
    description = "Print a message or the value of a variable"
    free_form = "msg"
    schema = {
        vol.Optional("msg", default=None): object,   # any value: a list or mapping shows as itself
        vol.Optional("var", default=None): maybe(str),
        vol.Optional("verbosity", default=0): vol.All(integer, vol.Range(min=0)),
    }

    @dataclass(frozen=True)
    class Params:
        msg: Any = None
        var: str | None = None
        verbosity: int = 0

        def __post_init__(self) -> None:
            if self.msg is not None and self.var is not None:
                raise vol.Invalid("give msg or var, not both", path=["var"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        # As ansible-playbook: shown only at -v as many as verbosity asks. The context does not carry the
        # run's verbosity (yet), so a task that asks for any is skipped, as it is without -v.
        if params.verbosity > getattr(ctx, "verbosity", 0):
            return Result(skipped=True, msg="Verbosity threshold not met.",
                          data={"skipped_reason": "Verbosity threshold not met."})
        if params.var is None:
            msg = "Hello world!" if params.msg is None else params.msg   # Ansible's default
            return Result(msg=str(msg), data={"msg": msg})
        # The arguments are rendered before the module sees them; var names a variable
        # (or an expression, as in Ansible), so it is evaluated here, in the task's scope, to its own
        # value (a list stays a list in what is registered, as in Ansible).
        try:
            value = ctx.evaluate(params.var)
            if value == params.var:   # a context without an evaluator hands the expression back: render it
                value = ctx.render_text("{{ " + params.var + " }}")
        except SandboxRefusal:
            raise       # not "not defined": the task fails and says what was refused
        except TemplateFailure:
            value = "VARIABLE IS NOT DEFINED!"
        return Result(msg=f"{params.var}: {value}", data={"msg": value, params.var: value})

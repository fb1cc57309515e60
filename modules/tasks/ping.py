"""ping: check that the target runs commands; answers pong (or data), as Ansible's ping does."""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._remote import failure, quiet, text


class Ping(TaskModule, name="ping"):
    description = "Check that the target answers; return pong"
    schema = {
        vol.Optional("data", default="pong"): text,
    }

    @dataclass(frozen=True)
    class Params:
        data: str = "pong"

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        if params.data == "crash":      # Ansible's documented way to test a failing module
            return Result(failed=True, msg="boom")
        res = await quiet(ctx, "true")  # the round trip is the point: Ansible's ping runs a module there
        if not res.ok:
            return failure("the target did not run a command", res)
        return Result(data={"ping": params.data})

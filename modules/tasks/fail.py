"""fail: stop with a message, as Ansible's fail action does (usually under a when:)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule


class Fail(TaskModule, name="fail"):
    description = "Fail the task with a message"
    schema = {
        vol.Optional("msg", default="Failed as requested from task"): object,   # Ansible shows a list as it is
    }

    @dataclass(frozen=True)
    class Params:
        msg: Any = "Failed as requested from task"

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        return Result(failed=True, msg=str(params.msg), data={"msg": params.msg})

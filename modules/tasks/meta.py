"""meta: act on the run itself. `meta: flush_handlers` runs the notified handlers now, not at the end.

Needed before steps such as sysprep, after which a handler like "reload sshd"
could no longer work. The executor carries the action out; this class is its
schema.
"""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule


class Meta(TaskModule, name="meta"):
    description = "flush_handlers: run the handlers notified so far, now; end_play/end_host: stop here, as done"
    free_form = "action"
    schema = {vol.Required("action"): vol.In(["flush_handlers", "noop", "end_play", "end_host", "end_batch",
                                              "clear_facts", "clear_host_errors", "refresh_inventory",
                                              "reset_connection"]),
              "_raw_params": str}

    @dataclass(frozen=True)
    class Params:
        action: str

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        return Result(msg=params.action)   # the executor acts before calling this

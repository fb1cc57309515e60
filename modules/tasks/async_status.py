"""async_status: the result of a task started with `async:` and `poll: 0`.

recipe runs such a task to its end when it starts (see engine.build.play.Jobs), so the job is always found
finished, with the task's result, as Ansible's would be once done.
"""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import string


class AsyncStatus(TaskModule, name="async_status"):
    description = "the result of an async task (poll: 0), found finished"
    schema = {vol.Required("jid"): string, vol.Optional("mode", default="status"): vol.In(["status", "cleanup"])}

    @dataclass(frozen=True)
    class Params:
        jid: str
        mode: str = "status"

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        job = ctx.async_job(params.jid)
        if job is None:
            return Result(failed=True, msg=f"could not find job {params.jid}", data={"ansible_job_id": params.jid,
                                                                                      "started": True, "finished": True})
        if params.mode == "cleanup":
            return Result(data={"ansible_job_id": params.jid, "erased": f"~/.ansible_async/{params.jid}"})
        data = {k: v for k, v in job.items() if k not in ("changed", "failed", "skipped", "msg")}
        return Result(changed=bool(job.get("changed")), failed=bool(job.get("failed")), msg=str(job.get("msg", "")),
                      data=data)

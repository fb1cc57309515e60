"""pause: wait some seconds or minutes on the controller, as Ansible's pause action does.

A build has no terminal to answer a prompt: Ansible, too, does not wait for
input when stdin is not interactive, so a prompt without a duration returns
at once with empty user_input (and says so).
"""
from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._remote import maybe, text


def whole(value: Any) -> int:
    """Python's int() as Ansible applies it to seconds and minutes: 5, "5", 2.5 (-> 2); not "2.5"."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise vol.Invalid(f"expected a whole number, got {value!r}") from None


class Pause(TaskModule, name="pause"):
    description = "Wait a number of seconds or minutes"
    schema = {
        vol.Optional("seconds", default=None): maybe(whole),
        vol.Optional("minutes", default=None): maybe(whole),
        vol.Optional("prompt", default=None): maybe(text),
        vol.Optional("echo", default=True): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        seconds: int | None = None
        minutes: int | None = None
        prompt: str | None = None
        echo: bool = True

        def __post_init__(self) -> None:
            if self.seconds is not None and self.minutes is not None:
                raise vol.Invalid("give seconds or minutes, not both", path=["minutes"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        unit = "seconds" if params.seconds is not None else "minutes"
        wait = params.seconds if params.seconds is not None else (
            params.minutes * 60 if params.minutes is not None else None)
        start_clock, started = time.monotonic(), str(datetime.datetime.now())
        if wait is not None:
            await asyncio.sleep(max(wait, 1))     # Ansible waits at least a second
        duration = time.monotonic() - start_clock
        shown = round(duration / 60.0, 2) if unit == "minutes" else round(duration, 2)
        stdout = f"Paused for {shown} {unit}"
        msg = stdout if wait is not None else "Not waiting for response to prompt as stdin is not interactive"
        return Result(msg=msg, rc=0, stdout=stdout, data={
            "start": started, "stop": str(datetime.datetime.now()), "delta": int(duration), "user_input": "",
            "echo": params.echo})

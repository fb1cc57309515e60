"""The verify tasks run on the exported image's own boot: never resumed from, nor checkpointed into, the build's
cache layers (a resumed build once reported its verify task `cached` and skipped it)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from engine.build.runner import BuildState, Cleanup, RunOptions
from engine.build.task_cache import Resumed
from engine.console.events import EventBus
from engine.errors import Position
from engine.recipe.model import Build, BuildInfo, Origin, Recipe, Source, SshSettings, Task
from engine.registry import load_plugins
from modules.platforms.qemu.steps import RunVerify


@dataclass
class ResumedCache:
    """A platform's cache that resumed after the build's first two tasks."""

    resumed: Resumed | None = Resumed(2, (30.0, 40.0), {})
    checkpoints: list[int] = field(default_factory=list)

    async def after_task(self, index, play, seconds) -> None:
        self.checkpoints.append(index)


def test_the_verify_tasks_run_whatever_the_build_resumed():
    load_plugins()
    check = Task(Position("r.yml", 9, 5), "verify[0]", Origin(Path(".")), name="the page is served",
                 module="debug", args={"msg": "checked"})
    events: list[dict] = []
    recipe = Recipe("r", Path("r.yml"), "d", verify=(check,))
    build = Build(info=BuildInfo(id="1", source="vm", recipe="r", timestamp=0),
                  source=Source("vm", "qemu", None, {}, SshSettings()))
    state = BuildState(recipe, build, RunOptions(), EventBus(sinks=[events.append]).bind(build="r-vm"))
    state.connection = object()
    state.task_cache = cache = ResumedCache()
    asyncio.run(RunVerify().run(state, Cleanup(state.events)))
    assert [(e["event"], e["task"]) for e in events if e["event"].startswith("task.")] == \
        [("task.start", "the page is served"), ("task.end", "the page is served")]
    assert cache.checkpoints == []

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.build.runner import BuildState, OnError, RunOptions, run_steps
from engine.console.events import EventBus
from engine.errors import BuildError
from engine.recipe.model import Build, BuildInfo, Recipe, Source, SshSettings


@dataclass
class Recorded:
    name: str
    log: list
    fail: bool = False
    hang: bool = False

    async def run(self, state, cleanup):
        async def release():
            self.log.append(f"release {self.name}")
        cleanup.push(self.name, release)
        self.log.append(f"run {self.name}")
        if self.fail:
            raise BuildError(f"{self.name} failed")
        if self.hang:
            await asyncio.sleep(3600)


def state(on_error=OnError.CLEANUP):
    events = []
    bus = EventBus(sinks=[events.append])
    info = BuildInfo(id="1", source="s", recipe="r", timestamp=0)
    build = Build(info=info, source=Source("s", "ssh", None, {}, SshSettings()))
    return BuildState(Recipe("r", Path("r.yml"), "d"), build, RunOptions(on_error=on_error),
                      bus.bind(build="r-s")), events


def test_cleanups_run_in_reverse_order_on_success():
    log = []
    st, events = state()
    outcome = asyncio.run(run_steps(st, [Recorded("a", log), Recorded("b", log), Recorded("c", log)]))
    assert outcome.status == "succeeded"
    assert log == ["run a", "run b", "run c", "release c", "release b", "release a"]


def test_cleanups_run_in_reverse_order_on_failure_and_later_steps_do_not_run():
    log = []
    st, events = state()
    outcome = asyncio.run(run_steps(st, [Recorded("a", log), Recorded("b", log, fail=True), Recorded("c", log)]))
    assert outcome.status == "failed" and "b failed" in outcome.error
    assert log == ["run a", "run b", "release b", "release a"]
    assert [e["what"] for e in events if e["event"] == "cleanup"] == ["b", "a"]


def test_cleanups_run_when_cancelled():
    log = []
    st, _ = state()

    async def cancel_soon():
        task = asyncio.ensure_future(run_steps(st, [Recorded("a", log), Recorded("b", log, hang=True)]))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())
    assert log == ["run a", "run b", "release b", "release a"]


def test_abort_leaves_everything_and_says_what():
    log = []
    st, events = state(OnError.ABORT)
    outcome = asyncio.run(run_steps(st, [Recorded("vm", log), Recorded("task", log, fail=True)]))
    assert log == ["run vm", "run task"]
    assert outcome.left_behind == ["vm", "task"]
    assert any("left in place" in e.get("msg", "") for e in events if e["event"] == "warning")


def test_a_failing_cleanup_does_not_stop_the_others():
    log = []

    @dataclass
    class BadCleanup:
        name: str = "bad"

        async def run(self, state, cleanup):
            async def release():
                raise RuntimeError("boom")
            cleanup.push("bad", release)

    st, events = state()
    outcome = asyncio.run(run_steps(st, [Recorded("a", log), BadCleanup()]))
    assert outcome.status == "succeeded"
    assert log[-1] == "release a"
    assert any("cleanup of bad failed: boom" in e.get("msg", "") for e in events)

"""Run every build of one or more recipes concurrently; one failing build does not stop the others
(unless fail_fast), and --parallel caps how many run at once."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from engine.build.runner import BuildOutcome, BuildState, RunOptions, run_steps
from engine.build.steps import ClaimOutput
from engine.console.events import EventBus
from engine.recipe.model import Build, Recipe
from engine.registry import PLATFORMS


@dataclass
class Runs:
    """The builds of one `recipe run` and what each still has to release (for a second Ctrl-C)."""

    states: list[BuildState] = field(default_factory=list)

    def still_to_release(self) -> dict[str, list[str]]:
        return {s.build.info.name: list(s.cleanup.pending) for s in self.states
                if s.cleanup is not None and s.cleanup.pending}


async def run_build(recipe: Recipe, build: Build, options: RunOptions, bus: EventBus,
                    runs: Runs | None = None) -> BuildOutcome:
    platform_class = PLATFORMS.get(build.source.platform)
    assert platform_class is not None, "the schema admits registered platforms only"
    events = bus.bind(build=build.info.name)
    state = BuildState(recipe=recipe, build=build, options=options, events=events)
    if runs is not None:
        runs.states.append(state)
    steps = [ClaimOutput(), *platform_class().steps(recipe, build)]
    return await run_steps(state, steps)


async def run_recipes(recipes: list[Recipe], options: RunOptions, bus: EventBus, parallel: int = 0,
                      fail_fast: bool = False, runs: Runs | None = None) -> list[BuildOutcome]:
    jobs = [(recipe, build) for recipe in recipes for build in recipe.builds]
    slots = asyncio.Semaphore(parallel or max(1, len(jobs)))
    for recipe in recipes:
        bus.emit("run.start", recipe=recipe.name, builds=[b.info.name for b in recipe.builds], check=options.check)

    async def when_a_slot_is_free(recipe: Recipe, build: Build) -> BuildOutcome:
        async with slots:
            return await run_build(recipe, build, options, bus, runs)

    tasks = {asyncio.ensure_future(when_a_slot_is_free(r, b)): b.info.name for r, b in jobs}
    try:
        await _watch(tasks, fail_fast, bus)
    except asyncio.CancelledError:            # Ctrl-C: every build stops and releases what it holds
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    outcomes = [t.result() if not t.cancelled() else BuildOutcome(name, "cancelled", "stopped by --fail-fast")
                for t, name in tasks.items()]
    for recipe in recipes:
        names = {b.info.name for b in recipe.builds}
        bus.emit("run.end", recipe=recipe.name, statuses={o.name: o.status for o in outcomes if o.name in names})
    return outcomes


async def _watch(tasks: dict[asyncio.Future, str], fail_fast: bool, bus: EventBus) -> None:
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if not t.cancelled() and t.result().status != "succeeded"]
        if fail_fast and failed and pending:
            bus.emit("warning", msg=f"{tasks[failed[0]]} failed: stopping the other builds (--fail-fast)")
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            return


async def run_recipe(recipe: Recipe, options: RunOptions, bus: EventBus) -> list[BuildOutcome]:
    return await run_recipes([recipe], options, bus)

"""Run every build of a recipe concurrently; one failing build does not stop the others."""
from __future__ import annotations

import asyncio

from engine.events import EventBus
from engine.model import Build, Recipe
from engine.platform import PLATFORMS
from engine.runner import BuildOutcome, BuildState, RunOptions, run_steps


async def run_build(recipe: Recipe, build: Build, options: RunOptions, bus: EventBus) -> BuildOutcome:
    platform_class = PLATFORMS.get(build.source.platform)
    assert platform_class is not None, "the schema admits registered platforms only"
    events = bus.bind(build=build.info.name)
    state = BuildState(recipe=recipe, build=build, options=options, events=events)
    steps = platform_class().steps(recipe, build)
    return await run_steps(state, steps)


async def run_recipe(recipe: Recipe, options: RunOptions, bus: EventBus) -> list[BuildOutcome]:
    bus.emit("run.start", recipe=recipe.name, builds=[b.info.name for b in recipe.builds], check=options.check)
    outcomes = await asyncio.gather(*(run_build(recipe, b, options, bus) for b in recipe.builds))
    bus.emit("run.end", recipe=recipe.name, statuses={o.name: o.status for o in outcomes})
    return list(outcomes)

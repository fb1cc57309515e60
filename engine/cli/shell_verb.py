"""`recipe shell RECIPE --at TASK [-- COMMAND...]`: a shell in the build's machine right after TASK
(engine.build.shell); the machine is discarded when the shell ends."""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.build.runner import RunOptions
from engine.build.shell import choose_build, open_shell, task_count
from engine.console.events import EventBus
from engine.console.view import console_sinks
from engine.local_cache import layers_max_size
from engine.recipe.model import Recipe
from engine.secrets import Redactor

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130


def add_parser(verbs: Any, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser("shell", parents=[common], help="a shell in the build's machine right after one of "
                              "its tasks (resumed from the cache when it can be); discarded on exit",
                              usage="recipe shell [options] RECIPE --at TASK [-- COMMAND...]",
                              epilog="After --, a command to run instead of an interactive shell; its exit code "
                                     "is recipe's.")
    parser.add_argument("recipe", type=Path, help="the recipe file, e.g. web.yml")
    parser.add_argument("--at", required=True, metavar="TASK",
                        help="a top-level task's name (or `role NAME`), or its number from 1")
    parser.add_argument("--source", metavar="SOURCE", help="which source, when the recipe has several")
    parser.add_argument("--no-cache", action="store_true", help="build up to TASK from the base image")
    parser.add_argument("-v", "--verbose", action="store_true", help="show command output")


def run(args: argparse.Namespace, recipe: Recipe, redactor: Redactor, command: tuple[str, ...]) -> int:
    build = choose_build(recipe, args.source)
    tasks = task_count(recipe, args.at)
    options = RunOptions(no_cache=args.no_cache, cache_max_size=layers_max_size(), debug=args.debug)
    with tempfile.TemporaryDirectory(prefix="recipe-shell-logs-") as logs:
        bus = EventBus(redactor=redactor)
        console, close_console = console_sinks(sys.stderr, args.verbose, Path(logs), live=False, redactor=redactor)
        bus.sinks.extend(console)
        try:
            result = asyncio.run(_interruptibly(open_shell(recipe, build, tasks, options, bus, command)))
        finally:
            close_console()
    if result is None:
        return EXIT_INTERRUPTED
    outcome, exit_code = result
    if outcome.status != "succeeded":
        sys.stderr.write(f"error: {redactor.text(outcome.error)}\n")
        return EXIT_FAILED
    return exit_code if exit_code is not None else EXIT_FAILED


async def _interruptibly(work: Any) -> Any:
    """SIGINT or SIGTERM: the build stops and its cleanups run (the machine is discarded); None then."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

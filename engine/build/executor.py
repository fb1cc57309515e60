"""Runs a recipe's tasks and handlers on one connected machine.

Per task: only/except -> when -> loop -> render arguments -> the module's own
schema -> run (with retries/until and a timeout) -> changed_when/failed_when
-> register -> notify. Blocks run their children, then `rescue` on failure
and `always` in any case. Handlers run once each at the end, in the order
they are defined, if a changed task notified them.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import voluptuous as vol

from engine.build.runner import BuildState, OnError
from engine.build.taskmodule import Result, TaskContext
from engine.console import prompt
from engine.errors import BuildError, Position
from engine.recipe.model import Handler, Recipe, Task
from engine.recipe.schema import problems_from
from engine.recipe.template import Scope, TemplateFailure, evaluate, render, render_text
from engine.registry import TASK_MODULES
from engine.remote.connection import Become


class TaskFailed(BuildError):
    """A task failed and nothing rescued it."""


@dataclass
class Play:
    """The mutable part of one build's run: registered values and notified handlers."""

    state: BuildState
    handlers: tuple[Handler, ...] = ()
    host_vars: dict[str, Any] = field(default_factory=dict)
    notified: set[str] = field(default_factory=set)
    pausing: bool = False                    # --debug at a terminal: ask before each task
    total: int = 0                           # the most tasks this play can start (task.start's `total`)
    started: int = 0                         # tasks started so far (task.start's `number`)
    _last_started: Task | None = None        # a loop's iterations share their task's number

    def number(self, task: Task) -> int:
        if task is not self._last_started:
            self.started += 1
            self._last_started = task
        return self.started

    @property
    def recipe(self) -> Recipe:
        return self.state.recipe


def _scope(play: Play, task: Task, block_vars: list[Mapping[str, Any]], loop_item: dict[str, Any] | None) -> Scope:
    variables = play.recipe.variables
    layers = [variables.role_defaults, variables.recipe, task.origin.role_vars, *block_vars, task.vars,
              variables.files, variables.cli, variables.env]
    fixed = {"build": play.state.build.info.as_vars(), "facts": play.state.facts, **play.host_vars,
             **(loop_item or {})}
    return Scope(layers, fixed)


def _fail_at(task: Task, where: Position | None, path: str, exc: TemplateFailure) -> BuildError:
    return TaskFailed(f"{path}: {exc.message}", hint=exc.hint, position=where or task.position)


async def run_tasks(play: Play, tasks: tuple[Task, ...], block_vars: list[Mapping[str, Any]] | None = None) -> None:
    for task in tasks:
        if task.runs_on(play.state.build.source.name):
            await run_task(play, task, block_vars or [])


async def run_task(play: Play, task: Task, block_vars: list[Mapping[str, Any]]) -> None:
    if task.module is None:
        await _run_block(play, task, block_vars)
        return
    if task.module == "meta":          # flush_handlers, the only action: the handlers run now
        await run_handlers(play, play.handlers)
        return
    scope = _scope(play, task, block_vars, None)
    if task.loop is None:
        result = await _run_once(play, task, scope, None, block_vars)
    else:
        result = await _run_loop(play, task, scope, block_vars)
    if task.register:
        play.host_vars[task.register] = result.as_register() if isinstance(result, Result) else result


async def _run_block(play: Play, task: Task, block_vars: list[Mapping[str, Any]]) -> None:
    scope = _scope(play, task, block_vars, None)
    if not _when(task, scope):
        return
    inner = [*block_vars, task.vars]
    try:
        await run_tasks(play, task.block, inner)
    except TaskFailed as failure:
        if not task.rescue:
            raise
        play.host_vars["failed_task"] = {"name": failure.message}
        await run_tasks(play, task.rescue, inner)
    finally:
        if task.always:
            await run_tasks(play, task.always, inner)


async def _run_loop(play: Play, task: Task, scope: Scope, block_vars: list[Mapping[str, Any]]) -> dict[str, Any]:
    try:
        items = render(task.loop, scope)
    except TemplateFailure as exc:
        raise _fail_at(task, task.position, f"{task.path}.loop", exc) from None
    if not isinstance(items, list):
        raise TaskFailed(f"{task.path}.loop: expected a list, got {type(items).__name__}",
                         hint="loop: takes a list or a template that gives one", position=task.position)
    results = []
    for index, item in enumerate(items):
        loop_vars = {task.loop_var: item, "loop": {"index": index + 1, "index0": index, "first": index == 0,
                                                   "last": index == len(items) - 1, "length": len(items)}}
        result = await _run_once(play, task, scope.child(fixed=loop_vars), item, block_vars)
        results.append({**result.as_register(), task.loop_var: item})
    changed = any(r["changed"] for r in results)
    return {"changed": changed, "failed": False, "skipped": all(r["skipped"] for r in results) if results else True,
            "results": results, "msg": ""}


def _when(task: Task, scope: Scope) -> bool:
    try:
        return all(bool(evaluate(condition, scope)) for condition in task.when)
    except TemplateFailure as exc:
        raise _fail_at(task, task.position, f"{task.path}.when", exc) from None


async def _run_once(play: Play, task: Task, scope: Scope, item: Any, block_vars: list[Mapping[str, Any]],
                    handler: bool = False) -> Result:
    events = play.state.events
    label = _label(task, scope, item)
    started = time.monotonic()
    if not _when(task, scope):
        result = Result(skipped=True, msg="condition was false")
    else:
        await _pause_before(play, label)
        events.emit("task.start", task=label, handler=handler, number=play.number(task), total=play.total)
        result = await _attempts(play, task, scope, label)
        while result.failed and not task.ignore_errors and await _retry_asked(play, label, result):
            result = await _attempts(play, task, scope, label)
    play.state.counts[result.status] += 1
    events.emit("task.end", task=label, status=result.status, msg=result.msg, changed=result.changed,
                duration=round(time.monotonic() - started, 3), handler=handler, rc=result.rc,
                diff=result.diff if play.state.options.diff else "", show=task.module == "debug")
    if result.new_vars:
        play.host_vars.update(result.new_vars)
    if result.changed and task.notify:
        play.notified.update(task.notify)
    if result.failed and not task.ignore_errors:
        raise TaskFailed(f"task '{label}' failed: {result.msg}", position=task.position,
                         hint="set ignore_errors: true to carry on regardless")
    return result


async def _pause_before(play: Play, label: str) -> None:
    """--debug at a terminal, like Packer's -debug: the machine is up, look at it before the next task."""
    if not play.pausing:
        return
    answer = await prompt.ask(play.state.events, f"[{play.state.build.info.name}] next task: {label}",
                              {"r": "run it", "c": "run the rest without pausing", "q": "stop this build"}, "r")
    if answer == "c":
        play.pausing = False
    elif answer == "q":
        raise BuildError(f"stopped before task '{label}', as asked", hint="the cleanups ran as on any failure")


async def _retry_asked(play: Play, label: str, result: Result) -> bool:
    """--on-error=ask: retry the failed task, clean up, or abort (keep everything for a look)."""
    state = play.state
    if state.options.on_error is not OnError.ASK:
        return False
    answer = await prompt.ask(state.events, f"[{state.build.info.name}] task '{label}' failed: {result.msg}",
                              {"r": "retry it", "c": "clean up", "a": "abort, keep everything"}, "c")
    state.keep_on_failure = answer == "a"
    return answer == "r"


def _label(task: Task, scope: Scope, item: Any) -> str:
    text = task.label
    try:
        text = str(render(text, scope))
    except TemplateFailure:
        pass
    if item is not None:
        text += f" ({render(task.loop_label, scope) if task.loop_label else item})"
    return text


async def _attempts(play: Play, task: Task, scope: Scope, label: str) -> Result:
    attempts = task.retries + 1   # retries without until: retry until the task does not fail
    result = Result()
    for attempt in range(1, attempts + 1):
        result = _apply_conditions(task, scope, await _execute(play, task, scope))
        if result.skipped or (not result.failed and (task.until is None or _until(task, scope, result))):
            break
        if attempt == attempts:
            if not result.failed:
                result = result.replace(failed=True, msg=f"until: still false after {attempts} attempts")
            break
        play.state.events.emit("task.retry", task=label, attempt=attempt, of=attempts)
        await asyncio.sleep(task.delay)
    return result


def _until(task: Task, scope: Scope, result: Result) -> bool:
    try:
        return bool(evaluate(task.until, scope.child(fixed=_register_view(task, result))))
    except TemplateFailure as exc:
        raise _fail_at(task, task.position, f"{task.path}.until", exc) from None


def _register_view(task: Task, result: Result) -> dict[str, Any]:
    value = result.as_register()
    names = {"result": value}
    if task.register:
        names[task.register] = value
    return names


def _apply_conditions(task: Task, scope: Scope, result: Result) -> Result:
    if result.skipped or (task.changed_when is None and task.failed_when is None):
        return result
    view = scope.child(fixed=_register_view(task, result))
    try:
        if task.changed_when is not None:
            result = result.replace(changed=all(bool(evaluate(c, view)) for c in task.changed_when))
        if task.failed_when is not None:
            failed = any(bool(evaluate(c, view)) for c in task.failed_when)
            result = result.replace(failed=failed, msg=result.msg if failed or not result.failed else "")
    except TemplateFailure as exc:
        raise _fail_at(task, task.position, f"{task.path}.changed_when/failed_when", exc) from None
    return result


async def _execute(play: Play, task: Task, scope: Scope) -> Result:
    module_class = TASK_MODULES.get(task.module or "")
    if module_class is None:  # the schema catches this; kept for modules removed at run time
        raise TaskFailed(f"unknown module {task.module!r}", position=task.position)
    where = task.args_position or task.position
    try:
        rendered = render(task.args, scope)
    except TemplateFailure as exc:
        raise _fail_at(task, where, f"{task.path}.{task.module}", exc) from None
    try:
        params = module_class.params(rendered)
    except vol.Invalid as exc:
        problem = problems_from(exc, task.args, prefix=())[0]
        raise TaskFailed(f"{task.path}.{task.module}.{problem.path}: {problem.message} (after rendering)",
                         hint=problem.hint, position=problem.position or where) from None
    ctx = _context(play, task, scope)
    try:
        return await module_class().run(params, ctx)
    except TemplateFailure as exc:
        raise _fail_at(task, where, f"{task.path}.{task.module}", exc) from None
    except TaskFailed:
        raise
    except BuildError as exc:   # e.g. the connection dropped: the task failed, so retries and ignore_errors apply
        return Result(failed=True, msg=str(exc))


def _context(play: Play, task: Task, scope: Scope) -> TaskContext:
    state = play.state
    become = task.become if task.become is not None else play.recipe.become
    check = state.options.check if task.check_mode is None else task.check_mode

    def find_file(src: str, kind: str) -> Path:
        return find_local_file(task, src, kind)

    def output(stream: str, line: str) -> None:
        state.events.emit("task.output", task=task.label, stream=stream, line=line)

    if state.connection is None:
        raise BuildError("no connection to run tasks on")
    return TaskContext(connection=state.connection, check=check,
                       become=Become(task.become_user or "root") if become else None,
                       find_file=find_file, render_text=lambda text: render_text(text, scope),
                       output=output, timeout=task.timeout, diff=state.options.diff)


def find_local_file(task: Task, src: str, kind: str) -> Path:
    candidate = Path(src)
    if candidate.is_absolute():
        if candidate.is_file():
            return candidate
        searched = [candidate.parent]
    else:
        searched = task.origin.search_dirs(kind)
        for directory in searched:
            if (directory / src).is_file():
                return directory / src
    raise TaskFailed(f"{task.path}: {kind[:-1]} {src!r} not found",
                     hint="looked in " + ", ".join(str(d) for d in searched), position=task.args_position or task.position)


async def run_handlers(play: Play, handlers: tuple[Handler, ...]) -> None:
    for handler in handlers:
        if not play.notified.intersection(handler.names):
            continue
        if not handler.task.runs_on(play.state.build.source.name):
            continue
        scope = _scope(play, handler.task, [], None)
        await _run_once(play, handler.task, scope, None, [], handler=True)
    play.notified.clear()


def count_tasks(tasks: tuple[Task, ...], source: str) -> int:
    """The most tasks that can start on this source: leaves of blocks (rescue and always included), a loop
    counting as one; flush_handlers counts as none."""
    count = 0
    for task in tasks:
        if not task.runs_on(source):
            continue
        if task.module is None:
            count += count_tasks(task.block + task.rescue + task.always, source)
        elif task.module != "meta":
            count += 1
    return count


async def provision(state: BuildState, tasks: tuple[Task, ...], handlers: tuple[Handler, ...]) -> Play:
    source = state.build.source.name
    total = count_tasks(tasks, source) + count_tasks(tuple(h.task for h in handlers), source)
    play = Play(state, handlers, total=total, pausing=state.options.pause)
    await run_tasks(play, tasks)
    await run_handlers(play, handlers)
    return play

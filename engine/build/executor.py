"""Runs a recipe's tasks and handlers on one connected machine, as Ansible runs a play against one host.

Per task: only/except and tags -> loop items -> per item: when -> render arguments -> the module's own schema
-> run (with retries/until and a timeout) -> changed_when/failed_when -> register -> notify. Whatever goes
wrong inside a task (an undefined variable, a bad argument, a module failing) fails the task, so that
ignore_errors and rescue apply, as in Ansible. Blocks run their tasks, then `rescue` on failure and `always`
in any case. Handlers run once each, in the order they are defined, when notified, at flush_handlers and at
the end.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import voluptuous as vol

from engine.build.dynamic_include import load_include
from engine.build.loops import item_result, item_vars, loop_items, loop_names, loop_result
from engine.build.play import Play, TagFilter
from engine.build.play_state import restore
from engine.build.task_cache import TaskCache
from engine.build.runner import BuildState, OnError
from engine.build.taskmodule import Result, Subtask, TaskContext, TaskModule
from engine.console import prompt
from engine.errors import BuildError, Position
from engine.recipe.foreign import foreign_hint
from engine.recipe.model import Handler, Task, count_leaves
from engine.recipe.schema import boolean, problems_from
from engine.recipe.template import Scope, TemplateFailure, condition, evaluate, render, render_text
from engine.registry import TASK_MODULES
from engine.remote.connection import Become, Connection
from engine.remote.local import LocalConnection

NO_LOG_MSG = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
LOCALHOST = ("localhost", "127.0.0.1", "::1")


class TaskFailed(BuildError):
    """A task failed and nothing rescued it."""

    def __init__(self, message: str, hint: str = "", position: Position | None = None, task: str = "",
                 result: Mapping[str, Any] | None = None, action: str = ""):
        super().__init__(message, hint=hint, position=position)
        self.task = task
        self.action = action            # the failed task's module, for ansible_failed_task.action
        self.result = dict(result or {})


@dataclass(frozen=True)
class Frame:
    """What the blocks around a task give it at run time: their vars, and an include's loop values."""

    vars: tuple[Mapping[str, Any], ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def inside(self, task: Task, fixed: Mapping[str, Any] | None = None) -> "Frame":
        return Frame((*self.vars, task.vars), {**self.fixed, **(fixed or {})})


@dataclass(frozen=True)
class Failure:
    """Why a task failed before its module could say: where, and what Ansible would report."""

    message: str
    position: Position
    hint: str = ""


def _scope(play: Play, task: Task, frame: Frame) -> Scope:
    return play.scope(task, list(frame.vars), frame.fixed)


async def run_tasks(play: Play, tasks: tuple[Task, ...], frame: Frame = Frame()) -> None:
    for task in tasks:
        await run_task(play, task, frame)


async def run_task(play: Play, task: Task, frame: Frame = Frame()) -> None:
    if not task.runs_on(play.host):
        return
    if task.module is None and not task.include:
        await _run_block(play, task, frame)
        return
    if not play.in_handlers and not play.tags.selects(task.tags):   # a notified handler runs whatever the tags
        return
    if task.include or task.module == "include_tasks":
        await _run_include(play, task, frame)
    elif task.module == "meta":
        await _meta(play, task, frame)
    else:
        await _run_module_task(play, task, frame)


# -- blocks and includes --------------------------------------------------------

async def _run_block(play: Play, task: Task, frame: Frame) -> None:
    inner = frame.inside(task)
    unrescued: TaskFailed | None = None
    try:
        await _block_and_rescue(play, task, inner)
    except TaskFailed as failure:
        unrescued = failure
    if task.always:
        play.errors_cleared = False
        await run_tasks(play, task.always, inner)
        if play.errors_cleared:      # meta: clear_host_errors in always: the host carries on, as in Ansible
            unrescued = None
    if unrescued is not None:
        raise unrescued


async def _block_and_rescue(play: Play, task: Task, inner: Frame) -> None:
    try:
        await run_tasks(play, task.block, inner)
    except TaskFailed as failure:
        if not task.rescue:
            raise
        failed = {"name": failure.task, **failure.result}
        play.host_vars.update(failed_task=failed, ansible_failed_result=failure.result,
                              ansible_failed_task={"name": failure.task, "action": failure.action})
        await run_tasks(play, task.rescue, inner)


async def _run_include(play: Play, task: Task, frame: Frame) -> None:
    """An include_tasks or include_role: its condition checked once (per item of its loop), then its tasks.

    Read when the recipe loaded, the include is a block already; with a templated file name
    (include_tasks: "{{ ansible_os_family }}.yml") the file is read now, with the values of the moment."""
    scope = _scope(play, task, frame)
    if task.loop is None:
        runs = [({}, scope)]
    else:
        items, failure = _items(play, task, scope)
        if failure is not None:
            _fail_include(play, task, scope, failure, time.monotonic())
            return
        runs = [(values, scope.child(fixed=values)) for values in (item_vars(task, items, i) for i in range(len(items)))]
    for values, item_scope in runs:
        if not await _included(play, task, item_scope):
            continue
        block = task if task.include else _included_file(play, task, item_scope)
        if block is not None and task.role_choice:
            block = _chosen_role(play, task, item_scope)
        if block is not None:
            if task.include == "include_role":
                play.included_roles.update(_role_dirs(block))
            await _run_block(play, block, Frame(frame.vars, {**frame.fixed, **values}))


async def _included(play: Play, task: Task, scope: Scope) -> bool:
    """The include's condition; a false one shows the include as skipped, as Ansible does."""
    started = time.monotonic()
    skipped = _when(task, scope)
    if isinstance(skipped, Failure):
        _fail_include(play, task, scope, skipped, started)
        return False
    if skipped is not None:
        _report(play, task, task.label, skipped, started)
        return False
    return True


def _fail_include(play: Play, task: Task, scope: Scope, failure: Failure, started: float) -> None:
    _report(play, task, task.label, _failed(failure), started)
    _raise_unless_ignored(play, task, scope, _failed(failure), failure.position, task.label)


def _included_file(play: Play, task: Task, scope: Scope) -> Task | None:
    started = time.monotonic()
    try:
        return load_include(task, render(task.args, scope))
    except TemplateFailure as exc:
        failure = Failure(f"{task.path}.include_tasks: {exc.message}", task.args_position or task.position, exc.hint)
    except BuildError as exc:
        failure = Failure(exc.message, exc.position or task.position, exc.hint)
    _fail_include(play, task, scope, failure, started)
    return None


def _role_dirs(task: Task) -> set[Path]:
    """The roles a block runs (an include_role's: the role and its dependencies), by folder."""
    own = {task.origin.role_dir} if task.origin.role_dir is not None else set()
    return own.union(*(_role_dirs(child) for child in task.block))


def _chosen_role(play: Play, task: Task, scope: Scope) -> Task | None:
    """The include with only the role its templated name renders to (the loader read each its loop names)."""
    started = time.monotonic()
    try:
        name = render(task.role_choice, scope)
    except TemplateFailure as exc:
        _fail_include(play, task, scope, Failure(f"{task.path}.include_role: {exc.message}", task.position,
                                                 exc.hint), started)
        return None
    block = _choose(task, str(name))
    if block is None:
        _fail_include(play, task, scope, Failure(
            f"{task.path}.include_role: the role name rendered to {name!r}, not one its loop names",
            task.position, "roles are read when the recipe is loaded, from the names in the include's loop"), started)
    return block


def _choose(task: Task, name: str) -> Task | None:
    """task with only the blocks marked for the role `name` (inside the block an `apply:` makes, if any)."""
    kept: list[Task] = []
    for child in task.block:
        if child.role_choice is None:
            inner = _choose(child, name)
            kept += [inner] if inner is not None else []
        elif child.role_choice == name:
            kept.append(child)
    return replace(task, block=tuple(kept), role_choice=None) if kept else None


class EndPlay(Exception):
    """meta: end_play / end_host: the rest of the tasks do not run, and the build goes on as done."""


async def _meta(play: Play, task: Task, frame: Frame) -> None:
    """meta: flush_handlers runs the notified handlers now; end_play ends the run; the rest change nothing in a
    build of one host."""
    action = task.args.get("action") if isinstance(task.args, dict) else str(task.args)
    scope = _scope(play, task, frame)
    unmet = _when(task, scope)
    if isinstance(unmet, Result):      # a meta task with a false `when` is skipped, as Ansible reports it
        _report(play, task, _label(task, scope, None), unmet, time.monotonic(), scope)
        return
    if action == "flush_handlers":
        await run_handlers(play, play.handlers)
    elif action in ("end_play", "end_host", "end_batch"):
        raise EndPlay(action)
    elif action == "clear_facts":
        play.ansible_facts.clear()
    elif action == "clear_host_errors":
        play.errors_cleared = True


# -- a module task ----------------------------------------------------------------

async def _run_module_task(play: Play, task: Task, frame: Frame) -> None:
    scope = _scope(play, task, frame)
    if task.loop is None:
        result, where = await _run_item(play, task, scope, None)
        value = _registered(result)
        failed = result.failed
    else:
        value, where = await _run_loop(play, task, scope, lambda: _scope(play, task, frame))
        failed = bool(value.get("failed"))
    if task.background and not failed:
        value = play.jobs.start(value)
    if task.register:
        play.host_vars[task.register] = value
    if failed:
        _raise_unless_ignored(play, task, scope, value, where, task.label)


def _raise_unless_ignored(play: Play, task: Task, scope: Scope, value: Any, where: Position, label: str) -> None:
    if _flag(task.ignore_errors, scope, False):
        return
    result = value.as_register() if isinstance(value, Result) else value
    raise TaskFailed(f"task '{label}' failed: {result.get('msg', '')}", position=where,
                     hint="set ignore_errors: true to carry on regardless", task=label, result=result,
                     action=task.module or "")


def _registered(result: Result) -> dict[str, Any]:
    value = result.as_register()
    if result.skipped and "skip_reason" in result.data:   # a false `when`: what Ansible registers, nothing else
        return {key: value[key] for key in ("changed", "skipped", "skip_reason", "false_condition") if key in value}
    return value


async def _run_loop(play: Play, task: Task, scope: Scope,
                    fresh_scope: Callable[[], Scope]) -> tuple[dict[str, Any], Position]:
    started = time.monotonic()
    items, failure = _items(play, task, scope)
    if failure is not None and isinstance(skipped := _when(task, scope), Result):
        # a false condition that does not need the loop's item skips the task, as Ansible checks it first
        _report(play, task, task.label, skipped, started)
        return _registered(skipped), task.position
    if failure is None:
        try:
            task = loop_names(task, scope)
        except TemplateFailure as exc:
            failure = Failure(f"{task.path}.loop_control: {exc.message}", task.position, exc.hint)
    if failure is not None:
        _report(play, task, task.label, _failed(failure), started)
        return {**_failed(failure).as_register()}, failure.position
    if not items:
        value = loop_result([])
        _report(play, task, task.label, Result(skipped=True, msg=value["skipped_reason"]), started)
        return value, task.position
    results, where = [], task.position
    pause = _number(task.loop_pause, scope, 0.0)
    for index in range(len(items)):
        if index and pause:
            await asyncio.sleep(pause)
        values = item_vars(task, items, index)
        # each item sees what the ones before it set (set_fact in a loop accumulates, as in Ansible)
        item_scope = (fresh_scope() if index else scope).child(fixed=values)
        result, at = await _run_item(play, task, item_scope, items[index])
        if result.failed:
            where = at
        results.append(item_result(task, values, _registered(result)))
    return loop_result(results), where


def _items(play: Play, task: Task, scope: Scope) -> tuple[list, Failure | None]:
    try:
        return loop_items(task, scope), None
    except TemplateFailure as exc:
        return [], Failure(f"{task.path}.loop: {exc.message}", task.position, exc.hint)


async def _run_item(play: Play, task: Task, scope: Scope, item: Any) -> tuple[Result, Position]:
    """One run of a task (one iteration of its loop): the result, and where to point if it failed."""
    label = _label(task, scope, item)
    started = time.monotonic()
    skipped = _when(task, scope)
    if isinstance(skipped, Failure):
        result, where = _failed(skipped), skipped.position
    elif skipped is not None:
        result, where = skipped, task.position
    else:
        await _pause_before(play, label)
        play.state.events.emit("task.start", task=label, handler=play.in_handlers, number=play.number(task),
                               total=play.total)
        result, where = await _attempts(play, task, scope, label)
        while result.failed and not _flag(task.ignore_errors, scope, False) and await _retry_asked(play, label, result):
            result, where = await _attempts(play, task, scope, label)
    _report(play, task, label, result, started, scope)
    if result.new_vars and not result.failed:
        # include_vars' values stay templates, rendered where they are used, as Ansible does; set_fact's
        # were rendered when the task ran
        (play.included_vars if task.module == "include_vars" else play.host_vars).update(result.new_vars)
    if result.facts and not result.failed:
        play.ansible_facts.update(unprefixed(result.facts))
    if "add_group" in result.data and not result.failed:   # group_by
        play.inventory.own_groups.update([result.data["add_group"], *result.data.get("parent_groups", ())])
    if "add_host" in result.data and not result.failed:
        added = result.data["add_host"]
        play.inventory.add_host(added["host_name"], added["groups"], added["host_vars"])
    if result.changed and task.notify:
        play.notified.update(_rendered_names(task.notify, scope))
    return result, where


def unprefixed(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Facts a module returns (`ansible_distribution`) as the `ansible_facts` mapping names them (`distribution`),
    as Ansible's clean_facts does; each is then also `ansible_<name>` again."""
    return {key[len("ansible_"):] if key.startswith("ansible_") else key: value for key, value in facts.items()}


def _report(play: Play, task: Task, label: str, result: Result, started: float, scope: Scope | None = None) -> None:
    hidden = scope is not None and _flag(task.no_log, scope, False)
    play.state.counts[result.status] += 1
    play.state.events.emit("task.end", task=label, module=task.module or task.include, status=result.status,
                           msg=NO_LOG_MSG if hidden else result.msg,
                           changed=result.changed, duration=round(time.monotonic() - started, 3),
                           handler=play.in_handlers, rc=result.rc,
                           diff=result.diff if play.state.options.diff and not hidden else "",
                           show=task.module == "debug" and not hidden)


def _failed(failure: Failure) -> Result:
    return Result(failed=True, msg=failure.message)


def _when(task: Task, scope: Scope) -> Result | Failure | None:
    """None when every condition holds; a skipped result naming the false one, as Ansible registers it."""
    for written in task.when:
        try:
            holds = condition(written, scope)
        except TemplateFailure as exc:
            return Failure(f"The conditional check '{written}' failed. The error was: {exc.message}",
                           task.position, exc.hint)
        if not holds:
            return Result(skipped=True, msg="Conditional result was False",
                          data={"skip_reason": "Conditional result was False", "false_condition": written})
    return None


def _rendered_names(names: tuple[str, ...], scope: Scope) -> set[str]:
    """Names rendered; one that renders to a list (notify: "{{ handler_list }}") is each of its items."""
    out = set()
    for name in names:
        try:
            value = render(name, scope)
        except TemplateFailure:
            value = name
        if isinstance(value, list):
            out.update(str(item) for item in value)
        else:
            out.add(str(value))
    return out


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
        try:
            shown = render(task.loop_label, scope) if task.loop_label else item
        except TemplateFailure:
            shown = item
        text += f" ({shown})"
    return text


# -- attempts, conditions, the module call ----------------------------------------

async def _attempts(play: Play, task: Task, scope: Scope, label: str) -> tuple[Result, Position]:
    # Ansible retries only with until (3 attempts unless retries says); recipe also retries a failing task
    # when retries is given without until, as its README documents.
    retries = _number(task.retries, scope, None)
    attempts = int(retries) + 1 if retries is not None else (3 if task.until is not None else 1)
    delay = _number(task.delay, scope, 1.0)
    result, where = Result(), task.position
    for attempt in range(1, attempts + 1):
        result, where = await _execute(play, task, scope)
        result, failure = _apply_conditions(task, scope, result)
        if failure is not None:
            return _failed(failure), failure.position
        if result.skipped or (not result.failed and (task.until is None or _until(task, scope, result))):
            break
        if attempt == attempts:
            if not result.failed:
                result = result.replace(failed=True, msg=f"until: still false after {attempts} attempts")
            break
        play.state.events.emit("task.retry", task=label, attempt=attempt, of=attempts)
        await asyncio.sleep(delay)
    if attempts > 1:
        result = result.replace(data={**result.data, "attempts": attempt})
    return result, where


def _until(task: Task, scope: Scope, result: Result) -> bool:
    try:
        return bool(evaluate(task.until, scope.child(fixed=_register_view(task, result))))
    except TemplateFailure:
        return False


def _register_view(task: Task, result: Result) -> dict[str, Any]:
    value = result.as_register()
    names = {"result": value}
    if task.register:
        names[task.register] = value
    return names


def _apply_conditions(task: Task, scope: Scope, result: Result) -> tuple[Result, Failure | None]:
    if result.skipped or (task.changed_when is None and task.failed_when is None):
        return result, None
    view = scope.child(fixed=_register_view(task, result))
    for keyword, conditions in (("changed_when", task.changed_when), ("failed_when", task.failed_when)):
        if conditions is None:
            continue
        try:
            # Ansible ANDs a list of conditions, for failed_when as for when
            holds = all(condition(c, view) for c in conditions)
        except TemplateFailure as exc:
            # the module's result stays, failed, with the error where the condition's result would be
            message = f"The conditional check '{conditions[0]}' failed. The error was: {exc.message}"
            return result.replace(failed=True, msg=message, data={**result.data, f"{keyword}_result": message}), None
        if keyword == "changed_when":
            result = result.replace(changed=holds)
        else:
            result = result.replace(failed=holds, msg=result.msg if holds or not result.failed else "",
                                    data={**result.data, "failed_when_result": holds})
    return result, None


def _without_omitted(value: Any, omit: str) -> Any:
    """Arguments whose value is `omit` are left out, as if never written."""
    if isinstance(value, dict):
        return {k: _without_omitted(v, omit) for k, v in value.items() if v != omit}
    if isinstance(value, list):
        return [_without_omitted(v, omit) for v in value if v != omit]
    return value


def _render_args(task: Task, scope: Scope, raw: tuple[str, ...], omit: str) -> Any:
    if isinstance(task.args, dict) and raw:
        rendered = {k: (v if k in raw else render(v, scope)) for k, v in task.args.items()}
    else:
        rendered = render(task.args, scope)
    return _without_omitted(rendered, omit)


async def _execute(play: Play, task: Task, scope: Scope) -> tuple[Result, Position]:
    module_class = TASK_MODULES.get(task.module or "")
    where = task.args_position or task.position
    if module_class is None:  # an Ansible module recipe does not run: validate noted it
        return Result(failed=True, msg=foreign_hint(str(task.module))), task.position
    try:
        rendered = _render_args(task, scope, module_class.raw_options, play.omit)
    except TemplateFailure as exc:
        return Result(failed=True, msg=f"{task.path}.{task.module}: {exc.message}"), where
    try:
        params = module_class.params(rendered)
    except vol.Invalid as exc:
        problem = problems_from(exc, task.args, prefix=())[0]   # the module's own words, as Ansible registers them
        return Result(failed=True, msg=_missing_words(module_class, exc) or problem.message), \
            problem.position or where
    try:
        ctx = _context(play, task, scope)
        result = await module_class().run(params, ctx)
        if ctx.diff and result.diff and "diff" not in result.data:   # Ansible registers the diff in diff mode
            result = result.replace(data={**result.data, "diff": [{"prepared": result.diff}]})
        return result, task.position
    except TemplateFailure as exc:
        return Result(failed=True, msg=f"{task.path}.{task.module}: {exc.message}"), where
    except TaskFailed as exc:
        return Result(failed=True, msg=exc.message), exc.position or where
    except BuildError as exc:   # e.g. the connection dropped: the task failed, so retries and ignore_errors apply
        return Result(failed=True, msg=str(exc)), where


def _missing_words(module_class: type[TaskModule], exc: vol.Invalid) -> str:
    """Ansible's message when required options are left out ('' when something else is wrong): a task that
    leaves them out on purpose, under ignore_errors, asserts on it."""
    errors = exc.errors if isinstance(exc, vol.MultipleInvalid) else [exc]
    missing = [str(e.path[-1]) for e in errors if isinstance(e, vol.RequiredFieldInvalid) and len(e.path) == 1]
    return module_class.missing_words.format(", ".join(sorted(missing))) if missing else ""


def _flag(value: Any, scope: Scope, default: Any) -> Any:
    """A keyword's value, rendered when it is a template: ignore_errors: "{{ ansible_check_mode }}"."""
    if value is None:
        return default
    rendered = render(value, scope) if isinstance(value, str) else value
    try:
        return boolean(rendered)
    except vol.Invalid:
        return bool(rendered)


def _number(value: Any, scope: Scope, default: Any) -> Any:
    if value is None:
        return default
    rendered = render(value, scope) if isinstance(value, str) else value
    try:
        return float(rendered)
    except (TypeError, ValueError):
        return default


def _environment(task: Task, scope: Scope) -> dict[str, str]:
    merged: dict[str, str] = {}
    for layer in task.environment:
        value = render(layer, scope)
        for mapping in value if isinstance(value, list) else [value]:
            if not isinstance(mapping, dict):
                raise TemplateFailure(f"environment must be a mapping, got {type(mapping).__name__}")
            merged.update({str(k): "" if v is None else str(v) for k, v in mapping.items()})
    return merged


def _become(play: Play, task: Task, scope: Scope) -> Become | None:
    # remote_user is accepted and changes nothing: the source names the login, as an inventory's ansible_user
    # does, and in Ansible ansible_user wins over the remote_user keyword
    user = render(task.become_user, scope) if task.become_user is not None else None
    if _flag(task.become, scope, play.recipe.become):
        return Become(str(user or "root"))
    return None


def _connection(play: Play, task: Task, scope: Scope) -> Connection:
    delegate = render(task.delegate_to, scope) if task.delegate_to is not None else None
    if delegate in LOCALHOST:
        return play.local
    if delegate not in (None, play.host):
        raise TemplateFailure(f"delegate_to {delegate!r}: a build has only its machine and this host",
                              hint="delegate_to: localhost runs a task on the build host")
    if play.state.connection is None:
        raise BuildError("no connection to run tasks on")
    return play.state.connection


def _context(play: Play, task: Task, scope: Scope) -> TaskContext:
    state = play.state
    check = _flag(task.check_mode, scope, state.options.check)
    hidden = _flag(task.no_log, scope, False)

    def find_file(src: str, kind: str) -> Path:
        return find_local_file(task, src, kind)

    def output(stream: str, line: str) -> None:
        state.events.emit("task.output", task=task.label, stream=stream, line=line)

    def subtask_started(name: str) -> None:
        state.events.emit("task.start", task=f"{task.label} > {name}", parent=task.label, handler=play.in_handlers)

    def subtask_ended(step: Subtask) -> None:
        state.counts[step.status] += 1
        state.events.emit("task.end", task=f"{task.label} > {step.name}", parent=task.label, module=task.module,
                          status=step.status, msg=NO_LOG_MSG if hidden else step.msg, where=step.where,
                          ignored=step.ignored, changed=step.status == "changed", duration=round(step.duration, 3),
                          handler=play.in_handlers, rc=None, diff="", show=False)

    return TaskContext(connection=_connection(play, task, scope), check=bool(check), become=_become(play, task, scope),
                       find_file=find_file, render_text=lambda text, **options: render_text(text, scope, options),
                       evaluate=lambda expression: evaluate(expression, scope),
                       facts=play.ansible_facts, environment=_environment(task, scope), async_job=play.jobs.status,
                       inventory=play.inventory,
                       output=None if hidden else output, timeout=task.timeout,
                       diff=bool(_flag(task.diff, scope, state.options.diff)),
                       subtask_started=subtask_started, subtask_ended=subtask_ended, work_dir=state.work_dir)


def find_local_file(task: Task, src: str, kind: str) -> Path:
    candidate = Path(src)
    if candidate.is_absolute():
        if candidate.is_file() or (kind == "files" and candidate.is_dir()):
            return candidate
        searched = [candidate.parent]
    else:
        searched = task.origin.search_dirs(kind, task.position.file)
        for directory in searched:   # include_vars' dir: and copy's src: take a directory as well as a file
            if (directory / src).is_file() or (kind in ("vars", "files") and (directory / src).is_dir()):
                return directory / src
    raise TaskFailed(f"{task.path}: {kind[:-1]} {src!r} not found",
                     hint="looked in " + ", ".join(str(d) for d in searched), position=task.args_position or task.position)


# -- handlers and the whole play ----------------------------------------------------

async def run_handlers(play: Play, handlers: tuple[Handler, ...]) -> None:
    """One pass over the handlers in the order they are defined, as Ansible flushes them: each runs if it is
    notified when the pass reaches it, so a handler notifying a later one runs it in this pass; one notifying
    itself or an earlier one leaves that for the next flush (none after the last: Ansible's loops end)."""
    play.in_handlers = True
    try:
        for index, handler in enumerate(handlers):
            _take_notifications(play, handlers)
            if index in play.pending:
                play.pending.discard(index)
                await run_task(play, handler.task)
    finally:
        play.in_handlers = False


def _take_notifications(play: Play, handlers: tuple[Handler, ...]) -> None:
    if play.notified:
        play.pending.update(_notified(play, handlers, play.notified))
        play.notified = set()


def _notified(play: Play, handlers: tuple[Handler, ...], notified: set[str]) -> set[int]:
    """The handlers (by index) notified, chosen as Ansible chooses: for each notification the first handler of
    that name (`name`, or `role : name` for a role's) in the latest handler block that has one, and every
    handler listening to it (one per name, looked for in the same order)."""
    chosen: set[int] = set()
    latest_first = sorted((i for i, h in enumerate(handlers)
                           if not h.included or h.task.origin.role_dir in play.included_roles),
                          key=lambda i: (-handlers[i].group, i))
    for notification in notified:
        named = next((i for i in latest_first if notification in _handler_names(play, handlers[i])), None)
        chosen.update([named] if named is not None else [])
        seen: set[str] = set()
        for i in latest_first:
            name = handlers[i].task.name
            if notification in _with_role(handlers[i].task, handlers[i].listen) and not (name and name in seen):
                seen.add(name or "")
                chosen.add(i)
    return chosen


def _handler_names(play: Play, handler: Handler) -> set[str]:
    """The names that notify a handler: its name, which may be a template of the play's variables."""
    name = handler.task.name
    return _with_role(handler.task, _rendered_names((name,), play.scope(handler.task, []))) if name else set()


def _with_role(task: Task, names: Iterable[str]) -> set[str]:
    """Names as a role's handler also answers to them: `role : name` and `ns.col.role : name`."""
    names = set(names)
    role, fqcn = task.origin.role, task.origin.role_fqcn
    return names | {f"{prefix} : {name}" for prefix in {role, fqcn} if prefix for name in names}


async def provision(state: BuildState, tasks: tuple[Task, ...], handlers: tuple[Handler, ...],
                    cache: TaskCache | None = None) -> Play:
    """Run the tasks, then the handlers they notified; with a cache (the recipe's tasks on a platform that keeps
    layers), resume where it says and checkpoint after each top-level task."""
    source = state.build.source.name
    total = count_leaves(tasks, source) + count_leaves(tuple(h.task for h in handlers), source)
    play = Play(state, handlers, total=total, pausing=state.options.pause,
                tags=TagFilter(state.options.tags, state.options.skip_tags),
                ansible_facts=dict(state.ansible_facts) if state.recipe.gather_facts else {},
                local=LocalConnection())
    try:
        await _run_top_level(play, tasks, cache)
    except EndPlay:
        return play
    except TaskFailed:
        if state.recipe.force_handlers or state.options.force_handlers:   # what was notified still runs
            await _final_flushes(play, handlers)
        raise
    await _final_flushes(play, handlers)
    return play


async def _run_top_level(play: Play, tasks: tuple[Task, ...], cache: TaskCache | None) -> None:
    """The recipe's tasks; with a cache, those whose effect the machine already has are reported, not run,
    and the machine is checkpointed after each of the others."""
    resumed = cache.resumed if cache else None
    if resumed:
        restore(play, resumed.play_state)
        for task, seconds in zip(tasks, resumed.seconds):
            play.state.counts["cached"] += 1
            play.state.events.emit("task.cached", task=task.heading, module=task.module or task.include,
                                   saved=round(seconds, 3))
    for index, task in enumerate(tasks):
        if resumed and index < resumed.tasks:
            continue
        started = time.monotonic()
        await run_task(play, task)
        if cache:
            await cache.after_task(index, play, time.monotonic() - started)


async def _final_flushes(play: Play, handlers: tuple[Handler, ...]) -> None:
    """The play's last flushes: a handler that notified itself or an earlier one runs in the next of them."""
    for _ in range(play.recipe.final_flushes):
        await run_handlers(play, handlers)

"""A task's loop: its items (`loop:` or `with_<lookup>:`) and the variables each iteration sees."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from jinja2.exceptions import TemplateError

from engine.recipe.lookups import run_lookup
from engine.recipe.model import Task
from engine.recipe.template import Scope, TemplateFailure, is_template, render, render_text


def loop_items(task: Task, scope: Scope) -> list:
    """The items of a task's loop; TemplateFailure when they cannot be had, as Ansible fails the task then."""
    terms = render(task.loop, scope)
    if task.lookup:
        def renderer(text: str, extra: Mapping[str, Any]) -> str:
            return render_text(text, scope.child(fixed=extra))
        try:
            return list(run_lookup(task.lookup, terms, scope, renderer=renderer, action=task.module or ""))
        except TemplateError as exc:
            raise TemplateFailure(f"with_{task.lookup}: {exc}") from None
    if not isinstance(terms, list):
        raise TemplateFailure(f"Invalid data passed to 'loop', it requires a list, got this instead: {terms!r}",
                              hint="loop: takes a list or a template that gives one; for a dict use | dict2items")
    return terms


def loop_names(task: Task, scope: Scope) -> Task:
    """The task with its loop_var and index_var rendered (loop_control: {loop_var: "{{ name }}"})."""
    names = {key: str(render(getattr(task, key), scope)) for key in ("loop_var", "index_var")
             if is_template(getattr(task, key))}
    return dataclasses.replace(task, **names) if names else task


def item_vars(task: Task, items: list, index: int) -> dict[str, Any]:
    """What iteration `index` sees: the loop variable, recipe's `loop`, and Ansible's loop_control values."""
    item = items[index]
    values: dict[str, Any] = {
        task.loop_var: item, "ansible_loop_var": task.loop_var,
        "loop": {"index": index + 1, "index0": index, "first": index == 0, "last": index == len(items) - 1,
                 "length": len(items)},
    }
    if task.index_var:
        values[task.index_var] = index
        values["ansible_index_var"] = task.index_var
    if task.extended:
        values["ansible_loop"] = {
            "allitems": items, "index": index + 1, "index0": index, "revindex": len(items) - index,
            "revindex0": len(items) - index - 1, "first": index == 0, "last": index == len(items) - 1,
            "length": len(items), "previtem": items[index - 1] if index else None,
            "nextitem": items[index + 1] if index < len(items) - 1 else None,
        }
        if index == 0:
            del values["ansible_loop"]["previtem"]
        if index == len(items) - 1:
            del values["ansible_loop"]["nextitem"]
    return values


def item_result(task: Task, values: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """One entry of a loop's registered `results`, as Ansible shapes it."""
    entry = {**result, task.loop_var: values[task.loop_var], "ansible_loop_var": task.loop_var}
    if task.index_var:
        entry[task.index_var] = values[task.index_var]
        entry["ansible_index_var"] = task.index_var
    if "ansible_loop" in values:
        entry["ansible_loop"] = values["ansible_loop"]
    return entry


def loop_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    """A loop's registered value: Ansible's `results` with the summary keys over them."""
    if not results:
        return {"changed": False, "skipped": True, "skipped_reason": "No items in the list", "results": []}
    failed = any(r.get("failed") for r in results)
    skipped = all(r.get("skipped") for r in results)
    value: dict[str, Any] = {"changed": any(r.get("changed") for r in results), "results": results,
                             "msg": "One or more items failed" if failed else
                             "All items skipped" if skipped else "All items completed",
                             "skipped": skipped}
    if failed:
        value["failed"] = True
    return value


__all__ = ["loop_names", "item_result", "item_vars", "loop_items", "loop_result"]

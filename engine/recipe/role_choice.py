"""include_role with a templated name, `name: "{{ item }}"` over `loop: [a, b]`: the roles it may name.

recipe reads roles when it loads a recipe (to check them before anything runs), so a role name only known at
run time must come from what is written: the include's own loop, when its items are plain names. Each is
rendered through the name's template; the include then runs the one its rendered name picks.
"""
from __future__ import annotations

from typing import Any

from engine.recipe.template import Scope, TemplateFailure, render

LOOP_KEYS = ("loop", "with_items", "with_list")


def loop_role_names(task: dict[str, Any], name: str) -> list[str] | None:
    """The role names the include's loop items give `name`, in order, once each; None when its loop is not
    a list of plain values or the name needs more than the loop variable."""
    key = next((k for k in LOOP_KEYS if k in task), None)
    items = task.get(key) if key else None
    if not isinstance(items, list) or not items:
        return None
    control = task.get("loop_control")
    loop_var = control.get("loop_var", "item") if isinstance(control, dict) else "item"
    names: list[str] = []
    for item in items:
        if not isinstance(item, (str, int, float)) or (isinstance(item, str) and "{" in item):
            return None
        try:
            rendered = render(name, Scope([{loop_var: item}]))
        except TemplateFailure:
            return None
        if not isinstance(rendered, str) or not rendered:
            return None
        names.append(rendered)
    return list(dict.fromkeys(names))


__all__ = ["loop_role_names"]

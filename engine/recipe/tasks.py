"""From a task's YAML to a Task, with what its block, role or play passes down to it.

Ansible's blocks, imports and roles hand their keywords to every task inside:
a block's `when` is checked again for each of its tasks, its tags add to
theirs, its become and environment apply unless a task sets its own. That
inheritance happens here, once, so the executor only ever looks at a task's
own fields. An include_tasks or include_role is the exception, as in Ansible:
its keywords apply to the include itself (its `when` is checked once), and only
what its `apply:` names reaches the included tasks.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from engine.recipe.foreign import is_foreign_module
from engine.recipe.model import Origin, Task
from engine.recipe.recipe_schema import INCLUDE_MARK, ROLE_CHOICE_MARK, ROLE_MARK, module_arguments, with_lookup
from engine.registry import TASK_MODULES

# Keywords a task takes from the block, role or play around it unless it sets its own.
OVERRIDDEN = ("become", "become_user", "become_method", "remote_user", "no_log", "check_mode", "diff",
              "ignore_errors", "delegate_to")


@dataclass(frozen=True)
class Inherit:
    """What the blocks, role and play around a task pass down to it."""

    when: tuple[Any, ...] = ()
    tags: frozenset[str] = frozenset()
    environment: tuple[Any, ...] = ()
    become: Any = None
    become_user: Any = None
    become_method: Any = None
    remote_user: Any = None
    no_log: Any = None
    check_mode: Any = None
    diff: Any = None
    ignore_errors: Any = None
    delegate_to: Any = None
    notify: tuple[Any, ...] = ()     # a block's notify is its tasks' when they name none
    module_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    def around(self, node: Mapping[str, Any]) -> "Inherit":
        """What a task written as node sees and passes on: these values, with node's own on top."""
        own = {key: node[key] for key in OVERRIDDEN if key in node}
        defaults = dict(self.module_defaults)
        for module, options in (node.get("module_defaults") or {}).items():
            name = TASK_MODULES.canonical(module) or module
            defaults[name] = {**defaults.get(name, {}), **options}
        return dataclasses.replace(
            self, **own, when=self.when + listify(node.get("when")), tags=self.tags | tag_set(node.get("tags")),
            notify=listify(node["notify"]) if node.get("notify") else self.notify,
            environment=self.environment + listify(node.get("environment")),
            module_defaults=MappingProxyType(defaults))


RoleOrigins = Callable[[str], Origin]   # the ROLE_MARK a loader put on a block -> that role's Origin


def listify(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def tag_set(value: Any) -> frozenset[str]:
    """tags: [a, b], tags: a, tags: "a, b" (Ansible splits on commas); numbers are names too."""
    return frozenset(part.strip() for item in listify(value) for part in str(item).split(",") if part.strip())


def _with_defaults(args: Any, defaults: Mapping[str, Any] | None) -> Any:
    """module_defaults: options a task does not set itself, as Ansible fills them in."""
    if not defaults or not isinstance(args, dict):
        return args
    return {**defaults, **args}


def make_task(node: Mapping[str, Any], path: str, origin: Origin, inherit: Inherit = Inherit(),
              role_origins: RoleOrigins | None = None) -> Task:
    if node.get(ROLE_MARK) and role_origins is not None:
        origin = role_origins(node[ROLE_MARK])
    seen = inherit.around(node)
    include = node.get(INCLUDE_MARK)
    # An include keeps its keywords to itself; a block or an import passes them all on.
    passed_on = inherit if include else seen

    def children(key: str) -> tuple[Task, ...]:
        return tuple(make_task(child, f"{path}.{key}[{i}]", origin, passed_on, role_origins)
                     for i, child in enumerate(node.get(key) or []))

    written = next((k for k in node if k in TASK_MODULES or is_foreign_module(k)), None)
    module = TASK_MODULES.canonical(written) or written
    loop_key = next((k for k in node if k == "loop" or with_lookup(k)), None)
    control = node.get("loop_control") or {}
    is_block = module is None and "block" in node
    return Task(
        position=node.pos, path=path, origin=origin, name=node.get("name"), module=module, written=written,
        args=_with_defaults(module_arguments(node, written), seen.module_defaults.get(module)) if written else None,
        args_position=node.value_pos.get(written) if written else None,
        # a plain block's condition is checked by each of its tasks, an include's once, by the include
        when=seen.when if include or not is_block else (),
        loop=node.get(loop_key) if loop_key else None, lookup=with_lookup(loop_key),
        loop_var=control.get("loop_var", "item"), loop_label=control.get("label"),
        index_var=control.get("index_var"), extended=bool(control.get("extended", False)),
        loop_pause=control.get("pause", 0), register=node.get("register"),
        vars=MappingProxyType(dict(node.get("vars") or {})),
        become=seen.become, become_user=seen.become_user, become_method=seen.become_method,
        remote_user=seen.remote_user, environment=seen.environment,
        delegate_to="localhost" if node.get("connection") == "local" else seen.delegate_to,
        no_log=bool(seen.no_log) if isinstance(seen.no_log, bool) or seen.no_log is None else seen.no_log,
        diff=seen.diff, tags=seen.tags, notify=seen.notify,
        changed_when=listify(node["changed_when"]) if "changed_when" in node else None,
        failed_when=listify(node["failed_when"]) if "failed_when" in node else None,
        ignore_errors=seen.ignore_errors if seen.ignore_errors is not None else False,
        only=listify(node.get("only")), except_=listify(node.get("except")),
        retries=node.get("retries"), until=node.get("until"), delay=node.get("delay", 1.0),
        timeout=node.get("timeout", node.get("async")), background="async" in node and node.get("poll") == 0,
        check_mode=seen.check_mode, include=include, role_choice=node.get(ROLE_CHOICE_MARK),
        cache=node.get("cache") is not False,
        block=children("block"), rescue=children("rescue"), always=children("always"),
    )


__all__ = ["Inherit", "RoleOrigins", "listify", "make_task", "tag_set"]

"""What `recipe render` and `recipe inspect` print."""
from __future__ import annotations

import dataclasses
from io import StringIO
from typing import Any

from ruamel.yaml import YAML

from engine.artifacts.export_chain import plan
from engine.recipe.filters import plain
from engine.recipe.model import Build, Recipe, Task
from engine.recipe.template import Scope, TemplateFailure
from engine.registry import PLATFORMS


def _rendered_vars(recipe: Recipe, build_vars: dict[str, Any]) -> dict[str, Any]:
    scope = Scope(recipe.variables.layers(), {"build": build_vars, "facts": {}})
    values = {}
    for name in sorted(recipe.variables.names()):
        try:
            values[name] = scope[name]
        except TemplateFailure as exc:  # may need facts, known only on the machine
            values[name] = f"<rendered at run time: {exc.message}>"
    return values


def _task_summary(task: Task) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": task.label}
    if task.module:
        entry[task.module] = task.args
    for key in ("when", "only", "except_", "notify"):
        value = getattr(task, key)
        if value:
            entry[key.rstrip("_")] = list(value)
    if task.block:
        entry["block"] = [_task_summary(t) for t in task.block]
    return entry


def rendered_document(recipe: Recipe) -> str:
    """The recipe as each build sees it: variables and source settings rendered; tasks render on the machine."""
    doc: dict[str, Any] = {"name": recipe.name, "description": recipe.description, "builds": {}}
    for build in recipe.builds:
        source = build.source
        doc["builds"][source.name] = {
            "build": build.info.as_vars(),
            "platform": source.platform,
            "settings": dataclasses.asdict(source.config) if dataclasses.is_dataclass(source.config) else source.config,
            "ssh": {k: v for k, v in dataclasses.asdict(source.ssh).items() if v is not None},
            "vars": _rendered_vars(recipe, build.info.as_vars()),
            "exports": [{e.kind: dataclasses.asdict(e.config) if dataclasses.is_dataclass(e.config) else e.config}
                        for e in build.exports],
            "tasks": [_task_summary(t) for t in recipe.tasks if t.runs_on(source.name)],
        }
    return _dump(doc)


def _build_exports(build: Build) -> str:
    """What this build exports: a platform with no local disk takes only the exports that read everything."""
    platform = PLATFORMS.get(build.source.platform)
    if platform is None or not platform.produces_image:
        return ""
    if build.exports:
        return "  exports: " + ", ".join(e.kind + ("" if e.position else " (kept by default)") for e in build.exports)
    return "  exports: none"


def describe(recipe: Recipe) -> str:
    lines = [f"recipe {recipe.name}: {recipe.description}".rstrip(": "), f"  file: {recipe.path}",
             f"  digest: sha256:{recipe.digest[:16]}", "sources:"]
    for build in recipe.builds:
        lines.append(f"  {build.source.name:<12} platform={build.source.platform}  user={build.source.ssh.user}"
                     + _build_exports(build))
    lines.append("variables:")
    variables = recipe.variables
    layer_names = ["role default", "recipe", "var file", "--var", "env"]
    for name in sorted(variables.names()):
        origin = [label for label, layer in zip(layer_names, variables.layers()) if name in layer][-1]
        shown = "********" if name in recipe.secrets else repr(next(
            layer[name] for layer in reversed(variables.layers()) if name in layer))
        lines.append(f"  {name} = {shown}  ({origin})")
    lines.append(f"tasks ({len(recipe.tasks)}):")
    for index, task in enumerate(recipe.tasks):
        where = f" only={','.join(task.only)}" if task.only else ""
        lines.append(f"  {index + 1:>3}. {task.label}  [{task.module or 'block'}]{where}  {task.position}")
    lines.append(f"handlers ({len(recipe.handlers)}):")
    lines += [f"       {h.task.label}  [{h.task.module}]" for h in recipe.handlers]
    exports = recipe.builds[0].exports if recipe.builds else ()
    lines.append(f"exports ({len(exports)}, a chain):")
    for link in plan(exports):
        reads = ", ".join(dep.export.kind for dep in link.depends_on) or "the disk"
        keep = "" if link.export.keep_input else ", then removes it (keep_input: false)"
        implicit = "" if link.export.position else "  (no export writes a disk format, so the disk is kept)"
        lines.append(f"  {link.index + 1:>3}. {link.export.kind:<10} reads {reads}{keep}{implicit}")
    return "\n".join(lines) + "\n"


def _dump(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    yaml.width = 4096
    stream = StringIO()
    yaml.dump(plain(data), stream)
    return stream.getvalue()

"""A Template as a RecipeDraft: sources from builders, tasks from provisioners, exports from both.

A Packer source built by two builds becomes two recipe sources (one per
build), since each build runs its own provisioners on it; the tasks of a build
that does not cover every source carry only: [its sources].
"""
from __future__ import annotations

from dataclasses import dataclass

from modules.importers.packer.builders import MappedSource, map_source
from modules.importers.packer.draft import Comment, Part, RecipeDraft
from modules.importers.packer.files import PathMapper
from modules.importers.packer.names import recipe_name, source_name
from modules.importers.packer.post_processors import Chain, map_post_processor
from modules.importers.packer.provisioners import Scope, map_provisioner
from modules.importers.packer.template import Build, Plugin, Template
from modules.importers.packer.variables import map_variables

BOX_PROVIDERS = {"qemu": "libvirt", "virtualbox-iso": "virtualbox", "virtualbox-ovf": "virtualbox",
                 "virtualbox-vm": "virtualbox"}


@dataclass(frozen=True)
class BuildSources:
    """The recipe sources of one build: Packer's names for them, and what they map to."""

    build: Build
    names: dict[str, str]                 # every name Packer's only/except may use -> recipe name
    mapped: tuple[MappedSource, ...]


def _names(builds: tuple[Build, ...]) -> list[dict[str, str]]:
    """Recipe source names per build: a source's own name, or <build>-<name> when several builds share it."""
    shared = {p.label for b in builds for p in b.sources if sum(p.label in [q.label for q in c.sources]
                                                                  for c in builds) > 1}
    taken: set[str] = set()
    found = []
    for index, build in enumerate(builds):
        names: dict[str, str] = {}
        for plugin in build.sources:
            wanted = f"{build.name or f'build{index + 1}'}-{plugin.name}" if plugin.label in shared else plugin.name
            recipe = source_name(wanted, taken)
            for alias in (plugin.label, f"source.{plugin.label}", plugin.name):
                names.setdefault(alias, recipe)
        found.append(names)
    return found


def map_sources(template: Template, paths: PathMapper) -> tuple[list[BuildSources], list[Comment]]:
    result, leftovers = [], []
    for build, names in zip(template.builds, _names(template.builds), strict=True):
        mapped = []
        for plugin in build.sources:
            source = map_source(plugin, names[plugin.label], paths)
            if isinstance(source, Comment):
                leftovers.append(source)
            else:
                mapped.append(source)
        result.append(BuildSources(build, names, tuple(mapped)))
    return result, leftovers


def _tasks(builds: list[BuildSources], paths: PathMapper) -> tuple[list[Part], list[Comment]]:
    everything = tuple(s.name for b in builds for s in b.mapped)
    tasks, comments = [], []
    for build in builds:
        scope = Scope(tuple(s.name for s in build.mapped), everything,
                      {k: v for k, v in build.names.items() if v in everything})
        for plugin in build.build.provisioners:
            parts, left = map_provisioner(plugin, scope, paths)
            tasks += parts
            comments += left
    return tasks, comments


def _providers(plugins: tuple[Plugin, ...]) -> tuple[str, ...]:
    found = []
    for plugin in plugins:
        provider = plugin.settings.get("provider") if plugin.type == "vagrant" else None
        name = str(provider.data) if provider is not None and provider.translated else BOX_PROVIDERS.get(plugin.type)
        if name in ("libvirt", "virtualbox"):
            found.append(name)
    return tuple(dict.fromkeys(found))


def _exports(builds: list[BuildSources], paths: PathMapper) -> tuple[list[Part], list[Comment]]:
    exports: list[Part] = []
    comments: list[Comment] = []
    for build in builds:
        exports += [export for source in build.mapped for export in source.exports]
        chain = Chain(box_providers=_providers(build.build.sources))
        for plugins in build.build.chains:
            for plugin in plugins:
                mapped = map_post_processor(plugin, chain, paths)
                (comments if isinstance(mapped, Comment) else exports).append(mapped)
    chains = sum(len(b.build.chains) for b in builds)
    if chains > 1:
        comments.append(Comment.note(f"Packer ran {chains} post-processor chains, each on the builder's artifact; "
                                     "recipe runs the exports below one after another on each image build"))
    if len({s.name for b in builds for s in b.mapped if s.has_disk}) > 1 and exports:
        comments.append(Comment.note("the exports apply to every image source"))
    return _unique(exports), comments


def _unique(parts: list[Part]) -> list[Part]:
    """One export of each kind, where the first was: a second would write the same files again (a vagrant
    builder and a vagrant post-processor). The later one's options win, and both comments stay."""
    merged: dict[str, Part] = {}
    for part in parts:
        (kind, options), = part.value.items()
        if kind in merged:
            earlier = merged[kind]
            (_, before), = earlier.value.items()
            part = Part({kind: {**before, **options}}, comments=earlier.comments + part.comments)
        merged[kind] = part
    return list(merged.values())


def make_recipe(template: Template, paths: PathMapper) -> RecipeDraft:
    builds, source_comments = map_sources(template, paths)
    tasks, task_comments = _tasks(builds, paths)
    exports, export_comments = _exports(builds, paths)
    variables = map_variables(template)
    named = [b.name for b in template.builds if b.name]
    header = [Comment(f"Imported by `recipe import` from the Packer template {paths.shown(template.path)} (named "
                      "from this file's folder)"),
              *(Comment.not_imported(i.position, i.what, i.why, i.source) for i in template.ignored),
              *source_comments, *task_comments, *export_comments]
    return RecipeDraft(
        name=recipe_name(named[0] if len(named) == 1 else template.stem),
        description=template.description or f"imported from the Packer template {template.path.resolve().name}",
        header=tuple(header), variables=variables.variables, secrets=variables.secrets,
        variable_comments=variables.comments,
        sources=tuple(s.part for b in builds for s in b.mapped), tasks=tuple(tasks), exports=tuple(exports))

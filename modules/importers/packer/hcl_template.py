"""An HCL2 template (its files' blocks) as a Template: variables, locals, sources, builds, translated.

Packer's rules are kept: a build names its sources as source.TYPE.NAME and may
override their settings in a `source` block; provisioners and post-processors
run in the order written; a reference to an undeclared variable, or to a
source that does not exist, makes the template invalid.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from engine.errors import Position, Problem, RecipeError
from modules.importers.packer import hcl_expressions
from modules.importers.packer.expressions import InvalidReference, Untranslatable
from modules.importers.packer.go_templates import NO_FIELDS, builder_fields
from modules.importers.packer.hcl_expressions import HclContext
from modules.importers.packer.hcl_syntax import BLOCK_LABELS, JsonValue, RawAttribute, RawBlock
from modules.importers.packer.names import RecipeNames
from modules.importers.packer.template import Build, Ignored, Plugin, Settings, Value, Variable

IGNORED_BLOCKS = {
    "data": "data sources are not imported: look the value up and give it as a variable",
    "hcp_packer_registry": "recipe publishes to no HCP Packer registry; its manifest export lists the artifacts",
    "error-cleanup-provisioner": "recipe cleans up after a failed build by itself (every temporary thing is "
                                 "released); run a cleanup task in a block's rescue: instead",
}


@dataclass
class Reading:
    """What reading the template found so far: problems are all reported at once, at the end."""

    context: HclContext
    problems: list[Problem] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)

    def value(self, attribute: RawAttribute, fields: Mapping[str, str] = NO_FIELDS) -> Value:
        """The attribute translated; fields: the {{ .Field }}s Packer fills in it (a builder's boot_command)."""
        context = replace(self.context, fields=fields) if fields else self.context
        try:
            if isinstance(attribute.node, JsonValue):
                expr = hcl_expressions.translate_json(attribute.node.value, context)
            else:
                expr = hcl_expressions.translate(attribute.node, context)
        except Untranslatable as exc:
            return Value.untranslated(attribute.source, attribute.position, str(exc))
        except InvalidReference as exc:
            self.problems.append(Problem(attribute.position, exc.message, hint=exc.hint))
            return Value.untranslated(attribute.source, attribute.position, exc.message)
        return Value.of(expr, attribute.source, attribute.position)

    def literal(self, block: RawBlock, name: str, default: Any = None) -> Any:
        """An attribute that must be a plain value (a name, a flag); a template there is a problem."""
        attribute = next((a for a in block.attributes if a.name == name), None)
        if attribute is None:
            return default
        value = self.value(attribute)
        if value.translated and not value.is_literal:
            self.problems.append(Problem(attribute.position, f"{name} must be a plain value, not an expression",
                                         hint="Packer evaluates it before any variable is known"))
            return default
        return value.data if value.translated else default

    def settings(self, block: RawBlock, builder: bool = False) -> Settings:
        """A block's attributes, and its nested blocks as lists of mappings (source_ami_filter { ... }). A
        builder's options may name the fields Packer fills in ({{ .HTTPIP }} in a boot_command)."""
        items = [(a.name, self.value(a, builder_fields(a.name) if builder else NO_FIELDS)) for a in block.attributes]
        for kind in dict.fromkeys(b.type for b in block.blocks):
            nested = block.blocks_of(kind)
            values = [self.settings(b) for b in nested]
            problem = next((v.problem for s in values for _, v in s if v.problem), "")
            items.append((kind, Value([{k: v.data for k, v in s} for s in values], "\n".join(b.source for b in nested),
                                      nested[0].position, problem=problem,
                                      literal=all(v.literal for s in values for _, v in s))))
        return Settings(tuple(items))


def variable_blocks(files: list[RawBlock]) -> tuple[list[RawBlock], list[RawAttribute], list[RawBlock]]:
    """The variable blocks (and the legacy `variables { x = ... }`), the locals' attributes and local blocks."""
    variables = [b for f in files for b in f.blocks_of("variable")]
    variables += [RawBlock("variable", (a.name,), (RawAttribute("default", a.node, a.position, a.source),), (),
                           a.position, a.source) for f in files for v in f.blocks_of("variables") for a in v.attributes]
    local_attributes = [a for f in files for b in f.blocks_of("locals") for a in b.attributes]
    local_blocks = [b for f in files for b in f.blocks_of("local")]
    return variables, local_attributes, local_blocks


def names_of(files: list[RawBlock]) -> tuple[RecipeNames, list[Problem]]:
    variables, local_attributes, local_blocks = variable_blocks(files)
    problems = []
    seen: dict[str, Position] = {}
    declared = [(b.labels[0] if b.labels else "", b.position) for b in variables]
    for name, position in declared:
        if name in seen:
            problems.append(Problem(position, f"variable {name!r} is declared twice",
                                    hint=f"the other is at {seen[name]}"))
        seen[name] = position
    locals_ = [a.name for a in local_attributes] + [b.labels[0] for b in local_blocks if b.labels]
    return RecipeNames.of([n for n, _ in declared], locals_), problems


def read_variables(files: list[RawBlock], reading: Reading) -> list[Variable]:
    variables, local_attributes, local_blocks = variable_blocks(files)
    names = reading.context.names
    found = []
    for block in variables:
        name = block.labels[0]
        default = next((a for a in block.attributes if a.name == "default"), None)
        found.append(Variable(name=names.variables[name], template_name=name, position=block.position,
                              default=reading.value(default) if default else None,
                              sensitive=reading.literal(block, "sensitive", False) is True,
                              description=str(reading.literal(block, "description", "") or "")))
    for attribute in local_attributes:
        found.append(Variable(name=names.locals[attribute.name], template_name=attribute.name,
                              position=attribute.position, default=reading.value(attribute), is_local=True))
    for block in local_blocks:
        name = block.labels[0]
        expression = next((a for a in block.attributes if a.name == "expression"), None)
        found.append(Variable(name=names.locals[name], template_name=name, position=block.position, is_local=True,
                              default=reading.value(expression) if expression else None,
                              sensitive=reading.literal(block, "sensitive", False) is True))
    return found


def variable_types(files: list[RawBlock]) -> dict[str, str]:
    """Each variable's type as written (string, number, list(string)); "" when it has none."""
    types = {}
    for block in variable_blocks(files)[0]:
        attribute = next((a for a in block.attributes if a.name == "type"), None)
        if attribute is None:
            types[block.labels[0]] = ""
        elif isinstance(attribute.node, JsonValue):
            types[block.labels[0]] = str(attribute.node.value)
        else:
            types[block.labels[0]] = attribute.source.split("=", 1)[-1].strip()
    return types


def read_sources(files: list[RawBlock], reading: Reading) -> dict[str, Plugin]:
    sources: dict[str, Plugin] = {}
    for block in (b for f in files for b in f.blocks_of("source")):
        if len(block.labels) != 2:
            reading.problems.append(Problem(block.position, "a source block takes two labels, its type and name",
                                            hint='e.g. source "qemu" "debian" { ... }'))
            continue
        plugin = Plugin(type=block.labels[0], name=block.labels[1], settings=reading.settings(block, builder=True),
                        position=block.position)
        if plugin.label in sources:
            reading.problems.append(Problem(block.position, f"source {plugin.label} is defined twice",
                                            hint=f"the other is at {sources[plugin.label].position}"))
        sources[plugin.label] = plugin
    return sources


def read_builds(files: list[RawBlock], sources: dict[str, Plugin], reading: Reading) -> list[Build]:
    builds = []
    for block in (b for f in files for b in f.blocks_of("build")):
        name = str(reading.literal(block, "name", "") or "")
        builds.append(Build(name=name, sources=tuple(_build_sources(block, sources, reading)),
                            provisioners=tuple(_plugins(block.blocks_of("provisioner"), reading)),
                            chains=tuple(_chains(block, reading)), position=block.position))
        for inner in block.blocks:
            if inner.type in IGNORED_BLOCKS:
                reading.ignored.append(Ignored(_title(inner), IGNORED_BLOCKS[inner.type], inner.source,
                                               inner.position))
    return builds


def build_description(block: RawBlock, reading: Reading) -> str:
    return str(reading.literal(block, "description", "") or "")


def _build_sources(block: RawBlock, sources: dict[str, Plugin], reading: Reading) -> list[Plugin]:
    """The sources a build names in `sources = [...]` and in `source "source.T.N" { ... }` blocks (whose
    settings go over the source's, and whose `name` renames it)."""
    chosen: list[Plugin] = []
    listed = next((a for a in block.attributes if a.name == "sources"), None)
    references = reading.value(listed).data if listed else []
    for reference in references if isinstance(references, list) else []:
        found = _source(str(reference), sources, listed.position if listed else block.position, reading)
        if found:
            chosen.append(found)
    for inner in block.blocks_of("source"):
        found = _source(inner.labels[0] if inner.labels else "", sources, inner.position, reading)
        if found:
            overrides = reading.settings(inner, builder=True)
            renamed = overrides.get("name")
            chosen.append(Plugin(found.type, str(renamed.data) if renamed and renamed.translated else found.name,
                                 found.settings.merged(overrides.without("name")), inner.position))
    if not references and not block.blocks_of("source"):
        reading.problems.append(Problem(block.position, "this build names no source",
                                        hint='add sources = ["source.TYPE.NAME"]'))
    return chosen


def _source(reference: str, sources: dict[str, Plugin], position: Position, reading: Reading) -> Plugin | None:
    label = reference.removeprefix("source.")
    if label in sources:
        return sources[label]
    known = ", ".join(f"source.{s}" for s in sources) or "none"
    reading.problems.append(Problem(position, f"the build names {reference!r}, which no source block defines",
                                    hint=f"the sources are: {known}"))
    return None


def _plugins(blocks: tuple[RawBlock, ...], reading: Reading) -> list[Plugin]:
    found = []
    for block in blocks:
        kind = block.labels[0] if block.labels else ""
        found.append(Plugin(type=kind, name=kind, settings=reading.settings(block), position=block.position))
    return found


def _chains(block: RawBlock, reading: Reading) -> list[tuple[Plugin, ...]]:
    """post-processor blocks run alone on the build's artifact; a post-processors block is one sequence."""
    chains = []
    for inner in block.blocks:
        if inner.type == "post-processor":
            chains.append(tuple(_plugins((inner,), reading)))
        elif inner.type == "post-processors":
            chains.append(tuple(_plugins(inner.blocks_of("post-processor"), reading)))
    return chains


def ignored_blocks(files: list[RawBlock]) -> list[Ignored]:
    return [Ignored(_title(b), IGNORED_BLOCKS[b.type], b.source, b.position)
            for f in files for b in f.blocks if b.type in IGNORED_BLOCKS]


def _title(block: RawBlock) -> str:
    return " ".join([block.type, *(f'"{label}"' for label in block.labels)])


def check_blocks(files: list[RawBlock]) -> list[Problem]:
    """Top-level attributes and unknown blocks: Packer refuses both."""
    known = {kind for (parent, kind) in BLOCK_LABELS if parent == ""}
    problems = []
    for file in files:
        for attribute in file.attributes:
            problems.append(Problem(attribute.position, f"{attribute.name} = ... outside any block",
                                    hint="variables go in a variable block, values in locals { }"))
        for block in file.blocks:
            if block.type not in known:
                problems.append(Problem(block.position, f"unknown block type {block.type!r}",
                                        hint="Packer's blocks: " + ", ".join(sorted(known))))
    return problems


def read(files: list[RawBlock], template_dir: Path, workdir: Path) -> tuple[Reading, list[Variable], list[Build]]:
    names, problems = names_of(files)
    reading = Reading(HclContext(names=names, template_dir=str(template_dir), workdir=str(workdir)),
                      problems=problems + check_blocks(files), ignored=ignored_blocks(files))
    variables = read_variables(files, reading)
    sources = read_sources(files, reading)
    builds = read_builds(files, sources, reading)
    if not builds and not reading.problems:
        reading.problems.append(Problem(files[0].position if files else None, "the template has no build block",
                                        hint='add build { sources = ["source.TYPE.NAME"] }'))
    if reading.problems:
        raise RecipeError(reading.problems)
    return reading, variables, builds


"""A JSON template of Packer's first format ("builders", "provisioners", "post-processors") as a Template.

json reads the values (and says where the syntax breaks); ruamel.yaml reads
the same text again for the line and column of every key, since JSON is YAML.
Strings hold Go template actions ({{user `x`}}), translated by go_templates.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from engine.errors import Position, Problem, RecipeError
from engine.recipe.yamlpos import YMap, YSeq, parse_yaml
from modules.importers.packer import go_templates
from modules.importers.packer.expressions import Expr, InvalidReference, Lit, Untranslatable, structure
from modules.importers.packer.files import read_text
from modules.importers.packer.go_templates import NO_FIELDS
from modules.importers.packer.names import RecipeNames
from modules.importers.packer.template import Build, Plugin, Settings, Value, Variable

TOP_LEVEL = ("variables", "sensitive-variables", "builders", "provisioners", "post-processors", "description",
             "min_packer_version")


@dataclass
class LegacyReading:
    shown: str
    positions: Any
    context: go_templates.GoContext
    problems: list[Problem] = field(default_factory=list)

    def value(self, value: Any, position: Position, key: str, fields: Mapping[str, str] = NO_FIELDS) -> Value:
        """The value translated; fields: the {{ .Field }}s Packer fills in it (a builder's boot_command)."""
        source = f"{json.dumps(key)}: {json.dumps(value)}"
        context = replace(self.context, fields=fields) if fields else self.context
        try:
            return Value.of(self._translate(value, context), source, position)
        except Untranslatable as exc:
            return Value.untranslated(source, position, str(exc))
        except InvalidReference as exc:
            self.problems.append(Problem(position, exc.message, hint=exc.hint))
            return Value.untranslated(source, position, exc.message)

    def _translate(self, value: Any, context: go_templates.GoContext) -> Expr:
        if isinstance(value, str):
            return go_templates.translate(value, context)
        if isinstance(value, list):
            return structure([self._translate(v, context) for v in value])
        if isinstance(value, dict):
            return structure([self._translate(v, context) for v in value.values()], [str(k) for k in value])
        return Lit(value)


@dataclass(frozen=True)
class LegacyTemplate:
    variables: tuple[Variable, ...]
    build: Build                     # a JSON template is one build of all its builders
    names: RecipeNames
    description: str


def read(path: Path, shown: str, template_dir: Path, workdir: Path) -> LegacyTemplate:
    text = read_text(path, shown)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError(Problem(Position(shown, exc.lineno, exc.colno), f"JSON syntax error: {exc.msg}",
                                  hint="check the commas, quotes and brackets up to this point")) from None
    positions = parse_yaml(text, shown)
    variables = document.get("variables") or {}
    names = RecipeNames.of(list(variables) if isinstance(variables, dict) else [], [])
    reading = LegacyReading(shown, positions, go_templates.GoContext(
        user_variables=names.variables, template_dir=str(template_dir), workdir=str(workdir)))
    _check_top_level(document, reading)
    found_variables = _variables(document, names, reading)
    build = _build(document, reading)
    if reading.problems:
        raise RecipeError(reading.problems)
    description = document.get("description")
    return LegacyTemplate(tuple(found_variables), build, names, description if isinstance(description, str) else "")


def _check_top_level(document: dict, reading: LegacyReading) -> None:
    for key in document:
        if key not in TOP_LEVEL and not key.startswith("_"):
            reading.problems.append(Problem(_key_position(reading.positions, key, reading.shown),
                                            f"unknown top-level key {key!r}",
                                            hint="a Packer JSON template has " + ", ".join(TOP_LEVEL)))
    if not isinstance(document.get("builders"), list) or not document["builders"]:
        reading.problems.append(Problem(_key_position(reading.positions, "builders", reading.shown),
                                        "builders must be a list of at least one builder",
                                        hint='e.g. "builders": [{"type": "qemu", ...}]'))


def _variables(document: dict, names: RecipeNames, reading: LegacyReading) -> list[Variable]:
    values = document.get("variables") or {}
    if not isinstance(values, dict):
        reading.problems.append(Problem(_key_position(reading.positions, "variables", reading.shown),
                                        "variables must be an object of names and default values"))
        return []
    sensitive = set(document.get("sensitive-variables") or [])
    where = reading.positions.get("variables") if isinstance(reading.positions, YMap) else None
    found = []
    for name, default in values.items():
        position = _key_position(where, name, reading.shown)
        found.append(Variable(name=names.variables[name], template_name=name, position=position,
                              default=None if default is None else reading.value(default, position, name),
                              sensitive=name in sensitive))
    return found


def _build(document: dict, reading: LegacyReading) -> Build:
    positions = reading.positions if isinstance(reading.positions, YMap) else YMap()
    builders = _plugins(document.get("builders"), positions.get("builders"), reading, "builder")
    provisioners = _plugins(document.get("provisioners"), positions.get("provisioners"), reading, "provisioner")
    chains = []
    post_positions = positions.get("post-processors")
    for index, entry in enumerate(document.get("post-processors") or []):
        if isinstance(entry, list):       # a sequence: each post-processor takes the one before's artifact
            chains.append(tuple(_plugins(entry, _item(post_positions, index), reading, "post-processor")))
            continue
        alone = YSeq([_item(post_positions, index)])
        alone.item_pos = [_item_position(post_positions, index, reading.shown)]
        chains.append(tuple(_plugins([entry], alone, reading, "post-processor")))
    return Build(name="", sources=tuple(builders), provisioners=tuple(provisioners), chains=tuple(chains),
                 position=Position(reading.shown, 1, 1))


def _plugins(entries: Any, positions: Any, reading: LegacyReading, what: str) -> list[Plugin]:
    found = []
    for index, entry in enumerate(entries or []):
        position = _item_position(positions, index, reading.shown)
        if isinstance(entry, str):        # "post-processors": ["compress"]: the type alone
            entry = {"type": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            reading.problems.append(Problem(position, f"a {what} must be an object with a type",
                                            hint=f'e.g. {{"type": "{"qemu" if what == "builder" else "shell"}", ...}}'))
            continue
        keys = _item(positions, index)
        settings = tuple((key, reading.value(value, _key_position(keys, key, reading.shown), key,
                                             go_templates.builder_fields(key) if what == "builder" else NO_FIELDS))
                         for key, value in entry.items() if key not in ("type", "name") and not key.startswith("_"))
        found.append(Plugin(type=entry["type"], name=str(entry.get("name") or entry["type"]),
                            settings=Settings(settings), position=position))
    return found


def _key_position(positions: Any, key: str, shown: str) -> Position:
    if isinstance(positions, YMap) and key in positions.key_pos:
        return positions.key_pos[key]
    return getattr(positions, "pos", Position(shown))


def _item_position(positions: Any, index: int, shown: str) -> Position:
    if isinstance(positions, YSeq) and index < len(positions.item_pos):
        return positions.item_pos[index]
    return getattr(positions, "pos", Position(shown))


def _item(positions: Any, index: int) -> Any:
    return positions[index] if isinstance(positions, YSeq) and index < len(positions) else None

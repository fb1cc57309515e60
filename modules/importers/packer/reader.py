"""A template path (a file or a folder) into a Template, with its variable files and -var values.

Packer's order is kept: the variables' defaults, then the *.auto.pkrvars.*
files of the folder (alphabetical), then each -var-file, then each -var. Every
problem of every file is reported at once.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import hcl2
from lark.exceptions import UnexpectedInput

from engine.errors import Position, Problem, RecipeError
from engine.recipe.importer import ImportOptions
from engine.recipe.yamlpos import YMap, parse_yaml
from modules.importers.packer import hcl_template, legacy_reader
from modules.importers.packer.expressions import Lit
from modules.importers.packer.files import TemplateFiles, discover, read_text
from modules.importers.packer.hcl_syntax import RawAttribute, RawBlock, read_file
from modules.importers.packer.names import RecipeNames
from modules.importers.packer.template import Assignment, Template, Value

STRING_TYPES = ("", "string")


def looks_legacy(path: Path) -> bool:
    """A .json file with builders, or one json cannot read (the reader then says where it breaks)."""
    text = read_text(path, str(path))
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return True
    return isinstance(document, dict) and "builders" in document


def read_template(path: Path, options: ImportOptions) -> Template:
    files = discover(path, legacy=path.is_file() and path.suffix == ".json" and not path.name.endswith(".pkr.json")
                     and looks_legacy(path))
    workdir = options.workdir.resolve()
    if files.legacy:
        return _legacy(files, workdir, options)
    return _hcl(files, workdir, options)


def _legacy(files: TemplateFiles, workdir: Path, options: ImportOptions) -> Template:
    legacy = legacy_reader.read(files.path, str(files.path), files.folder, workdir)
    assignments = [a for f in options.var_files for a in _json_var_file(f, legacy.names)]
    assignments += _cli_assignments(options.assignments, legacy.names, {})
    return Template(path=files.path, variables=legacy.variables, builds=(legacy.build,),
                    assignments=tuple(assignments), description=legacy.description)


def _hcl(files: TemplateFiles, workdir: Path, options: ImportOptions) -> Template:
    raw, problems = [], []
    for file in files.templates:
        try:
            raw.append(read_file(file, str(file)))
        except RecipeError as exc:
            problems += exc.problems
    if problems:
        raise RecipeError(problems)
    reading, variables, builds = hcl_template.read(raw, files.folder, workdir)
    names = reading.context.names
    var_reading = hcl_template.Reading(replace(reading.context, references=False))
    assignments = []
    for file in (*files.auto_var_files, *options.var_files):
        assignments += _hcl_var_file(file, var_reading)
    assignments += _cli_assignments(options.assignments, names, hcl_template.variable_types(raw), var_reading)
    if var_reading.problems:
        raise RecipeError(var_reading.problems)
    descriptions = [hcl_template.build_description(b, reading) for f in raw for b in f.blocks_of("build")]
    return Template(path=files.path, variables=tuple(variables), builds=tuple(builds),
                    assignments=tuple(assignments), ignored=tuple(reading.ignored + var_reading.ignored),
                    description="; ".join(d for d in descriptions if d))


def _hcl_var_file(path: Path, reading: hcl_template.Reading) -> list[Assignment]:
    """A *.pkrvars.hcl (or .json) file: name = value lines, no references."""
    if not path.is_file():
        raise RecipeError(Problem(Position(f"-var-file {path}"), "no such file", hint="name a *.pkrvars.hcl file"))
    block: RawBlock = read_file(path, str(path))
    found = []
    for attribute in block.attributes:
        name = reading.context.names.variables.get(attribute.name)
        if name is None:
            reading.problems.append(Problem(attribute.position, f"{attribute.name!r} is not a variable of the "
                                            "template", hint="declare it with a variable block, or remove it"))
            continue
        position = attribute.position
        found.append(Assignment(name, reading.value(attribute), f"{path}:{position.line}"))
    return found


def _json_var_file(path: Path, names: RecipeNames) -> list[Assignment]:
    """A JSON variable file of a JSON template: {"name": "value"}."""
    shown = str(path)
    if not path.is_file():
        raise RecipeError(Problem(Position(f"-var-file {path}"), "no such file", hint="name a JSON variable file"))
    text = read_text(path, shown)
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError(Problem(Position(shown, exc.lineno, exc.colno), f"JSON syntax error: {exc.msg}",
                                  hint="a variable file is one object of names and values")) from None
    positions = parse_yaml(text, shown)
    found, problems = [], []
    for key, value in (values.items() if isinstance(values, dict) else []):
        position = positions.key_pos.get(key, Position(shown)) if isinstance(positions, YMap) else Position(shown)
        if key not in names.variables:
            problems.append(Problem(position, f"{key!r} is not a variable of the template",
                                    hint='declare it under "variables", or remove it'))
            continue
        found.append(Assignment(names.variables[key], Value.of(Lit(value), json.dumps(value), position),
                                f"{shown}:{position.line}"))
    if problems:
        raise RecipeError(problems)
    return found


def _cli_assignments(assignments: tuple[str, ...], names: RecipeNames, types: dict[str, str],
                     reading: hcl_template.Reading | None = None) -> list[Assignment]:
    """-var name=value: the value is text for a string variable, an HCL expression for the other types."""
    found, problems = [], []
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        where = Position(f"-var {name}=...")       # the value may be a secret: never shown
        if not sep or name not in names.variables:
            problems.append(Problem(where, f"no variable {name!r} is declared in the template" if sep else
                                    "-var takes name=value", hint="e.g. -var region=eu-west-1"))
            continue
        if reading is None or types.get(name, "") in STRING_TYPES:
            value = Value.of(Lit(text), "-var", where)
        else:
            value = _typed(text, where, reading)
        found.append(Assignment(names.variables[name], value, "-var"))
    if problems:
        raise RecipeError(problems)
    return found


def _typed(text: str, where: Position, reading: hcl_template.Reading) -> Value:
    """A -var value of a number, bool, list or map variable: an HCL expression, as Packer reads it."""
    try:
        tree = hcl2.parses_to_tree(f"value = {text}\n")
    except UnexpectedInput:
        raise RecipeError(Problem(where, "the value is not an HCL expression of the variable's type",
                                  hint='e.g. -var cpus=2, -var tags={a="b"}, -var zones=["a","b"]')) from None
    node = next(c for c in tree.children[0].children if getattr(c, "data", "") == "attribute").children[-1]
    return reading.value(RawAttribute("value", node, where, "-var"))

"""`recipe import TEMPLATE [-o recipe.yml]`: another tool's build template made into a recipe.

The importer is picked by what the template looks like (or --from). Exit
codes: 0 everything was carried over and the recipe validates; 3 the recipe
was written, but some settings of the template are only comments in it (each
listed here with its file:line:column), or it does not validate yet (the
problems are listed); 2 the template is invalid.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from engine.errors import Position, Problem, RecipeError
from engine.process import atomic_path
from engine.recipe.compile import CompileOptions, compile_recipe
from engine.recipe.importer import Imported, Importer, ImportOptions
from engine.registry import IMPORTERS, load_plugins
from engine.secrets import Redactor

EXIT_OK, EXIT_INVALID, EXIT_LEFTOVERS = 0, 2, 3
STDOUT = "-"


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser("import", help="make a recipe of a Packer template (HCL2 or JSON)",
                              description="Write the recipe that does what a build template does. Settings with "
                                          "no recipe equivalent are kept as comments and listed (exit 3).")
    parser.add_argument("template", type=Path, help="a template file, or a folder of *.pkr.hcl files")
    parser.add_argument("-o", "--output", default=STDOUT, metavar="RECIPE",
                        help="the recipe file to write (default: stdout); the template's paths are rewritten to "
                             "lead to the same files from its folder")
    parser.add_argument("-var", "--var", dest="assignments", action="append", default=[], metavar="NAME=VALUE",
                        help="a value of a template variable, as `packer build -var` takes it")
    parser.add_argument("-var-file", "--var-file", dest="var_files", action="append", default=[], type=Path,
                        metavar="FILE", help="a variable file (*.pkrvars.hcl, or JSON), as `packer build -var-file`")
    parser.add_argument("--from", dest="importer", metavar="TOOL",
                        help="the tool the template is for (default: recognized from the template; known: packer)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def _importer(template: Path, wanted: str | None) -> type[Importer]:
    load_plugins()
    if wanted:
        chosen = IMPORTERS.get(wanted)
        if chosen is None:
            raise RecipeError(Problem(None, f"no importer named {wanted!r}",
                                      hint="importers: " + ", ".join(IMPORTERS.names())))
        return chosen
    if not template.exists():
        raise RecipeError(Problem(Position.of_file(template), "no such file or folder",
                                  hint="name a Packer template (*.pkr.hcl, *.json) or a folder of them"))
    for name in IMPORTERS:
        if IMPORTERS.get(name).recognizes(template):
            return IMPORTERS.get(name)
    raise RecipeError(Problem(Position.of_file(template), "not a template any importer recognizes",
                              hint="Packer's are *.pkr.hcl, *.pkr.json, a folder of them, or a JSON file with "
                                   "\"builders\"; or say which tool with --from"))


def _print_problems(title: str, problems: list[Problem], redactor: Redactor, stream: TextIO) -> None:
    count = len(problems)
    stream.write(f"{title} ({count} problem{'s' if count != 1 else ''}):\n")
    for problem in problems:
        stream.write("  " + redactor.text(str(problem)) + "\n")


def _validate(path: Path, shown: str) -> list[Problem]:
    """What `recipe validate` says of the written recipe (named as the user will know it)."""
    try:
        compile_recipe(path, CompileOptions(placeholder_ids=True))
    except RecipeError as exc:
        return [_renamed(p, path, shown) for p in exc.problems]
    return []


def _renamed(problem: Problem, written: Path, shown: str) -> Problem:
    if problem.position is None or Path(problem.position.file).resolve() != written.resolve():
        return problem
    position = Position(shown, problem.position.line, problem.position.column)
    return Problem(position, problem.message, path=problem.path, hint=problem.hint)


def _write(imported: Imported, output: str) -> list[Problem]:
    """The recipe to its file (whole or not at all), or to stdout; what validating it found."""
    if output != STDOUT:
        destination = Path(output)
        with atomic_path(destination) as temporary:
            temporary.write_text(imported.text, encoding="utf-8")
        return _validate(destination, output)
    # validated where it would be written, so that its paths lead where they will
    scratch = Path(f".recipe-import-{os.getpid()}.yml")
    try:
        scratch.write_text(imported.text, encoding="utf-8")
        problems = _validate(scratch, "<stdout>")
    except OSError as exc:
        problems = [Problem(Position("<stdout>"), f"not validated: cannot write here ({exc.strerror})",
                            hint="write it with -o, then run recipe validate on it")]
    finally:
        scratch.unlink(missing_ok=True)
    sys.stdout.write(imported.text)
    return problems


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    try:
        importer = _importer(args.template, args.importer)
    except RecipeError as exc:
        _print_problems("error: cannot import", exc.problems, redactor, sys.stderr)
        return EXIT_INVALID
    for assignment in args.assignments:          # a -var may give a secret: never shown, whatever happens
        redactor.add(assignment.partition("=")[2])
    destination = Path.cwd() / "recipe.yml" if args.output == STDOUT else Path(args.output)
    options = ImportOptions(destination=destination, workdir=Path.cwd(), assignments=tuple(args.assignments),
                            var_files=tuple(args.var_files))
    try:
        imported = importer().convert(args.template, options)
    except RecipeError as exc:
        _print_problems("error: the template is invalid", exc.problems, redactor, sys.stderr)
        return EXIT_INVALID
    problems = _write(imported, args.output)
    where = "the recipe" if args.output == STDOUT else args.output
    if imported.leftovers:
        count = len(imported.leftovers)
        sys.stderr.write(f"{count} setting{'s' if count != 1 else ''} of the template not imported (kept as "
                         f"comments in {where}):\n")
        for leftover in imported.leftovers:
            sys.stderr.write(f"  {redactor.text(str(leftover))}\n")
    if imported.secrets:
        names = ", ".join(imported.secrets)
        sys.stderr.write(f"secrets ({names}): give their values to `recipe run` with --var NAME=... or "
                         "RECIPE_VAR_NAME; they are not in the recipe\n")
    if problems:
        _print_problems(f"error: {where} does not validate yet", problems, redactor, sys.stderr)
    elif args.output != STDOUT:
        sys.stderr.write(f"wrote {args.output}: valid\n")
    return EXIT_LEFTOVERS if imported.leftovers or problems else EXIT_OK

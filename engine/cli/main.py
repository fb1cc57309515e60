"""The `recipe` command: run, validate, render, inspect, sweep.

Exit codes: 0 ok, 1 a build failed, 2 the recipe is invalid, 130 interrupted.
Errors are one paragraph with file:line:column and a hint; a traceback only
with --debug.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

from engine.build.run import Runs, run_recipes
from engine.build.runner import OnError, RunOptions
from engine.cli import cache_verb, import_verb, shell_verb, worker_verb
from engine.cli.arguments import positive_int
from engine.cli.inspect import describe, rendered_document
from engine.cluster.submit import ClusterOptions, run_on_cluster
from engine.cluster.ticket import RunSettings
from engine.console import prompt
from engine.console.events import EventBus, json_lines
from engine.console.view import console_sinks
from engine.errors import BuildError, Position, Problem, RecipeError, UsageError
from engine.leftovers.local_sweep import sweep_dead_runs
from engine.local_cache import layers_max_size
from engine.leftovers.sweep import SweepOptions
from engine.units import parse_duration
from engine.recipe.compile import CompileOptions, compile_recipe
from engine.registry import SWEEPERS, load_plugins
from engine.secrets import Redactor

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


def _tag_names(values: list[str]) -> frozenset[str]:
    return frozenset(tag.strip() for value in values for tag in value.split(",") if tag.strip())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recipe", description="Build machine images from a YAML recipe.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks; at a terminal, `run` also asks "
                        "before each task")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="set a variable")
    common.add_argument("--var-file", action="append", default=[], type=Path, metavar="FILE",
                        help="variables from a YAML file")
    common.add_argument("--roles-path", action="append", default=[], type=Path, metavar="DIR",
                        help="another directory to find roles in")
    # SUPPRESS: otherwise the verb's default would undo `recipe --debug run ...`
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    run = verbs.add_parser("run", parents=[common], help="build every source of the recipes, concurrently")
    run.add_argument("recipes", nargs="+", type=Path, metavar="RECIPE",
                     help="recipe files, or directories whose *.yml/*.yaml are recipes (a GitOps repo)")
    run.add_argument("--only", action="append", default=[], metavar="SOURCE",
                     help="build only these sources (repeatable, or comma-separated)")
    run.add_argument("--except", dest="except_", action="append", default=[], metavar="SOURCE",
                     help="build every source but these (repeatable, or comma-separated)")
    run.add_argument("--parallel", type=positive_int, default=0, metavar="N",
                     help="at most N builds at once (default: all at once)")
    run.add_argument("--fail-fast", action="store_true", help="stop the other builds when one fails")
    run.add_argument("--force-handlers", action="store_true",
                     help="run the notified handlers even when a task fails the build (the recipe's force_handlers)")
    run.add_argument("--check", action="store_true", help="show what would change, change nothing")
    run.add_argument("--diff", action="store_true", help="show the changes made to files")
    run.add_argument("-t", "--tags", action="append", default=[], metavar="TAGS",
                     help="run only tasks with these tags (repeatable, or comma-separated), as ansible-playbook")
    run.add_argument("--skip-tags", action="append", default=[], metavar="TAGS",
                     help="run every task but those with these tags")
    run.add_argument("--json", metavar="FILE", help="write JSON lines of every event to FILE (- for stdout)")
    run.add_argument("--on-error", choices=[m.value for m in OnError], default="cleanup",
                     help="on failure: clean up (default), leave everything for debugging (abort), or ask at "
                     "the terminal: retry the task, clean up or abort")
    run.add_argument("--output-dir", type=Path, default=Path("output"), help="where artifacts go")
    run.add_argument("--no-cache", action="store_true", help="build from the base image, resuming from no cache "
                     "layer (the layers this build makes are still kept)")
    run.add_argument("-v", "--verbose", action="store_true", help="show command output")
    run.add_argument("--cluster", metavar="URL",
                     help="run the builds on `recipe worker`s through this broker: redis://host:6379/0, "
                          "rediss://... for TLS (a password in $RECIPE_BROKER_PASSWORD stays out of `ps`)")
    run.add_argument("--cluster-timeout", default="5m", metavar="DURATION",
                     help="with --cluster: how long to wait out a broker outage, or for a worker that can take "
                          "a build (default 5m)")
    validate = verbs.add_parser("validate", parents=[common],
                                help="check recipes; no side effects, no credentials")
    validate.add_argument("recipes", nargs="+", type=Path, metavar="RECIPE", help="recipe files or directories")
    for verb, text in (("render", "print the recipe as rendered for each build"),
                       ("inspect", "sources, variables, tasks and exports at a glance")):
        verbs.add_parser(verb, parents=[common], help=text).add_argument(
            "recipe", type=Path, help="the recipe file, e.g. web.yml")
    sweep = verbs.add_parser("sweep", help="remove what killed runs left behind (tagged recipe:build-id)")
    sweep.add_argument("--region", action="append", default=[], help="an AWS region (repeatable; default: "
                       "the configured one)")
    sweep.add_argument("--older-than", default="2h", help="only what builds started this long ago left "
                       "(default 2h, so a running build is spared; s, m, h or d)")
    sweep.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    sweep.add_argument("--local", action="store_true", help="only this machine: QEMU processes, work dirs and "
                       "half-written artifacts of runs that died (a live run's are never touched)")
    sweep.add_argument("--bucket", action="append", default=[], help="an S3 bucket of ami exports with upload: s3 "
                       "(repeatable): their unfinished uploads and objects that killed runs left")
    sweep.add_argument("--profile", help="the AWS profile")
    sweep.add_argument("--endpoint-url", help="an EC2-compatible endpoint")
    sweep.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    import_verb.add_parser(verbs)
    cache_verb.add_parser(verbs)
    shell_verb.add_parser(verbs, common)
    worker_verb.add_parser(verbs)
    return parser


def _compile(args: argparse.Namespace, redactor: Redactor, placeholder: bool, path: Path | None = None) -> Any:
    options = CompileOptions(var_assignments=tuple(args.var), var_files=tuple(args.var_file),
                             roles_path=tuple(args.roles_path), placeholder_ids=placeholder)
    return compile_recipe(path or args.recipe, options, redactor)


def _compile_all(args: argparse.Namespace, redactor: Redactor, placeholder: bool) -> list[Any]:
    """Every recipe named, directories expanded; every problem of every recipe reported at once."""
    recipes, problems = [], []
    for path in recipe_files(args.recipes):
        try:
            recipes.append(_compile(args, redactor, placeholder, path))
        except RecipeError as exc:
            problems += exc.problems
    if problems:
        raise RecipeError(problems)
    seen: dict[str, Path] = {}
    for recipe in recipes:
        if recipe.name in seen:
            raise RecipeError([Problem(Position.of_file(recipe.path), f"recipe name {recipe.name!r} is also the "
                                       f"name of {seen[recipe.name]}",
                                       hint="builds and their output folders are named after the recipe: "
                                            "rename one")])
        seen[recipe.name] = recipe.path
    return recipes


def recipe_files(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a directory's *.yml and *.yaml (not its subfolders: roles, files, vars live there)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
            if not inside:
                raise RecipeError([Problem(Position.of_file(path), "no recipe (*.yml, *.yaml) in this directory",
                                           hint="name recipe files, or a directory that holds some")])
            found += inside
        else:
            found.append(path)
    return found


def select_builds(recipes: list[Any], only: list[str], except_: list[str]) -> list[Any]:
    """--only/--except by source name; a name no recipe has is an error, not a silent no-op."""
    only_names = {n for item in only for n in item.split(",") if n}
    except_names = {n for item in except_ for n in item.split(",") if n}
    known = {b.source.name for r in recipes for b in r.builds}
    unknown = sorted((only_names | except_names) - known)
    if unknown:
        raise RecipeError([Problem(None, f"no source named {', '.join(map(repr, unknown))}",
                                   hint=f"the sources are: {', '.join(sorted(known))}")])
    chosen = [dataclasses.replace(r, builds=tuple(b for b in r.builds
                                                  if (not only_names or b.source.name in only_names)
                                                  and b.source.name not in except_names)) for r in recipes]
    if not any(r.builds for r in chosen):
        raise RecipeError([Problem(None, "--only/--except left no build to run",
                                   hint=f"the sources are: {', '.join(sorted(known))}")])
    return [r for r in chosen if r.builds]


def _print_recipe_error(exc: RecipeError, redactor: Redactor, stream: TextIO) -> None:
    count = len(exc.problems)
    stream.write(f"error: the recipe is invalid ({count} problem{'s' if count != 1 else ''}):\n")
    for problem in exc.problems:
        stream.write("  " + redactor.text(str(problem)) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = words[words.index("--") + 1:] if "--" in words else []   # `recipe shell ... -- COMMAND`
    parser = _parser()
    args = parser.parse_args(words[:len(words) - len(command) - 1] if "--" in words else words)
    args.command = tuple(command)
    if command and args.verb != "shell":
        parser.error("only `recipe shell` takes a command after --")
    redactor = Redactor()
    try:
        return _dispatch(args, redactor)
    except RecipeError as exc:
        _print_recipe_error(exc, redactor, sys.stderr)
        return EXIT_INVALID
    except UsageError as exc:
        sys.stderr.write(f"error: {redactor.text(str(exc))}\n")
        return EXIT_INVALID
    except BuildError as exc:
        sys.stderr.write(f"error: {redactor.text(str(exc))}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {redactor.text(str(exc))} "
                         "(run with --debug for a traceback, and please report it)\n")
        return EXIT_FAILED


def _dispatch(args: argparse.Namespace, redactor: Redactor) -> int:
    if args.verb == "validate":
        for recipe in _compile_all(args, redactor, placeholder=True):
            print(f"{recipe.path}: valid ({len(recipe.builds)} build(s), {recipe.task_count} task(s))")
            for note in recipe.notes:
                print(f"  note: {redactor.text(str(note))}")
        return EXIT_OK
    if args.verb == "render":
        recipe = _compile(args, redactor, placeholder=True)
        sys.stdout.write(redactor.text(rendered_document(recipe)))
        return EXIT_OK
    if args.verb == "inspect":
        recipe = _compile(args, redactor, placeholder=True)
        sys.stdout.write(redactor.text(describe(recipe)))
        return EXIT_OK
    if args.verb == "sweep":
        return _sweep(args)
    if args.verb == "import":
        return import_verb.run(args, redactor)
    if args.verb == "cache":
        return cache_verb.run(args)
    if args.verb == "worker":
        return worker_verb.run(args)
    if args.verb == "shell":
        return shell_verb.run(args, _compile(args, redactor, placeholder=False), redactor, args.command)
    return _run(args, redactor)


def _sweep(args: argparse.Namespace) -> int:
    load_plugins()
    options = SweepOptions(regions=tuple(args.region), older_than=parse_duration(args.older_than),
                           dry_run=args.dry_run, profile=args.profile, endpoint_url=args.endpoint_url,
                           buckets=tuple(args.bucket))
    failures = 0
    for name in ["local"] if args.local else SWEEPERS.names():
        sweeper = SWEEPERS.get(name)()
        if not sweeper.applies(options):
            continue
        try:
            leftovers = sweeper.find(options)
        except Exception as error:      # no credentials, no network: say so, go on with the other sweepers
            sys.stderr.write(f"sweep {name}: cannot list resources: {error}\n")
            failures += 1
            continue
        verb = "would remove" if options.dry_run else "removing"
        for leftover in leftovers:
            print(f"{name}: {verb} {leftover.describe()}")
        if not leftovers:
            print(f"{name}: nothing left behind older than {args.older_than}")
        if options.dry_run or not leftovers:
            continue
        for leftover, why in sweeper.remove(options, leftovers):
            sys.stderr.write(f"{name}: could not remove {leftover.describe()}: {why}\n")
            failures += 1
    return EXIT_FAILED if failures else EXIT_OK


def _run(args: argparse.Namespace, redactor: Redactor) -> int:
    cluster = _cluster_options(args) if args.cluster is not None else None     # bad options: exit 2 before all
    if cluster is not None:
        redactor.add(cluster.broker.password)
    recipes = select_builds(_compile_all(args, redactor, placeholder=False), args.only, args.except_)
    cache_max_size = layers_max_size() if cluster is None else None   # a bad setting stops the run at once
    bus = EventBus(redactor=redactor)
    # no live view when JSON lines go to stdout: they would be drawn into it
    console, close_console = console_sinks(sys.stdout, args.verbose, args.output_dir,
                                           live=False if args.json == "-" else None, redactor=redactor)
    bus.sinks.extend(console)
    json_file = None
    if args.json:
        json_file = sys.stdout if args.json == "-" else open(args.json, "w", encoding="utf-8")
        bus.sinks.append(json_lines(json_file))
    try:
        if cluster is not None:
            outcomes = run_on_cluster(recipes, cluster, bus)
        else:
            sweep_dead_runs(lambda text: bus.emit("warning", msg=text))
            options = RunOptions(check=args.check, diff=args.diff, on_error=OnError(args.on_error),
                                 output_dir=args.output_dir, debug=args.debug,
                                 pause=args.debug and prompt.interactive(),
                                 tags=_tag_names(args.tags) or frozenset({"all"}),
                                 skip_tags=_tag_names(args.skip_tags), force_handlers=args.force_handlers,
                                 no_cache=args.no_cache, cache_max_size=cache_max_size)
            outcomes = asyncio.run(_run_interruptibly(recipes, options, bus, args))
    finally:
        close_console()                  # the live area, the build.log files
        if json_file not in (None, sys.stdout):
            json_file.close()
    if outcomes is None:
        return EXIT_INTERRUPTED
    return EXIT_OK if all(o.status == "succeeded" for o in outcomes) else EXIT_FAILED


def _cluster_options(args: argparse.Namespace) -> ClusterOptions:
    if args.on_error == OnError.ASK.value:
        raise UsageError("--on-error=ask needs a terminal on the machine that builds",
                         hint="with --cluster, use cleanup (default) or abort (what failed stays on the worker)")
    settings = RunSettings(check=args.check, diff=args.diff, tags=tuple(sorted(_tag_names(args.tags) or {"all"})),
                           skip_tags=tuple(sorted(_tag_names(args.skip_tags))), force_handlers=args.force_handlers,
                           no_cache=args.no_cache, on_error=args.on_error, debug=args.debug)
    return ClusterOptions(broker=worker_verb.broker_from(args.cluster, "--cluster"), output_dir=args.output_dir,
                          settings=settings, timeout=parse_duration(args.cluster_timeout, "--cluster-timeout"),
                          parallel=args.parallel, fail_fast=args.fail_fast, var_assignments=tuple(args.var),
                          var_files=tuple(args.var_file), roles_path=tuple(args.roles_path))


async def _run_interruptibly(recipes: list[Any], options: RunOptions, bus: EventBus,
                             args: argparse.Namespace) -> Any:
    """Run the builds. The first SIGINT or SIGTERM cancels them and their cleanups run; another one
    says what is still being released, and where."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    runs = Runs()
    interrupted = False

    def interrupt(signum: int) -> None:
        nonlocal interrupted
        if interrupted:
            left = runs.still_to_release()
            bus.emit("warning", left=left, msg="still cleaning up: " + "; ".join(
                f"{build}: {', '.join(what)}" for build, what in left.items()) if left else "almost done")
            return
        interrupted = True
        bus.emit("interrupt", signal=signal.Signals(signum).name, msg="stopping builds, cleaning up")
        main.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt, signum)
    try:
        return await run_recipes(recipes, options, bus, parallel=args.parallel, fail_fast=args.fail_fast, runs=runs)
    except asyncio.CancelledError:
        if interrupted:
            return None
        raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


if __name__ == "__main__":
    sys.exit(main())

"""What the provisioner tasks (puppet_apply, chef_solo) share: run another configuration tool on the target.

Each of them finds its tool there, uploads local trees and generated files into a private temporary
directory (`mktemp -d`, 0700) with one tar stream, runs the tool in it as root with environment variables
read from a file in it, and removes the directory whatever happens: one script does it all, its trap
cleaning up on success, failure and the signal that stops the shell when the build is cancelled.

Values that may be secrets (Puppet's facts, Chef's node attributes) travel inside the tar only: a script's
text is a command line on the target (`sh -c ...`, which ps shows), so it carries paths and flags alone.
"""
from __future__ import annotations

import dataclasses
import io
import re
import shlex
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Mapping, Sequence

from engine.build.taskmodule import TaskContext
from engine.errors import BuildError
from engine.remote.connection import Become, CommandResult
from modules.tasks._remote import payload, q, quiet, tail, words

ENV_FILE = "environment.sh"
UNPACK_FAILED = 125          # the script's status when the upload could not be unpacked (no tool returns it)
QUOTED_LINES = 5             # how many of a tool's error lines a failure's message quotes


@dataclass
class Bundle:
    """What goes into the work directory, each under its own relative name there."""

    local: dict[str, Path] = field(default_factory=dict)        # local files and trees, uploaded as they are
    generated: dict[str, bytes] = field(default_factory=dict)   # files written for the run (0600)

    def tar(self) -> bytes:
        buffer = io.BytesIO()
        # dereference: a link in a module or cookbook to a file outside it still arrives as that file
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, dereference=True) as archive:
            for name, path in self.local.items():
                archive.add(path, arcname=name)
            for name, data in self.generated.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o600
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def local_directory(ctx: TaskContext, option: str, name: str, hint: str = "") -> Path:
    """A directory an option names, found as copy's src is (beside the recipe, or in files/)."""
    path = ctx.find_file(name, "files")
    if not path.is_dir():
        raise BuildError(f"{option}: {name} is not a directory", hint=hint)
    return path


def environment_file(values: Mapping[str, str]) -> bytes:
    """A file the run script sources to export values: they never appear on a command line."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items()).encode()


def in_workdir(relative: str) -> str:
    """A shell word naming a path under the work directory, whose name only the target knows ($d)."""
    return '"$d"/' + shlex.quote(relative)


async def as_root(ctx: TaskContext) -> TaskContext:
    """ctx with its commands run as root: these tools configure the whole machine, so they run as root
    whatever the task's become says; through sudo (with the task's become password, if any) unless the
    login user is root already, as on images that only let root in."""
    res = await quiet(ctx, "id -u", become=False)
    if not res.ok:
        raise BuildError(f"could not tell which user the connection logs in as: {tail(res.stderr) or res.rc}")
    if res.stdout.strip() == "0":
        return dataclasses.replace(ctx, become=None)
    return dataclasses.replace(ctx, become=Become("root", ctx.become.password if ctx.become else None))


async def find_programs(root: TaskContext, names: Sequence[str], extra_dirs: Sequence[str] = ()) -> dict[str, str]:
    """The absolute path of each of names found on root's PATH (then extra_dirs: where vendors' packages put
    their tools, off the PATH), in one round trip; the runs name a tool by its path."""
    path = ":".join(["$PATH", *(q(d) for d in extra_dirs)])
    script = (f'PATH="{path}"\nfor n in {words(list(names))}; do\n'
              "  printf '%s ' \"$n\"; command -v \"$n\" || echo\n"
              "done\n")
    res = await quiet(root, script)
    found = {}
    for line in res.stdout.splitlines():
        name, _, where = line.partition(" ")
        if where.startswith("/"):             # not a shell function or alias of that name
            found[name] = where
    return found


def run_script(command: str, prefix: str, upload: str) -> str:
    """The script that makes the work directory, unpacks the tar (from upload, else stdin) into it, runs
    command (shell words, in_workdir's among them) there and removes it all, whatever happens."""
    return (f"d= u={q(upload) if upload else ''}\n"
            """trap 'cd /; rm -rf ${d:+"$d"} ${u:+"$u"}' EXIT\n"""
            # a trapped signal exits, which runs the EXIT trap (dash runs it on exit only)
            "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM\n"
            f'd=$(mktemp -d "${{TMPDIR:-/tmp}}/recipe-{prefix}.XXXXXXXXXX") && tar -xo -f "${{u:--}}" -C "$d" || '
            f'{{ echo "recipe: could not unpack the upload into a temporary directory" >&2; exit {UNPACK_FAILED}; }}\n'
            f'[ ! -f "$d/{ENV_FILE}" ] || . "$d/{ENV_FILE}"\n'
            f'cd "$d" && {command} </dev/null\n')


async def run_in_workdir(root: TaskContext, bundle: Bundle, command: str, prefix: str) -> CommandResult:
    """Upload bundle and run command in it as root, its output streamed as the task's; see run_script."""
    upload, stdin = await payload(root, bundle.tar())
    return await root.sh(run_script(command, prefix, upload), stdin=stdin)


def quoted_lines(output: str, pattern: re.Pattern[str]) -> str:
    """The tool's own error lines for a failure's message: those matching pattern, each once, the last few."""
    found = list(dict.fromkeys(line.strip() for line in output.splitlines() if pattern.search(line)))
    return "; ".join(found[-QUOTED_LINES:])


@dataclass(frozen=True)
class Tool:
    """The tool a provisioner runs, as found on the target (or installed there first)."""

    path: str | None              # None only in check mode, where a missing tool is not installed
    installed: str | None = None  # what was installed to get it, as the task's result says


Install = Callable[[TaskContext, Mapping[str, str]], Awaitable[str]]   # (root, programs found) -> what it installed


async def find_or_install(root: TaskContext, names: Sequence[str], extra_dirs: Sequence[str], missing: BuildError,
                          install: Install | None, helpers: Sequence[str] = ()) -> Tool:
    """The first of names on the target; else, when install is given, what it installs (install is handed
    the paths of the helpers found, package managers say; check mode installs nothing); else missing is raised."""
    found = await find_programs(root, [*names, *helpers], extra_dirs)
    path = _first(found, names)
    if path:
        return Tool(path)
    if install is None:
        raise missing
    if root.check:
        return Tool(None)
    installed = await install(root, found)
    path = _first(await find_programs(root, names, extra_dirs), names)
    if path is None:
        raise BuildError(f"{installed} did not provide {' or '.join(names)} on the target",
                         hint=f"the tool must be on root's PATH or in {', '.join(extra_dirs)}")
    return Tool(path, installed)


def _first(found: Mapping[str, str], names: Sequence[str]) -> str | None:
    return next((found[name] for name in names if name in found), None)

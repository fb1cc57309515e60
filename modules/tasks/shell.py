"""shell: run a command line through the target's shell, with pipes, globs and variables."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._command import GUARDS, STDIN, run_guarded, with_newline
from modules.tasks._remote import maybe, text


class Shell(TaskModule, name="shell"):
    description = "Run a command line through sh -c (or another shell) on the target"
    free_form = "cmd"
    schema = {
        vol.Required("cmd"): text,
        vol.Optional("executable", default=None): maybe(str),
        vol.Optional("strip_empty_ends", default=True): boolean,
        # The shell expands the command line itself; Ansible accepts this here too and it changes nothing.
        vol.Optional("expand_argument_vars", default=True): boolean,
        **GUARDS,
        **STDIN,
    }

    @dataclass(frozen=True)
    class Params:
        cmd: str
        executable: str | None = None
        strip_empty_ends: bool = True
        expand_argument_vars: bool = True
        chdir: str | None = None
        creates: str | None = None
        removes: str | None = None
        stdin: str | None = None
        stdin_add_newline: bool = True

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        # The connection already runs the script with sh -c: the command line goes in as
        # it is, which saves a process; another shell gets it as its -c argument.
        body = params.cmd
        if params.executable:
            body = f"exec {shlex.quote(params.executable)} -c {shlex.quote(params.cmd)}"
        return await run_guarded(ctx, body + "\n", chdir=params.chdir, creates=params.creates,
                                 removes=params.removes, stdin=with_newline(params.stdin, params.stdin_add_newline),
                                 label=params.cmd, strip=params.strip_empty_ends)

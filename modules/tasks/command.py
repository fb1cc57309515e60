"""command: run a program on the target, without a shell interpreting its arguments."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import one_or_more
from modules.tasks._command import GUARDS, STDIN, run_guarded, with_newline
from modules.tasks._remote import maybe, text


class Command(TaskModule, name="command"):
    description = "Run a command on the target; no shell expansion, pipes or redirections"
    free_form = "cmd"
    schema = {
        vol.Optional("cmd", default=None): maybe(text),
        vol.Optional("argv", default=None): maybe(one_or_more(text)),
        **GUARDS,
        **STDIN,
    }

    @dataclass(frozen=True)
    class Params:
        cmd: str | None = None
        argv: list[str] | None = None
        chdir: str | None = None
        creates: str | None = None
        removes: str | None = None
        stdin: str | None = None
        stdin_add_newline: bool = True

        def __post_init__(self) -> None:
            if (self.cmd is None) == (self.argv is None):
                raise vol.Invalid("give exactly one of cmd (the free form) or argv", path=["argv"])
            if self.cmd is not None and not self.cmd.strip():
                raise vol.Invalid("the command is empty", path=["cmd"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        # Split as Ansible does, then quote every word: the remote sh only carries the
        # words to exec, it never expands $VARS, globs or pipes in them.
        argv = params.argv if params.argv is not None else shlex.split(params.cmd)
        body = "exec " + " ".join(shlex.quote(word) for word in argv)
        return await run_guarded(ctx, body, chdir=params.chdir, creates=params.creates, removes=params.removes,
                                 stdin=with_newline(params.stdin, params.stdin_add_newline),
                                 label=params.cmd if params.cmd is not None else shlex.join(argv))

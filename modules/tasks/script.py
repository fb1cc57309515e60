"""script: copy a local script to the target, run it there, and remove it."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.errors import BuildError
from engine.recipe.schema import each
from modules.tasks._command import GUARDS, run_guarded
from modules.tasks._remote import maybe, payload, temp_path, text, unstage


def interpreter(script: bytes) -> list[str]:
    """The #! line's program and its one optional argument, as the kernel reads them, else sh.

    Running `interpreter file` rather than the file itself works on a noexec /tmp
    and needs no chmod.
    """
    if script.startswith(b"#!"):
        line = script[2:].split(b"\n", 1)[0].decode(errors="replace").strip()
        program, _, argument = line.partition(" ")
        if program:
            return [program, argument.strip()] if argument.strip() else [program]
    return ["/bin/sh"]


class Script(TaskModule, name="script"):
    description = "Upload a local script from files/ to the target, run it with its arguments, remove it"
    free_form = "src"
    aliases = {"cmd": "src"}   # Ansible's name for the script and its arguments
    local_files = {"src": "files"}
    schema = {
        vol.Required("src"): str,
        vol.Optional("args", default=[]): each(text),
        vol.Optional("executable", default=None): maybe(str),
        **GUARDS,
    }

    @dataclass(frozen=True)
    class Params:
        src: str
        args: list[str]
        executable: str | None = None
        chdir: str | None = None
        creates: str | None = None
        removes: str | None = None

    @staticmethod
    def locate(ctx: TaskContext, src: str) -> tuple[Path, list[str]]:
        """Ansible's free form is `path arg...`: a whole src that names no file is split into path and args."""
        try:
            return ctx.find_file(src, "files"), []
        except BuildError:
            words = shlex.split(src)
            if len(words) < 2:
                raise
            return ctx.find_file(words[0], "files"), words[1:]

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        local, extra = self.locate(ctx, params.src)
        data = local.read_bytes()
        argv = shlex.split(params.executable) if params.executable else interpreter(data)
        args = [*extra, *params.args]
        label = shlex.join([local.name, *args])
        guards = dict(chdir=params.chdir, creates=params.creates, removes=params.removes, stdin=None, label=label)
        if ctx.check:
            return await run_guarded(ctx, "", **guards)
        upload, stdin = await payload(ctx, data)
        path = upload or temp_path()
        prefix = f"trap 'rm -f {path} 2>/dev/null' EXIT\n"
        if stdin is not None:   # set -C: never write through something already there
            prefix += f"(umask 077 && set -C && cat > {path}) || exit\n"
        body = " ".join(shlex.quote(word) for word in [*argv, path, *args]) + " </dev/null\n"
        try:
            return await run_guarded(ctx, body, prefix=prefix, **{**guards, "stdin": stdin})
        finally:
            if upload:
                await unstage(ctx, upload)

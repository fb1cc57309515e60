"""command: run a program on the target, without a shell interpreting its arguments."""
from __future__ import annotations

import dataclasses
import re
import secrets
import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, one_or_more, string
from modules.tasks._command import GUARDS, STDIN, run_guarded, with_newline
from modules.tasks._remote import maybe, text

VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")   # what Python's os.path.expandvars, and so Ansible, expands


def expanded(word: str) -> str:
    """word for sh, with only $VAR, ${VAR} and a leading ~ expanded, as Ansible's expand_argument_vars does
    (os.path.expandvars, expanduser): an unset variable stays as written, nothing else is interpreted."""
    out = ""
    if word == "~" or word.startswith("~/"):
        out, word = '"$HOME"', word[1:]
    position = 0
    for match in VARIABLE.finditer(word):
        name = match.group(1).strip("{}")
        out += shlex.quote(word[position:match.start()]) if match.start() > position else ""
        if re.fullmatch(r"[A-Za-z_]\w*", name):
            literal = match.group(0).replace("$", "\\$").replace("}", "\\}")
            out += f'"${{{name}-{literal}}}"'
        else:
            out += shlex.quote(match.group(0))
        position = match.end()
    rest = word[position:]
    return out + (shlex.quote(rest) if rest or not out else "")


def exec_check(program: str, token: str) -> str:
    """Ansible runs the program itself, so one it cannot run fails with the OS error (rc 2: not found, 13: not
    executable) rather than a shell's 127: this finds which, in the shell, without forking. program is a shell
    word (already quoted or expanded)."""
    return (f"p={program}\n"
            'case $p in */*) f=$p ;; *) f=; IFS=:; for d in $PATH; do '
            'if [ -f "$d/$p" ] && [ -x "$d/$p" ]; then f=$d/$p; break; fi; done; unset IFS ;; esac\n'
            f'if [ -z "$f" ] || [ ! -e "$f" ]; then echo "{token} 2" >&2; exit 127; fi\n'
            f'if [ -d "$f" ] || [ ! -x "$f" ]; then echo "{token} 13" >&2; exit 126; fi\n')


def not_executed(result: Result, token: str, cmd: str | list[str]) -> Result:
    """The failure Ansible registers for a program it could not execute (no output, not changed; cmd as given)."""
    errno = result.stderr.rpartition(token)[2].strip()
    return Result(failed=True, rc=int(errno), msg="Error executing command.",
                  data={"cmd": cmd, "msg": "Error executing command."})


class Command(TaskModule, name="command"):
    description = "Run a command on the target; no shell expansion, pipes or redirections"
    free_form = "cmd"
    schema = {
        vol.Optional("cmd", default=None): maybe(text),
        vol.Optional("argv", default=None): maybe(one_or_more(text)),
        vol.Optional("expand_argument_vars", default=True): boolean,
        vol.Optional("strip_empty_ends", default=True): boolean,
        vol.Optional("executable", default=None): maybe(string),    # accepted and ignored, as by Ansible
        **GUARDS,
        **STDIN,
    }

    @dataclass(frozen=True)
    class Params:
        cmd: str | None = None
        argv: list[str] | None = None
        expand_argument_vars: bool = True
        strip_empty_ends: bool = True
        executable: str | None = None
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
        # Split as Ansible does, then quote every word: the remote sh only carries the words to exec; it
        # expands $VARS and ~ only where Ansible would (expand_argument_vars), never globs or pipes.
        argv = params.argv if params.argv is not None else shlex.split(params.cmd)
        quote = expanded if params.expand_argument_vars else shlex.quote
        token = f"recipe-noexec-{secrets.token_hex(6)}"
        body = exec_check(quote(argv[0]), token) + "exec " + " ".join(quote(word) for word in argv)
        result = await run_guarded(ctx, body, chdir=params.chdir, creates=params.creates, removes=params.removes,
                                 stdin=with_newline(params.stdin, params.stdin_add_newline),
                                 label=params.cmd if params.cmd is not None else shlex.join(argv), cmd=list(argv),
                                 strip=params.strip_empty_ends)
        if result.failed and token in result.stderr:
            return not_executed(result, token, params.cmd if params.cmd is not None else argv)
        if params.executable is None:
            return result
        warning = (f"As of Ansible 2.4, the parameter 'executable' is no longer supported with the 'command' "
                   f"module. Not using '{params.executable}'.")
        return dataclasses.replace(result, data={**result.data, "warnings": [warning]})

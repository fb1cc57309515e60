"""What command, shell and script share: chdir, creates/removes, stdin, check mode, rc -> Result."""
from __future__ import annotations

import secrets
from datetime import datetime

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext
from engine.recipe.schema import boolean, string
from modules.tasks._remote import failure, maybe, q, quiet, tail, text


def guard(chdir: str | None, creates: str | None, removes: str | None, token: str) -> str:
    """Shell lines that enter chdir, then print `token creates|removes` and stop when those say not to run.

    The patterns are globs, as in Ansible: expanded from a variable with IFS empty,
    so they glob but are never word-split or executed.
    """
    lines = [f"cd {q(chdir)} || exit"] if chdir else []
    for name, pattern, negate in (("creates", creates, ""), ("removes", removes, "! ")):
        if pattern:
            test = f'(p={q(pattern)}; IFS=; set -- $p; [ -e "$1" ] || [ -L "$1" ])'
            lines.append(f"if {negate}{test}; then echo '{token} {name}'; exit 0; fi")
    return "".join(line + "\n" for line in lines)


def guard_message(stdout: str, token: str, creates: str | None, removes: str | None) -> tuple[str, str] | None:
    """Why the guard stopped the command, as Ansible registers it (msg, stdout), or None when it ran."""
    words = stdout.strip().split(" ")
    if len(words) != 2 or words[0] != token:
        return None
    if words[1] == "creates":
        return f"Did not run command since '{creates}' exists", f"skipped, since {creates} exists"
    return f"Did not run command since '{removes}' does not exist", f"skipped, since {removes} does not exist"


def timing(start: datetime, end: datetime) -> dict[str, str]:
    """start, end and delta as Ansible's command registers them."""
    return {"start": str(start), "end": str(end), "delta": str(end - start)}


NOT_RUN = {"start": None, "end": None, "delta": None}


async def run_guarded(ctx: TaskContext, body: str, *, chdir: str | None, creates: str | None,
                      removes: str | None, stdin: bytes | str | None, label: str, prefix: str = "",
                      cmd: str | list[str] | None = None, strip: bool = True) -> Result:
    """The command/shell/script contract: chdir, creates/removes, check mode, rc -> Result.

    One round trip: the guard and the command travel in the same script, and
    the guard says it stopped by printing a random token no command prints.
    The registered value is Ansible's (cmd, rc, stdout, stderr, start, end, delta, msg); the message
    shown for a failure says more than Ansible's "non-zero return code", which is what is registered.
    """
    token = f"recipe-skip-{secrets.token_hex(6)}"
    preamble = guard(chdir, creates, removes, token)
    data: dict = {"cmd": label if cmd is None else cmd, **NOT_RUN}
    if ctx.check:   # no output, but registered as empty as in Ansible, so `x.stdout` still works later
        data.update(stdout="", stderr="", stdout_lines=[], stderr_lines=[], rc=0,
                    msg="Command would have run if not in check mode")
        if not (creates or removes):
            return Result(skipped=True, msg="skipped in check mode: a command cannot tell what it would change",
                          data=data)
        res = await quiet(ctx, preamble + "exit 0\n")
        if not res.ok:
            return failure(f"could not enter {chdir}", res)
        why = guard_message(res.stdout, token, creates, removes)
        if why:
            return Result(msg=why[0], data={**data, "msg": why[0], "stdout": why[1], "stdout_lines": [why[1]]})
        return Result(changed=True, msg="would run (check mode)", data=data)
    started = datetime.now()
    res = await ctx.sh(prefix + preamble + body, stdin=stdin)
    data.update(timing(started, datetime.now()))
    out, err = (res.stdout.rstrip("\r\n"), res.stderr.rstrip("\r\n")) if strip else (res.stdout, res.stderr)
    why = guard_message(res.stdout, token, creates, removes)
    if why:
        return Result(msg=why[0], rc=0, stdout=why[1], data={**data, **NOT_RUN, "msg": why[0]})
    if not res.ok:
        detail = tail(err) or tail(out) or "no output"
        return Result(changed=True, failed=True, rc=res.rc, stdout=out, stderr=err,
                      data={**data, "msg": "non-zero return code"}, msg=f"{label} failed with rc {res.rc}: {detail}")
    return Result(changed=True, rc=res.rc, stdout=out, stderr=err, data={**data, "msg": ""})


def with_newline(stdin: str | None, add: bool) -> str | None:
    return stdin + "\n" if stdin is not None and add else stdin


# Options command, shell and script share, with Ansible's names.
GUARDS = {
    vol.Optional("chdir", default=None): maybe(string),    # Ansible's paths: `creates: yes` is the path 'True'
    vol.Optional("creates", default=None): maybe(string),
    vol.Optional("removes", default=None): maybe(string),
}
STDIN = {
    vol.Optional("stdin", default=None): maybe(text),
    vol.Optional("stdin_add_newline", default=True): boolean,
}

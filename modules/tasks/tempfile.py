"""tempfile: create a uniquely named temporary file (0600) or directory (0700), as Ansible's tempfile does."""
from __future__ import annotations

import posixpath
import secrets
from dataclasses import dataclass
from typing import Any, Callable

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._attrs import STAT_FMT, Stat
from modules.tasks._remote import first, maybe, q, quiet, tagged, text

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"   # Python's tempfile names, which Ansible's are
ATTEMPTS = 5


def component(option: str) -> Callable[[Any], str]:
    """prefix and suffix are parts of one file name: no slash."""
    def validate(value: Any) -> str:
        value = text(value)
        if value and value != posixpath.basename(value):
            raise vol.Invalid(f"{option} must be a valid file name component, got {value!r}")
        return value
    return validate


def create_script(directory: str | None, name: str, state: str) -> str:
    """Create directory/name exclusively (noclobber opens with O_EXCL), then print its path and stat line."""
    where = q(directory) if directory else '"${TMPDIR:-/tmp}"'
    make = 'mkdir -m 0700 -- "$t"' if state == "directory" else '( umask 077; set -C; : > "$t" )'
    return (f"t={where}/{q(name)}\nprintf 'path %s\\n' \"$t\"\n"
            f'if [ -e "$t" ] || [ -L "$t" ]; then echo taken; exit 0; fi\n'
            f"{make} || exit 1\n"
            f"printf 'stat '; stat -c '{STAT_FMT}' \"$t\"\n")


class TempFile(TaskModule, name="tempfile"):
    description = "Create a temporary file or directory with a unique name; return its path"
    schema = {
        vol.Optional("state", default="file"): vol.In(["file", "directory"]),
        vol.Optional("path", default=None): maybe(text),
        vol.Optional("prefix", default="ansible."): component("prefix"),
        vol.Optional("suffix", default=""): component("suffix"),
    }

    @dataclass(frozen=True)
    class Params:
        state: str = "file"
        path: str | None = None
        prefix: str = "ansible."
        suffix: str = ""

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        if ctx.check:     # Ansible's tempfile does not support check mode: the task is skipped
            return Result(skipped=True, msg="tempfile does not run in check mode")
        for _ in range(ATTEMPTS):
            name = params.prefix + "".join(secrets.choice(ALPHABET) for _ in range(8)) + params.suffix
            res = await quiet(ctx, create_script(params.path, name, params.state))
            tags, _ = tagged(res.stdout)
            path = first(tags, "path") or name
            if not res.ok:
                reason = res.stderr.strip().splitlines()[-1].rsplit(": ", 1)[-1] if res.stderr.strip() else "failed"
                return Result(failed=True, msg=f"{reason}: {path!r}")
            if "taken" not in tags:
                st = Stat.parse(first(tags, "stat"))
                return Result(changed=True, msg=f"created {path}", data={
                    "path": path, "state": params.state, "uid": st.uid, "gid": st.gid, "owner": st.user,
                    "group": st.group, "mode": f"{st.mode:04o}", "size": st.size})
        return Result(failed=True, msg=f"no unused temporary name after {ATTEMPTS} attempts in {params.path}")

"""slurp: fetch a file's content from the target, base64-encoded, as Ansible's slurp does; changes nothing."""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._remote import CONTENT, failure, first, q, quiet, tagged, text

PROBLEMS = {
    "absent": "File not found: {}",
    "unreadable": "File is not readable: {}",
    "isdir": "Source is a directory and must be a file: {}",
}


class Slurp(TaskModule, name="slurp"):
    description = "Read a file on the target; return its content base64-encoded"
    aliases = {"path": "src"}
    schema = {vol.Required("src"): text}

    @dataclass(frozen=True)
    class Params:
        src: str

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        # Opening the file tells a missing file from one the user may not read (even via a folder), as open() does
        script = (f"LC_ALL=C; export LC_ALL\nf={q(params.src)}\nprintf 'path %s\\n' \"$f\"\n"
                  'if [ -d "$f" ]; then echo problem isdir; exit 0; fi\n'
                  'if e=$( ( : < "$f" ) 2>&1 ); then ' f'echo {CONTENT}; exec base64 < "$f"; fi\n'
                  'case $e in *"ermission denied"*) echo problem unreadable;; *"No such file"*) echo problem absent;;'
                  ' *) echo problem other;; esac\n')
        res = await quiet(ctx, script)
        if not res.ok:
            return failure(f"Unable to slurp file: {params.src}", res)
        tags, encoded = tagged(res.stdout)
        source = first(tags, "path") or params.src
        problem = first(tags, "problem")
        if problem or encoded is None:
            return Result(failed=True, msg=PROBLEMS.get(problem or "", "Unable to slurp file: {}").format(source))
        content = "".join(encoded.split())     # base64 wraps its lines at 76 columns; Ansible's has none
        return Result(msg=f"read {source}", data={"content": content, "source": source, "encoding": "base64"})

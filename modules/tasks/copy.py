"""copy: put a local file or an inline string at a path on the target."""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._attrs import Attrs
from modules.tasks._content import put_content
from modules.tasks._remote import ATTRIBUTES, maybe, text


class Copy(TaskModule, name="copy"):
    description = "Copy a local file, or write inline content, to a path on the target"
    local_files = {"src": "files"}
    schema = {
        vol.Optional("src", default=None): maybe(str),
        vol.Optional("content", default=None): maybe(text),
        vol.Required("dest"): str,
        **ATTRIBUTES,
        vol.Optional("backup", default=False): vol.Boolean(),
        vol.Optional("force", default=True): vol.Boolean(),
    }

    @dataclass(frozen=True)
    class Params:
        dest: str
        src: str | None = None
        content: str | None = None
        mode: str | None = None
        owner: str | None = None
        group: str | None = None
        backup: bool = False
        force: bool = True

        def __post_init__(self) -> None:
            # A rule across options, so it cannot live in the per-key schema.
            if (self.src is None) == (self.content is None):
                raise vol.Invalid("give exactly one of src or content", path=["src"])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        if params.content is not None:
            data, basename = params.content.encode(), None
        else:
            local = ctx.find_file(params.src, "files")
            data, basename = local.read_bytes(), local.name
        return await put_content(ctx, data, params.dest, Attrs(params.mode, params.owner, params.group),
                                 basename=basename, force=params.force, backup=params.backup)

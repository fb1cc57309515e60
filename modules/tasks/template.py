"""template: render a local Jinja template here and write the result on the target, as copy does."""
from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._attrs import Attrs
from modules.tasks._content import put_content
from modules.tasks._remote import ATTRIBUTES


class Template(TaskModule, name="template"):
    description = "Render a Jinja template from templates/ and write it to a path on the target"
    local_files = {"src": "templates"}
    schema = {
        vol.Required("src"): str,
        vol.Required("dest"): str,
        **ATTRIBUTES,
        vol.Optional("backup", default=False): vol.Boolean(),
        vol.Optional("force", default=True): vol.Boolean(),
    }

    @dataclass(frozen=True)
    class Params:
        src: str
        dest: str
        mode: str | None = None
        owner: str | None = None
        group: str | None = None
        backup: bool = False
        force: bool = True

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        local = ctx.find_file(params.src, "templates")
        data = ctx.render_text(local.read_text()).encode()
        # Into a directory, site.conf.j2 becomes site.conf: the suffix names the source's kind, not the result's.
        basename = local.name[:-3] if local.name.endswith(".j2") and len(local.name) > 3 else local.name
        return await put_content(ctx, data, params.dest, Attrs(params.mode, params.owner, params.group),
                                 basename=basename, force=params.force, backup=params.backup)

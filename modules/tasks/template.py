"""template: render a local Jinja template here and write the result on the target, as copy does."""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._attrs import Attrs
from modules.tasks._content import WriteOptions, put_content, source_mode, validate_problem
from modules.tasks._remote import ATTRIBUTES, FileAttributes, maybe, mode_or_preserve, text

NEWLINES = {"\\n": "\n", "\\r": "\r", "\\r\\n": "\r\n"}
# Jinja's delimiters, which a template may set to its own (Ansible's options, Jinja's names)
DELIMITERS = ("block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
              "comment_start_string", "comment_end_string")
HEADER = re.compile(r"^#jinja2:(?P<settings>[^\n]*)\n")   # Ansible's per-template override line


def encoding(value: Any) -> str:
    value = text(value)
    try:
        codecs.lookup(value)
    except LookupError:
        raise vol.Invalid(f"{value!r} is not an encoding Python knows (utf-8, latin-1, ...)") from None
    return value


def keep_trailing_newlines(source: str, rendered: str) -> str:
    """Ansible pads the result to end in as many newlines as the template does."""
    want = len(source) - len(source.rstrip("\n"))
    have = len(rendered) - len(rendered.rstrip("\n"))
    return rendered + "\n" * (want - have) if have < want else rendered


def search_path(local: Path) -> tuple[str, ...]:
    """Where the template's {% import %}/{% include %} look, as Ansible's template action's search path has
    them: the template's own folder, then the templates/ folder it is in and that folder's parent (the role)."""
    found = [local.parent]
    templates = next((folder for folder in local.parents if folder.name == "templates"), None)
    if templates is not None:
        found += [templates, templates.parent]
    return tuple(dict.fromkeys(str(folder) for folder in found))


def header_settings(source: str, trim_blocks: bool, lstrip_blocks: bool) -> tuple[str, bool, bool]:
    """A first line `#jinja2: trim_blocks: False, lstrip_blocks: True` overrides the options, as in Ansible."""
    match = HEADER.match(source)
    if not match:
        return source, trim_blocks, lstrip_blocks
    for setting in match["settings"].split(","):
        key, _, value = (part.strip() for part in setting.partition(":"))
        if key == "trim_blocks":
            trim_blocks = value.lower() == "true"
        elif key == "lstrip_blocks":
            lstrip_blocks = value.lower() == "true"
    return source[match.end():], trim_blocks, lstrip_blocks


class Template(TaskModule, name="template"):
    description = "Render a Jinja template from templates/ and write it to a path on the target"
    local_files = {"src": "templates"}
    aliases = {"attr": "attributes"}
    schema = {
        vol.Required("src"): str,
        vol.Required("dest"): str,
        **ATTRIBUTES,
        vol.Optional("mode", default=None): maybe(mode_or_preserve),
        vol.Optional("backup", default=False): boolean,
        vol.Optional("force", default=True): boolean,
        vol.Optional("validate", default=None): maybe(text),
        vol.Optional("follow", default=False): boolean,
        vol.Optional("newline_sequence", default="\\n"): vol.In(list(NEWLINES)),
        vol.Optional("trim_blocks", default=True): boolean,
        vol.Optional("lstrip_blocks", default=False): boolean,
        vol.Optional("output_encoding", default="utf-8"): encoding,
        **{vol.Optional(name, default=None): maybe(vol.All(text, vol.Length(min=1))) for name in DELIMITERS},
    }

    @dataclass(frozen=True)
    class Params(FileAttributes):
        src: str
        dest: str
        backup: bool = False
        force: bool = True
        validate: str | None = None
        follow: bool = False
        newline_sequence: str = "\\n"
        trim_blocks: bool = True
        lstrip_blocks: bool = False
        output_encoding: str = "utf-8"
        block_start_string: str | None = None
        block_end_string: str | None = None
        variable_start_string: str | None = None
        variable_end_string: str | None = None
        comment_start_string: str | None = None
        comment_end_string: str | None = None

        def __post_init__(self) -> None:
            if validate_problem(self.validate):
                raise vol.Invalid(validate_problem(self.validate), path=["validate"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        local = ctx.find_file(p.src, "templates")
        source, trim, lstrip = header_settings(local.read_text(), p.trim_blocks, p.lstrip_blocks)
        # Ansible's template environment: its whitespace control, keep_trailing_newline off, the delimiters set
        options = {name: getattr(p, name) for name in DELIMITERS if getattr(p, name) is not None}
        options["searchpath"] = search_path(local)
        text = ctx.render_text(source, trim_blocks=trim, lstrip_blocks=lstrip, keep_trailing_newline=False, **options)
        rendered = keep_trailing_newlines(source, text)
        if p.newline_sequence != "\\n":
            rendered = re.sub(r"\r\n|\r|\n", NEWLINES[p.newline_sequence], rendered)
        data = rendered.encode(p.output_encoding)
        basename = local.name     # into a directory, as Ansible: site.conf.j2 stays site.conf.j2
        attrs = Attrs(source_mode(local) if p.mode == "preserve" else p.mode, p.owner, p.group)
        options = WriteOptions(force=p.force, backup=p.backup, validate=p.validate, follow=p.follow,
                               flags=p.attributes)
        # a written file's `src` is the temporary copy put beside it, as Ansible's is the one it uploaded
        return await put_content(ctx, data, p.dest, attrs, basename=basename, options=options)

"""copy: put a local file or an inline string at a path on the target."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.errors import BuildError
from engine.recipe.schema import boolean
from modules.tasks._attrs import Attrs
from modules.tasks._content import WriteOptions, put_content, put_remote, source_mode, validate_problem
from modules.tasks._remote import ATTRIBUTES, FileAttributes, maybe, mode_or_preserve, text


class Copy(TaskModule, name="copy"):
    description = "Copy a local file, or write inline content, to a path on the target"
    local_files = {"src": "files"}
    aliases = {"attr": "attributes"}
    schema = {
        vol.Optional("src", default=None): maybe(str),
        vol.Optional("content", default=None): maybe(text),
        vol.Required("dest"): str,
        **ATTRIBUTES,
        vol.Optional("mode", default=None): maybe(mode_or_preserve),
        vol.Optional("backup", default=False): boolean,
        vol.Optional("force", default=True): boolean,
        vol.Optional("validate", default=None): maybe(text),
        vol.Optional("remote_src", default=False): boolean,
        vol.Optional("follow", default=False): boolean,
        vol.Optional("local_follow", default=True): boolean,
        vol.Optional("checksum", default=None): maybe(vol.All(text, vol.Match(r"^[0-9a-fA-F]{40}$"))),
        # Only a directory source uses it, and a directory source is refused below: accepted for
        # task files that pass it along with a file source, as Ansible then ignores it too.
        vol.Optional("directory_mode", default=None): object,
    }

    @dataclass(frozen=True)
    class Params(FileAttributes):
        dest: str
        src: str | None = None
        content: str | None = None
        backup: bool = False
        force: bool = True
        validate: str | None = None
        remote_src: bool = False
        follow: bool = False
        local_follow: bool = True
        checksum: str | None = None
        directory_mode: object = None

        def __post_init__(self) -> None:
            # Rules across options, so they cannot live in the per-key schema.
            if (self.src is None) == (self.content is None):
                raise vol.Invalid("give exactly one of src or content", path=["src"])
            if self.remote_src and self.src is None:
                raise vol.Invalid("remote_src needs src, the path on the target to copy from", path=["remote_src"])
            if self.mode == "preserve" and self.content is not None:
                raise vol.Invalid("mode: preserve copies the source's mode; content has none", path=["mode"])
            if validate_problem(self.validate):
                raise vol.Invalid(validate_problem(self.validate), path=["validate"])

    @staticmethod
    def local(ctx: TaskContext, p: Params) -> Path:
        path = ctx.find_file(p.src, "files")
        if path.is_dir():
            raise BuildError(f"src {p.src} is a directory: copying a directory tree is not supported",
                             hint="pack it and use unarchive, or copy its files one by one")
        if not p.local_follow and path.is_symlink():
            raise BuildError(f"src {p.src} is a link and local_follow is false: copying a link as a link is "
                             "not supported", hint="drop local_follow, or make the link with file: state=link")
        return path

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        options = WriteOptions(force=p.force, backup=p.backup, validate=p.validate, follow=p.follow,
                               flags=p.attributes)
        attrs = Attrs(None if p.mode == "preserve" else p.mode, p.owner, p.group)
        if p.remote_src:
            return await put_remote(ctx, p.src, p.dest, attrs, preserve=p.mode == "preserve", options=options)
        if p.content is not None:
            return await put_content(ctx, p.content.encode(), p.dest, attrs, options=options)
        local = self.local(ctx, p)
        data = local.read_bytes()
        if p.checksum and hashlib.sha1(data).hexdigest() != p.checksum.lower():
            return Result(failed=True, msg=f"src {p.src} does not have the checksum {p.checksum} asked for")
        if p.mode == "preserve":
            attrs = Attrs(source_mode(local), p.owner, p.group)
        result = await put_content(ctx, data, p.dest, attrs, basename=local.name, options=options)
        # Ansible's `src` is the temporary copy it uploaded; recipe uploads none, so it registers no src
        return result

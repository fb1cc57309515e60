"""copy: put a local file or directory tree, a tree on the target (remote_src), or an inline string at a path."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.errors import BuildError
from engine.recipe.schema import boolean, file_mode
from modules.tasks._attrs import Attrs
from modules.tasks._content import WriteOptions, put_content, put_remote, source_mode, validate_problem
from modules.tasks._copytree import put_remote_tree, put_tree
from modules.tasks._remote import ATTRIBUTES, FileAttributes, maybe, mode_or_preserve, text


class Copy(TaskModule, name="copy"):
    description = "Copy a local file or directory, a path on the target, or inline content to a path on the target"
    local_files = {"src": "files"}
    aliases = {"attr": "attributes"}
    missing_words = "{} is required"          # Ansible's action plugin's words: "dest is required"
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
        # unset differs from true with remote_src: Ansible's module then keeps a tree's links as links
        vol.Optional("local_follow", default=None): maybe(boolean),
        vol.Optional("checksum", default=None): maybe(vol.All(text, vol.Match(r"^[0-9a-fA-F]{40}$"))),
        # the mode of the directories a directory copy creates (and of the source tree's directories)
        vol.Optional("directory_mode", default=None): maybe(file_mode),
        # Ansible decrypts vault-encrypted sources unless told not to; recipe has no vault, so there is
        # nothing to decrypt and the option changes nothing
        vol.Optional("decrypt", default=True): boolean,
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
        local_follow: bool | None = None
        checksum: str | None = None
        directory_mode: str | None = None
        decrypt: bool = True

        def __post_init__(self) -> None:
            # Rules across options, so they cannot live in the per-key schema; the words are Ansible's.
            if not self.src and self.content is None:
                raise vol.Invalid("src (or content) is required", path=["src"])
            if self.src and self.content is not None:
                raise vol.Invalid("src and content are mutually exclusive", path=["src"])
            if self.remote_src and self.src is None:
                raise vol.Invalid("remote_src needs src, the path on the target to copy from", path=["remote_src"])
            if self.mode == "preserve" and self.content is not None:
                raise vol.Invalid("mode: preserve copies the source's mode; content has none", path=["mode"])
            if validate_problem(self.validate):
                raise vol.Invalid(validate_problem(self.validate), path=["validate"])

    @staticmethod
    def local(ctx: TaskContext, p: Params) -> Path:
        path = ctx.find_file(p.src, "files")
        if p.local_follow is False and path.is_symlink() and not path.is_dir():
            raise BuildError(f"src {p.src} is a link and local_follow is false: copying a link as a link is "
                             "not supported", hint="drop local_follow, or make the link with file: state=link")
        return path

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        options = WriteOptions(force=p.force, backup=p.backup, validate=p.validate, follow=p.follow,
                               flags=p.attributes)
        attrs = Attrs(None if p.mode == "preserve" else p.mode, p.owner, p.group)
        if p.remote_src:
            tree = await put_remote_tree(ctx, p.src, p.dest, attrs, p.directory_mode, p.local_follow, p.force)
            return tree or await put_remote(ctx, p.src, p.dest, attrs, preserve=p.mode == "preserve",
                                            options=options)
        if p.content is not None:
            return await put_content(ctx, p.content.encode(), p.dest, attrs, options=options)
        local = self.local(ctx, p)
        if local.is_dir():
            return await put_tree(ctx, local, p.src, p.dest, attrs, p.directory_mode, options,
                                  local_follow=p.local_follow is not False, preserve=p.mode == "preserve")
        data = local.read_bytes()
        if p.checksum and hashlib.sha1(data).hexdigest() != p.checksum.lower():
            return Result(failed=True, msg=f"src {p.src} does not have the checksum {p.checksum} asked for")
        if p.mode == "preserve":
            attrs = Attrs(source_mode(local), p.owner, p.group)
        # a written file's `src` is the temporary copy put beside it, as Ansible's is the one it uploaded
        return await put_content(ctx, data, p.dest, attrs, basename=local.name, options=options)

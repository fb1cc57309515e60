"""authorized_key (ansible.posix): add or remove SSH public keys in a user's authorized_keys, as Ansible does.

Keys are matched by their base64 blob. A present key whose type, options or comment differ is replaced and
moves to the end; new keys go after the existing ones; exclusive removes every other key. The file is
rewritten as Ansible serialises it (`options type blob comment`), comment and other lines kept in place.
"""
from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from typing import NamedTuple

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, string
from modules.tasks._attrs import Attrs
from modules.tasks._conffile import TextFile, read_file, write_file
from modules.tasks._remote import maybe, q, quiet, tail

KEY_TYPES = frozenset((
    "sk-ecdsa-sha2-nistp256@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com", "sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com",
    "ssh-dss", "ssh-dss-cert-v01@openssh.com", "ssh-rsa", "ssh-rsa-cert-v01@openssh.com", "ssh-xmss@openssh.com",
    "ssh-xmss-cert-v01@openssh.com", "rsa-sha2-256", "rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-512",
    "rsa-sha2-512-cert-v01@openssh.com", "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com"))


class Key(NamedTuple):
    blob: str                             # the line itself, for a line that is no key
    type: str                             # "skip" for a line that is no key
    options: tuple[tuple[str, str | None], ...]
    comment: str
    rank: int

    @property
    def same(self) -> tuple:
        return self.blob, self.type, self.options, self.comment

    def line(self) -> str:
        if self.type == "skip":
            return self.blob + "\n"
        options = ",".join(k if v is None else f"{k}={v}" for k, v in self.options)
        return f"{options + ' ' if options else ''}{self.type} {self.blob}{' ' + self.comment if self.comment else ''}\n"


def parse_options(text: str | None) -> tuple[tuple[str, str | None], ...]:
    """Comma-separated sshd options, commas inside double quotes kept: (name, value or None) in order."""
    if not text:
        return ()
    parts, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    found: dict[str, str | None] = {}
    for part in filter(None, (part.strip() for part in parts)):
        name, sep, value = part.partition("=")
        found[name] = value if sep else None
    return tuple(found.items())


def parse_key(line: str, rank: int = 0) -> Key | None:
    lexer = shlex.shlex(line.replace("\\#", "#"), posix=False)
    lexer.quotes, lexer.commenters, lexer.whitespace_split = "", "", True
    parts = list(lexer)
    if not parts or parts[0] == "#":
        return None
    index = next((i for i, part in enumerate(parts) if part in KEY_TYPES), None)
    if index is None or index + 1 >= len(parts):
        return None
    options = parse_options(" ".join(parts[:index])) if index else ()
    return Key(parts[index + 1], parts[index], options, " ".join(parts[index + 2:]), rank)


def read_keys(text: str) -> dict[str, Key]:
    keys: dict[str, Key] = {}
    for rank, line in enumerate(text.splitlines()):
        key = parse_key(line, rank)
        keys[key.blob if key else line] = key or Key(line, "skip", (), "", rank)
    return keys


def apply(keys: dict[str, Key], p: "AuthorizedKey.Params") -> bool:
    """Ansible's algorithm on keys (edited in place); whether the file must be written."""
    write, wanted, top = False, [], max((key.rank for key in keys.values()), default=0)
    for rank, line in enumerate(line for line in p.key.splitlines() if line.strip()):
        new = parse_key(line, rank)
        if new is None:
            raise ValueError(f"invalid key specified: {line}")
        if p.key_options is not None:
            new = new._replace(options=parse_options(p.key_options))
        if p.comment is not None:
            new = new._replace(comment=p.comment)
        old = keys.get(new.blob)
        matched = old is not None and (p.state == "absent" or old.same == new.same)
        if p.state == "absent":
            if matched:
                del keys[new.blob]
                write = True
            continue
        wanted.append(new.blob)
        if old is not None and not matched:
            del keys[new.blob]
            write = True
        if not matched:
            keys[new.blob] = new._replace(rank=top + new.rank)
            write = True
    if p.state == "present" and p.exclusive:
        for blob in set(keys) - set(wanted):
            del keys[blob]
            write = True
    return write


class AuthorizedKey(TaskModule, name="authorized_key"):
    description = "Add or remove SSH public keys in a user's authorized_keys"
    schema = {
        vol.Required("user"): string,
        vol.Required("key"): string,
        vol.Optional("path", default=None): maybe(string),
        vol.Optional("manage_dir", default=True): boolean,
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
        vol.Optional("key_options", default=None): maybe(string),
        vol.Optional("exclusive", default=False): boolean,
        vol.Optional("validate_certs", default=True): boolean,
        vol.Optional("comment", default=None): maybe(string),
        vol.Optional("follow", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        user: str
        key: str
        path: str | None = None
        manage_dir: bool = True
        state: str = "present"
        key_options: str | None = None
        exclusive: bool = False
        validate_certs: bool = True
        comment: str | None = None
        follow: bool = False

        def __post_init__(self) -> None:
            if self.key.startswith(("http://", "https://")):
                raise vol.Invalid("a key from a URL is not fetched here: read it first (lookup('url', ...) or "
                                  "get_url) and pass its text", path=["key"])
            if self.exclusive and self.state == "absent":
                raise vol.Invalid("exclusive works with state present only", path=["exclusive"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        res = await quiet(ctx, f"getent passwd {shlex.quote(p.user)}")
        entry = res.stdout.strip().split(":")
        data = {"user": p.user, "key": p.key, "key_options": p.key_options, "path": p.path, "state": p.state,
                "manage_dir": p.manage_dir, "exclusive": p.exclusive, "comment": p.comment, "follow": p.follow,
                "validate_certs": p.validate_certs}
        if not res.ok or len(entry) < 7:
            return Result(failed=True, msg=f"Failed to lookup user {p.user}: no such user on the target", data=data)
        uid, gid, home = entry[2], entry[3], entry[5]
        path = p.path or posixpath.join(home, ".ssh", "authorized_keys")
        data["keyfile"] = path
        found = await read_file(ctx, path)
        if isinstance(found, Result):
            return found.replace(data=data)
        keys = read_keys(found.text or "")
        try:
            write = apply(keys, p)
        except ValueError as exc:
            return Result(failed=True, msg=str(exc), data=data)
        if not write:
            return Result(msg=f"{path} has the key(s) as asked", data=data)
        text = "".join(key.line() for key in sorted(keys.values(), key=lambda key: key.rank))
        if ctx.check:
            return Result(changed=True, msg=f"{path} would change", data=data)
        return await self.write(ctx, p, found, text, uid, gid, data)

    @staticmethod
    async def write(ctx: TaskContext, p: Params, found: TextFile, text: str, uid: str, gid: str,
                    data: dict) -> Result:
        directory = posixpath.dirname(found.path)
        if found.stat is None:   # as Ansible: the directory (0700, the user's, with manage_dir) and the file
            make = (f"[ -d {q(directory)} ] || {{ mkdir -p {q(directory)} && chmod 0700 {q(directory)}"
                    f" && chown {uid}:{gid} {q(directory)}; }}") if p.manage_dir else f"[ -d {q(directory)} ]"
            res = await quiet(ctx, make)
            if not res.ok:
                return Result(failed=True, data=data,
                              msg=f"the directory of {found.path} does not exist or cannot be made: {tail(res.stderr)}")
        attrs = Attrs("0600", uid, gid) if found.stat is None else Attrs()
        written = await write_file(ctx, found, text, attrs)
        if isinstance(written, Result):
            return written.replace(data=data)
        return Result(changed=True, msg=f"{found.path} changed", data=data)

"""apt_key: a key in apt's (deprecated) apt-key keyring, added from a file, inline data, a URL or a keyserver.

As Ansible's module: without `id`, the key's id is read from the key itself (`gpg --with-colons`); the keyring's
keys are listed with `apt-key adv --list-public-keys --keyid-format=long` (before, and after a change, which must
then show the key); an 8-character id compares short ids, longer ones the 16-character long id. Returns Ansible's
id, short_id, fp, key_id, before and after. Key data goes to gpg and apt-key on stdin or as an uploaded file,
never on a command line; a URL is fetched once, on the target (curl or wget), into a temporary file.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, string
from modules.tasks._remote import maybe, payload, q, quiet, tail, temp_path, unstage

LANG = "LANG=C LC_ALL=C LC_MESSAGES=C LANGUAGE=C "
NOT_ADDED = "apt-key did not return an error, but {} (check that the id is correct and *not* a subkey)"


def parse_key_id(key_id: str) -> tuple[str, str, str]:
    """(short id, long id to compare, id for --recv), as Ansible's parse_key_id; ValueError when invalid."""
    int(key_id, 16)
    key_id = key_id.upper()
    key_id = key_id[2:] if key_id.startswith("0X") else key_id
    if len(key_id) not in (8, 16) and len(key_id) <= 16:
        raise ValueError("key_id must be 8, 16, or 16+ hexadecimal characters in length")
    return key_id[-8:], key_id[-16:] if len(key_id) > 16 else key_id, key_id


def parse_keys(output: str, short: bool = False) -> list[str]:
    """The ids of the pub and sub keys that have not expired, from gpg's long or colon listings."""
    found = []
    for line in output.split("\n"):
        if not line.startswith(("pub", "sub")) or "expired" in line:
            continue
        tokens = line.split()
        if len(tokens) > 1 and tokens[1].count("/") == 1:
            found.append(tokens[1].split("/")[1])
        elif len(line.split(":")) > 4:
            found.append(line.split(":")[4])
    return [key[-8:] for key in found] if short else found


def hex_id(value: Any) -> str:
    return string(value).strip()


class AptKey(TaskModule, name="apt_key"):
    description = "Add or remove a key in apt-key's keyring (deprecated in apt; prefer deb822_repository's signed_by)"
    schema = {
        vol.Optional("id", default=None): maybe(hex_id),
        vol.Optional("url", default=None): maybe(string),
        vol.Optional("data", default=None): maybe(string),
        vol.Optional("file", default=None): maybe(string),
        vol.Optional("keyring", default=None): maybe(string),
        vol.Optional("validate_certs", default=True): boolean,
        vol.Optional("keyserver", default=None): maybe(string),
        vol.Optional("state", default="present"): vol.In(["present", "absent"]),
    }

    @dataclass(frozen=True)
    class Params:
        id: str | None = None
        url: str | None = None
        data: str | None = None
        file: str | None = None
        keyring: str | None = None
        validate_certs: bool = True
        keyserver: str | None = None
        state: str = "present"

        def __post_init__(self) -> None:
            sources = [name for name in ("data", "file", "keyserver", "url") if getattr(self, name)]
            if len(sources) > 1:
                raise vol.Invalid(f"parameters are mutually exclusive: {', '.join(sources)} (give one)",
                                  path=[sources[1]])

        @property
        def apt_key(self) -> str:
            return "apt-key" + (f" --keyring {q(self.keyring)}" if self.keyring else "")

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        res = await quiet(ctx, "command -v apt-key >/dev/null || echo no-apt-key; command -v gpg >/dev/null || "
                               "echo no-gpg", become=False)
        if "no-" in res.stdout:
            missing = "apt-key" if "no-apt-key" in res.stdout else "gpg"
            return Result(failed=True, msg=f'Failed to find required executable "{missing}" in paths.'
                                           + (" Apt-key has been deprecated. See the deb822_repository as an "
                                              "alternative." if missing == "apt-key" else ""))
        downloaded = await self.download(ctx, p) if p.url and (not p.id or p.state == "present") else None
        if isinstance(downloaded, Result):
            return downloaded
        try:
            return await self.act(ctx, p, downloaded)
        finally:
            if downloaded:
                await quiet(ctx, f"rm -f {q(downloaded)}")

    async def act(self, ctx: TaskContext, p: Params, downloaded: str | None) -> Result:
        r: dict[str, Any] = {}
        key_id: str | None = p.id
        if not key_id:
            if p.keyserver:
                return Result(failed=True, msg="Missing key_id, required with keyserver.")
            found = await self.id_of(ctx, p, downloaded)
            if isinstance(found, Result):
                return found
            key_id = found
        r["id"] = key_id
        try:
            short_id, fingerprint, key_id = parse_key_id(key_id or "")
        except ValueError:
            return Result(failed=True, msg="Invalid key_id", data=r)
        r.update(short_id=short_id, fp=fingerprint, key_id=key_id)
        short = len(key_id) == 8
        wanted = short_id if short else fingerprint
        keys = await self.keys(ctx, p, short)
        if isinstance(keys, Result):
            return keys.replace(data=r)
        r["before"] = keys
        present = p.state == "present"
        if (wanted in keys) if present else (fingerprint not in keys):
            return Result(msg=f"key {key_id} is {'there' if present else 'not there'}", data=r)
        if ctx.check:
            return Result(changed=True, msg=f"key {key_id} would be {'added' if present else 'removed'}", data=r)
        failed = await (self.add(ctx, p, key_id, downloaded) if present else
                        self.command(ctx, f"{p.apt_key} del {shlex.quote(short_id)}",
                                     f"Unable to remove a key with id {short_id}"))
        if failed:
            return failed.replace(data=r)
        after = await self.keys(ctx, p, short)
        if isinstance(after, Result):
            return after.replace(data=r)
        r["after"] = after
        if (wanted not in after) if present else (fingerprint in after):
            return Result(failed=True, data=r, msg=NOT_ADDED.format("failed to add the key" if present else
                                                                   "the key was not removed"))
        return Result(changed=True, msg=f"key {key_id} {'added' if present else 'removed'}", data=r)

    @staticmethod
    async def download(ctx: TaskContext, p: Params) -> str | Result:
        path = temp_path()
        insecure = "" if p.validate_certs else " -k"
        res = await quiet(ctx, f"u={shlex.quote(p.url or '')}; umask 077\n"
                               f"if command -v curl >/dev/null 2>&1; then curl -fsSL{insecure} -o {path} \"$u\"\n"
                               f"else wget -q{' --no-check-certificate' if insecure else ''} -O {path} \"$u\"; fi",
                          become=False)
        if not res.ok:
            await quiet(ctx, f"rm -f {path}", become=False)
            return Result(failed=True, msg=f"Failed to download key at {p.url}: {tail(res.stderr) or res.rc}")
        return path

    @staticmethod
    async def id_of(ctx: TaskContext, p: Params, downloaded: str | None) -> str | Result:
        """The first key id in the key (file, downloaded file or data), read by gpg in a throwaway home."""
        source, stdin = (p.file or downloaded or "", None)
        if not source and p.data is not None:
            source, stdin = "-", p.data.encode()
        if not source:
            return Result(failed=True, msg="one of id, file, data or url is required (the key or its id)")
        res = await quiet(ctx, "h=$(mktemp -d) && trap 'rm -rf \"$h\"' EXIT && "
                               f"{LANG}gpg --homedir \"$h\" --with-colons {q(source)}", stdin=stdin)
        what = "inline data" if stdin is not None else (p.url if downloaded else source)
        keys = parse_keys(res.stdout) if res.ok else []
        if not res.ok or not keys:
            return Result(failed=True, msg=f"Unable to extract key from '{what}': {tail(res.stderr)}")
        return keys[0]

    @staticmethod
    async def keys(ctx: TaskContext, p: Params, short: bool) -> list[str] | Result:
        command = f"{p.apt_key} adv --list-public-keys --keyid-format=long"
        res = await quiet(ctx, command)
        if not res.ok:
            return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr,
                          msg=f"Unable to list public keys: {tail(res.stderr)}")
        return parse_keys(res.stdout, short)

    async def add(self, ctx: TaskContext, p: Params, key_id: str, downloaded: str | None) -> Result | None:
        if p.file or downloaded:
            keyfile = p.file or downloaded or ""
            return await self.command(ctx, f"{p.apt_key} add {q(keyfile)}", f"Unable to add a key from file {keyfile}")
        if p.keyserver:
            return await self.command(ctx, f"for i in 1 2 3 4 5; do {LANG}{p.apt_key} adv --no-tty --keyserver "
                                           f"{shlex.quote(p.keyserver)} --recv {shlex.quote(key_id)} && exit 0; done; "
                                           "exit 1", f"Error fetching key {key_id} from keyserver: {p.keyserver}")
        if p.data is None:
            return Result(failed=True, msg="No key to add: give file, data, url or keyserver")
        upload, stdin = await payload(ctx, p.data.encode())
        try:
            return await self.command(ctx, f"{p.apt_key} add {q(upload) if upload else '-'}",
                                      "Unable to add a key from binary data", stdin)
        finally:
            if upload:
                await quiet(ctx, f"rm -f {q(upload)}", become=False)
                await unstage(ctx, upload)

    @staticmethod
    async def command(ctx: TaskContext, command: str, what: str, stdin: bytes | None = None) -> Result | None:
        res = await ctx.sh(command, stdin=stdin)
        if res.ok:
            return None
        return Result(failed=True, rc=res.rc, stdout=res.stdout, stderr=res.stderr, msg=f"{what}: {tail(res.stderr)}")


"""get_url: download a file on the target, with curl or wget (whichever it has), verified and renamed into place.

The file is written to a hidden temporary name in dest's directory, its checksum verified, and only then
renamed over dest, so dest is always either the old file or the whole new one. The download is skipped
when dest already holds the checksum asked for, or exists and force is false. Header values and the URL
password travel on the script's stdin, never in its text, a message or the result.
"""
from __future__ import annotations

import base64
import posixpath
import re
import secrets
import urllib.parse
from dataclasses import dataclass, field

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._attrs import Attrs, Stat, new_mode
from modules.tasks._content import with_flags
from modules.tasks._remote import (ATTRIBUTES, FileAttributes, UMASK_SH, failure, first, maybe, place_commands, q,
                                   quiet, seconds, stat_sh, tagged, tail, text)

DIGESTS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
URL = re.compile(r"^(https?|ftp)://[^\s]+$")


def url(value: object) -> str:
    if not isinstance(value, str) or not URL.match(value):
        raise vol.Invalid(f"{value!r} is not an http, https or ftp URL")
    return value


def checksum(value: object) -> str:
    """"<algorithm>:<hex digest>", or "<algorithm>:<URL of a checksums file>" as in Ansible."""
    algorithm, _, digest = text(value).partition(":")
    if algorithm not in DIGESTS:
        raise vol.Invalid(f"checksum must start with one of {', '.join(DIGESTS)} and a colon, e.g. sha256:<hex>")
    if URL.match(digest):
        return f"{algorithm}:{digest}"
    if not re.fullmatch(f"[0-9a-fA-F]{{{DIGESTS[algorithm]}}}", digest):
        raise vol.Invalid(f"a {algorithm} checksum is {DIGESTS[algorithm]} hexadecimal digits (or a URL)")
    return f"{algorithm}:{digest.lower()}"


def headers(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise vol.Invalid("headers must be a mapping of header names to values")
    out = {}
    for name, val in value.items():
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", str(name)):
            raise vol.Invalid(f"{name!r} is not an HTTP header name")
        val = text(val)
        if "\n" in val or "\r" in val:
            raise vol.Invalid(f"the value of header {name} holds a line break")
        out[str(name)] = val
    return out


def url_basename(address: str) -> str:
    """The file name a URL names, as dest's name when dest is a directory."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(address).path)
    return posixpath.basename(path) or "index.html"


def fetch_function(timeout: float, validate_certs: bool) -> str:
    """A shell function `fetch URL OUT HEADER...`: curl, or wget (GNU or BusyBox), OUT "-" being stdout."""
    t = f"{timeout:g}"
    return (
        "fetch() {\n"
        "u=$1; o=$2; shift 2\n"
        "if command -v curl >/dev/null 2>&1; then\n"
        "for h do set -- \"$@\" -H \"$h\"; shift; done\n"
        f"curl -fsSL{'' if validate_certs else 'k'} --connect-timeout {t} --speed-time {t} --speed-limit 1 "
        "-o \"$o\" \"$@\" --url \"$u\"\n"
        "elif command -v wget >/dev/null 2>&1; then\n"
        "for h do set -- \"$@\" \"--header=$h\"; shift; done\n"
        "if wget --version >/dev/null 2>&1; then set -- \"$@\" -nv -t 1; else set -- \"$@\" -q; fi\n"
        f"wget {'' if validate_certs else '--no-check-certificate '}-T {t} -O \"$o\" \"$@\" \"$u\"\n"
        "else echo 'neither curl nor wget is on the target' >&2; return 127; fi\n"
        "}\n"
        # the header lines, from stdin, become the positional parameters every fetch gets
        "set --; while IFS= read -r h; do set -- \"$@\" \"$h\"; done\n")


def sums_sh(sums_url: str, name: str) -> str:
    """Fetch a checksums file and print `want <digest>` for name: `<hex>  name` lines, or a lone digest."""
    awk = ("NF == 1 && $1 ~ /^[0-9a-fA-F]+$/ {one = $1; next} "
           "{n = $2; sub(/^\\*/, \"\", n); sub(/^\\.\\//, \"\", n); if (n == f) {print \"want \" tolower($1); "
           "found = 1; exit}} END {if (!found && one != \"\") print \"want \" tolower(one)}")
    return (f"if s=$(fetch {q(sums_url)} - \"$@\"); then printf '%s\\n' \"$s\" | awk -v f={q(name)} '{awk}'\n"
            "else echo 'failed could not download the checksums file'; fi\n")


class GetUrl(TaskModule, name="get_url"):
    description = "Download a file on the target (curl or wget), verify its checksum, rename it into place"
    aliases = {"username": "url_username", "password": "url_password", "attr": "attributes"}
    schema = {
        vol.Required("url"): url,
        vol.Required("dest"): str,
        vol.Optional("checksum", default=None): maybe(checksum),
        **ATTRIBUTES,
        vol.Optional("force", default=False): boolean,
        vol.Optional("timeout", default=10): seconds,
        vol.Optional("headers", default={}): headers,
        vol.Optional("validate_certs", default=True): boolean,
        vol.Optional("url_username", default=None): maybe(text),
        vol.Optional("url_password", default=None): maybe(text),
    }

    @dataclass(frozen=True)
    class Params(FileAttributes):
        url: str
        dest: str
        checksum: str | None = None
        force: bool = False
        timeout: float = 10
        headers: dict[str, str] = field(default_factory=dict, repr=False)
        validate_certs: bool = True
        url_username: str | None = None
        url_password: str | None = field(default=None, repr=False)

        def __post_init__(self) -> None:
            if self.url_password is not None and self.url_username is None:
                raise vol.Invalid("url_password goes with url_username", path=["url_password"])

    @staticmethod
    def header_lines(p: Params) -> str:
        lines = [f"{name}: {value}" for name, value in p.headers.items()]
        if p.url_username is not None:
            token = base64.b64encode(f"{p.url_username}:{p.url_password or ''}".encode()).decode()
            lines.append(f"Authorization: Basic {token}")
        return "".join(line + "\n" for line in lines)

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        result = await self.fetch(p, ctx)
        return await with_flags(ctx, result, result.data.get("dest", p.dest), p.attributes)

    async def fetch(self, p: Params, ctx: TaskContext) -> Result:
        name = url_basename(p.url)
        algorithm, _, want = (p.checksum or "").partition(":")
        parent = p.dest if p.dest.endswith("/") else posixpath.dirname(p.dest) or "."
        probe = (fetch_function(p.timeout, p.validate_certs) +
                 f"d={q(p.dest)}\n"
                 f"case $d in */) d=${{d}}{q(name)};; *) [ -d \"$d\" ] && d=$d/{q(name)};; esac\n"
                 f"printf 'path %s\\n' \"$d\"\n{UMASK_SH}" + stat_sh('"$d"') +
                 f"[ -d {q(parent)} ] && echo parent\n"
                 "for t in curl wget; do command -v $t >/dev/null 2>&1 && echo \"tool $t\"; done\n")
        if algorithm:
            probe += f'if [ -f "$d" ]; then s=$({algorithm}sum < "$d") && echo "sum ${{s%% *}}"; fi\n'
        if URL.match(want):
            probe += sums_sh(want, name)
        stdin = self.header_lines(p) or None
        res = await quiet(ctx, probe + "exit 0\n", stdin=stdin)
        if not res.ok:
            return failure(f"could not inspect {p.dest}", res)
        tags, _ = tagged(res.stdout)
        path, st = first(tags, "path") or p.dest, Stat.parse(first(tags, "stat"))
        umask = int(first(tags, "umask") or "022", 8)
        data = {"dest": path, "url": p.url}
        if "failed" in tags:
            return Result(failed=True, msg=f"{first(tags, 'failed')} {want}: {tail(res.stderr) or 'no message'}",
                          data=data)
        if URL.match(want):
            want = first(tags, "want") or ""
            if not want:
                return Result(failed=True, msg=f"no {algorithm} checksum for {name} in {p.checksum.partition(':')[2]}",
                              data=data)
        if algorithm:
            data["checksum"] = f"{algorithm}:{want}"
        if st and st.kind == "directory":
            return Result(failed=True, msg=f"dest {path} is a directory", data=data)
        if "tool" not in tags:
            return Result(failed=True, msg="get_url needs curl or wget on the target, and neither is there", data=data)
        if "parent" not in tags and not ctx.check:
            return Result(failed=True, msg=f"the directory of {path} does not exist", data=data)
        attrs = Attrs(p.mode, p.owner, p.group)
        regular = st is not None and st.kind == "file"
        if regular and ((algorithm and first(tags, "sum") == want) or (not algorithm and not p.force)):
            changes = attrs.changes(st, umask)
            why = "has the checksum asked for" if algorithm else "exists (force: false)"
            if not changes:
                return Result(msg=f"{path} {why}", data=data)
            if not ctx.check:
                res = await quiet(ctx, " && ".join(attrs.commands(q(path))))
                if not res.ok:
                    return failure(f"could not set the attributes of {path}", res).replace(data=data)
            return Result(changed=True, msg=f"{path}: " + ", ".join(changes), data=data)
        if ctx.check:
            return Result(changed=True, msg=f"would download {p.url} to {path}", data=data)
        res = await quiet(ctx, self.download_script(p, path, algorithm, want, st if regular else None, umask),
                          stdin=stdin)
        if not res.ok:
            return Result(failed=True, msg=f"could not download {p.url}: {tail(res.stderr) or f'exit status {res.rc}'}",
                          data=data)
        if res.stdout.strip().endswith("same"):
            return Result(changed=bool(attrs.changes(st, umask)) if regular else False,
                          msg=f"{path} is up to date", data=data)
        return Result(changed=True, msg=f"downloaded {p.url} to {path}", data=data)

    @staticmethod
    def download_script(p: Params, path: str, algorithm: str, want: str, existing: Stat | None, umask: int) -> str:
        attrs = Attrs(p.mode, p.owner, p.group)
        directory = posixpath.dirname(path) or "."
        script = (fetch_function(p.timeout, p.validate_certs) +
                  f"t={q(posixpath.join(directory, f'.{posixpath.basename(path)}.recipe-{secrets.token_hex(4)}'))}\n"
                  f"trap 'rm -f \"$t\"' EXIT\numask 077\nfetch {q(p.url)} \"$t\" \"$@\" || exit\n")
        tmp = '"$t"'
        if algorithm:
            script += (f"s=$({algorithm}sum < {tmp}) && s=${{s%% *}}\n"
                       f"if [ \"$s\" != {want} ]; then echo \"checksum mismatch: expected {algorithm}:{want}, "
                       f"got {algorithm}:$s\" >&2; exit 1; fi\n")
        if existing is not None:   # force, or a different checksum: replace only what differs
            same = " && ".join(["echo same", *attrs.commands(q(path))])
            script += (f"a=$(sha256sum < {tmp}) && b=$(sha256sum < {q(path)}) && [ \"$a\" = \"$b\" ] && "
                       f"{{ {same}; exit; }}\n")
        return script + " && ".join(place_commands(tmp, path, new_mode(attrs, existing, umask), attrs, existing)) + "\n"

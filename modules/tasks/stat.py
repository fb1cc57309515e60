"""stat: what a path is (type, mode, owner, times, checksum, mime type, attributes), as Ansible's stat says.

One probe script reads everything; it changes nothing, so it runs in check mode too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean
from modules.tasks._remote import first, q, quiet, tagged, text, words
from modules.tasks._statinfo import CHECKSUM_TOOLS, STATINFO_FMT, linux_extras, split_line, statinfo

# lsattr's letters, as Ansible names them
FILE_ATTRIBUTES = {
    "A": "noatime", "a": "append", "c": "compressed", "C": "nocow", "d": "nodump", "D": "dirsync",
    "e": "extents", "E": "encrypted", "h": "blocksize", "i": "immutable", "I": "indexed", "j": "journalled",
    "N": "inline", "s": "zero", "S": "synchronous", "t": "notail", "T": "blockroot", "u": "undelete",
    "X": "compressedraw", "Z": "compresseddirty",
}


def probe_script(p: "Stat.Params") -> str:
    """Tagged lines: path, stat (or error), readable/writeable/executable, link, sum, mime, attr."""
    regular = '[ -f "$p" ] && [ ! -L "$p" ]' if not p.follow else '[ -f "$p" ]'
    lines = [
        "LC_ALL=C; export LC_ALL",
        f"p={q(p.path)}",
        "printf 'path %s\\n' \"$p\"",
        f"if s=$(stat {'-L ' if p.follow else ''}-c {words([STATINFO_FMT])} -- \"$p\" 2>&1); then "
        "printf 'stat %s\\n' \"$s\"; else printf 'error %s\\n' \"$s\"; exit 0; fi",
        '[ -r "$p" ] && echo readable; [ -w "$p" ] && echo writeable; [ -x "$p" ] && echo executable',
        'if [ -L "$p" ]; then printf \'target %s\\n\' "$(readlink -- "$p")"; '
        'printf \'source %s\\n\' "$(readlink -m -- "$p")"; fi',
    ]
    if p.get_checksum:
        lines.append(f'{regular} && [ -r "$p" ] && s=$({CHECKSUM_TOOLS[p.checksum_algorithm]} < "$p") && '
                     'echo "sum ${s%% *}"')
    if p.get_mime:   # without file(1) Ansible says "unknown"; so do we
        lines.append('command -v file >/dev/null && m=$(file -b --mime-type --mime-encoding "$p" 2>/dev/null) && '
                     'printf \'mime %s\\n\' "$m"')
    if p.get_attributes:
        lines.append('command -v lsattr >/dev/null && a=$(lsattr -vd -- "$p" 2>/dev/null) && '
                     'printf \'attr %s\\n\' "$a"')
    return "\n".join(lines) + "\nexit 0\n"


def stat_dict(tags: dict[str, list[str]], p: "Stat.Params") -> dict[str, Any]:
    fields, _ = split_line(first(tags, "stat") or "")
    info = statinfo(fields)
    out: dict[str, Any] = {"exists": True, "path": first(tags, "path"), **info, **linux_extras(fields)}
    for name in ("pw_name", "gr_name"):   # Ansible leaves out a name the target does not know
        if out[name] is None:
            del out[name]
    out.update(readable="readable" in tags, writeable="writeable" in tags, executable="executable" in tags)
    if info["islnk"]:
        out.update(lnk_source=first(tags, "source"), lnk_target=first(tags, "target"))
    if "sum" in tags:
        out["checksum"] = first(tags, "sum")
    if p.get_mime:
        out["mimetype"] = out["charset"] = "unknown"
        mime = first(tags, "mime")
        if mime and ";" in mime:
            kind, _, charset = mime.partition(";")
            out.update(mimetype=kind.strip(), charset=charset.split("=", 1)[-1].strip())
    if p.get_attributes:
        out.update(version=None, attributes=[], attr_flags="")
        attr = (first(tags, "attr") or "").split()
        if len(attr) >= 2:
            flags = attr[1].replace("-", "")
            out.update(version=attr[0], attr_flags=flags,
                       attributes=[FILE_ATTRIBUTES[f] for f in flags if f in FILE_ATTRIBUTES])
    return out


class Stat(TaskModule, name="stat"):
    description = "Report facts about a path: type, mode, owner, size, times, checksum"
    aliases = {"dest": "path", "name": "path", "mime": "get_mime", "mime_type": "get_mime",
               "mime-type": "get_mime", "attr": "get_attributes", "attributes": "get_attributes",
               "checksum": "checksum_algorithm", "checksum_algo": "checksum_algorithm"}
    schema = {
        vol.Required("path"): text,
        vol.Optional("follow", default=False): boolean,
        vol.Optional("get_checksum", default=True): boolean,
        vol.Optional("checksum_algorithm", default="sha1"): vol.In(sorted(CHECKSUM_TOOLS)),
        vol.Optional("get_mime", default=True): boolean,
        vol.Optional("get_attributes", default=True): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        path: str
        follow: bool = False
        get_checksum: bool = True
        checksum_algorithm: str = "sha1"
        get_mime: bool = True
        get_attributes: bool = True

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        res = await quiet(ctx, probe_script(params))
        tags, _ = tagged(res.stdout)
        if not res.ok or not tags.get("path"):
            return Result(failed=True, msg=f"could not stat {params.path}: {res.stderr.strip() or res.rc}")
        error = first(tags, "error")
        if error is not None:
            if "No such file or directory" in error:
                return Result(msg=f"{params.path} does not exist", data={"stat": {"exists": False}})
            reason = error.rsplit(": ", 1)[-1] or error   # "stat: cannot statx 'x': Permission denied"
            return Result(failed=True, msg=reason)
        return Result(msg=f"{params.path} exists", data={"stat": stat_dict(tags, params)})

"""find: list the files under folders that match patterns, age, size, mode or content, as Ansible's find does.

One script lists every entry with `find -exec stat` (one stat line each);
the walk order, the filters and the counts Ansible reports are worked out
here. Only contains and get_checksum read files, in one more round trip.
Changes nothing, so it runs in check mode too.
"""
from __future__ import annotations

import base64
import fnmatch
import posixpath
import re
import stat as st_mod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, integer
from modules.tasks._attrs import target_mode
from modules.tasks._remote import failure, maybe, q, quiet, tagged, text, words
from modules.tasks._statinfo import CHECKSUM_TOOLS, STATINFO_FMT, split_line, statinfo

AGE = re.compile(r"^(-?\d+)(s|m|h|d|w)?$")
SIZE = re.compile(r"^(-?\d+)(b|k|m|g|t)?$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
BYTES = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
FILE_MARK = "--recipe-file--"


def listing(value: Any) -> list[str]:
    """Ansible's list type: a list, or one string of comma-separated items."""
    if isinstance(value, list):
        return [text(item) for item in value]
    return [item.strip() for item in text(value).split(",")]


def matching(regex: re.Pattern) -> Callable[[Any], str]:
    def validate(value: Any) -> str:
        value = text(value).lower()
        if not regex.match(value):
            raise vol.Invalid(f"{value!r} is not valid: use a number with an optional unit, e.g. 2d or -10k")
        return value
    return validate


def amount(value: str | None, regex: re.Pattern, units: dict[str, int]) -> int | None:
    if value is None:
        return None
    number, unit = regex.match(value).groups()
    return int(number) * units.get(unit, 1)


@dataclass
class Entry:
    path: str
    info: dict[str, Any]
    times: dict[str, float]
    is_dir: bool             # as os.walk sorts it: a folder, or a link to one


def list_script(root: str, p: "Find.Params") -> str:
    """Tagged lines: the target's clock, then per entry its stat line (and `dirlink` for links to folders)."""
    levels = (p.depth + 1 if p.depth else None) if p.recurse else 1   # Ansible counts one level past depth
    deep = f"-maxdepth {levels} " if levels else ""
    return ("LC_ALL=C; export LC_ALL\n"
            f"r={q(root)}\nprintf 'now %s\\n' \"$(date +%s)\"\n"
            "if [ ! -d \"$r\" ]; then echo notdir; exit 0; fi\n"
            f"find {'-L ' if p.follow else ''}\"$r\" -mindepth 1 {deep}"
            f"-exec stat -c {words(['entry ' + STATINFO_FMT + ' %n'])} {{}} + "
            "-exec sh -c 'for f; do [ -L \"$f\" ] && [ -d \"$f\" ] && printf \"dirlink %s\\n\" \"$f\"; done; :' "
            "sh {} + 2>/dev/null\nexit 0\n")


def parse_entries(tags: dict[str, list[str]]) -> list[Entry]:
    links = set(tags.get("dirlink", []))
    found = []
    for line in tags.get("entry", []):
        fields, path = split_line(line)
        info = statinfo(fields)
        info["pw_name"], info["gr_name"] = info["pw_name"] or "", info["gr_name"] or ""   # find says ""
        found.append(Entry(path, info, {"atime": info["atime"], "mtime": info["mtime"], "ctime": info["ctime"]},
                           info["isdir"] or path in links))
    return found


def walk_order(root: str, entries: list[Entry], p: "Find.Params") -> Iterator[tuple[Entry, int]]:
    """os.walk's order (each folder's files, then its folders, then into each), with each entry's depth."""
    children: dict[str, list[Entry]] = {}
    for entry in entries:
        children.setdefault(posixpath.dirname(entry.path), []).append(entry)

    def walk(folder: str, level: int) -> Iterator[tuple[Entry, int]]:
        inside = children.get(folder, [])
        ordered = [e for e in inside if not e.is_dir] + [e for e in inside if e.is_dir]
        for entry in ordered:
            yield entry, level
        if not p.recurse or (p.depth and level > p.depth):
            return
        for entry in ordered:
            if entry.is_dir and (p.follow or not entry.info["islnk"]):
                yield from walk(entry.path, level + 1)

    yield from walk(root.rstrip("/") or "/", 1)


def name_matches(name: str, p: "Find.Params") -> bool:
    def hit(patterns: list[str]) -> bool:
        if p.use_regex:
            return any(re.match(item, name) for item in patterns)
        return any(fnmatch.fnmatch(name, item) for item in patterns)
    return hit(p.patterns or [".*" if p.use_regex else "*"]) and not (p.excludes and hit(p.excludes))


def mode_matches(info: dict[str, Any], p: "Find.Params") -> bool:
    if not p.mode:
        return True
    want = int(p.mode, 8) if p.mode.isdigit() else target_mode(p.mode, 0, False, 0)
    have = int(info["mode"], 8)
    return have == st_mod.S_IMODE(want) if p.exact_mode else bool(have & want)


def passes(entry: Entry, now: float, p: "Find.Params") -> bool:
    """Every filter but contains (which needs the file's text), in Ansible's combinations per file_type."""
    info = entry.info
    kind = ("directory" if info["isdir"] else "file" if info["isreg"] else "link" if info["islnk"] else "other")
    if p.file_type != "any" and kind != p.file_type:
        return False
    age, size = amount(p.age, AGE, SECONDS), amount(p.size, SIZE, BYTES)
    old = now - entry.times[p.age_stamp]
    if age is not None and not (old >= abs(age) if age >= 0 else old <= abs(age)):
        return False
    if size is not None and info["isreg"] and not (info["size"] >= abs(size) if size >= 0 else
                                                   info["size"] <= abs(size)):
        return False
    return name_matches(posixpath.basename(entry.path), p) and mode_matches(info, p)


def contains_match(data: bytes, p: "Find.Params") -> bool:
    """Python's text mode (universal newlines), then re.match per line, or re.search over the whole text."""
    text_ = data.decode(p.encoding or "utf-8").replace("\r\n", "\n").replace("\r", "\n")
    if p.read_whole_file:
        return bool(re.search(p.contains, text_))
    return any(re.match(p.contains, line) for line in text_.splitlines(keepends=True))


class Find(TaskModule, name="find"):
    description = "List files under folders by name pattern, type, age, size, mode or content"
    aliases = {"name": "paths", "path": "paths", "pattern": "patterns", "exclude": "excludes",
               "checksum": "checksum_algorithm", "checksum_algo": "checksum_algorithm"}
    schema = {
        vol.Required("paths"): listing,
        vol.Optional("patterns", default=[]): listing,
        vol.Optional("excludes", default=None): maybe(listing),
        vol.Optional("contains", default=None): maybe(text),
        vol.Optional("read_whole_file", default=False): boolean,
        vol.Optional("file_type", default="file"): vol.In(["any", "directory", "file", "link"]),
        vol.Optional("age", default=None): maybe(matching(AGE)),
        vol.Optional("age_stamp", default="mtime"): vol.In(["atime", "ctime", "mtime"]),
        vol.Optional("size", default=None): maybe(matching(SIZE)),
        vol.Optional("recurse", default=False): boolean,
        vol.Optional("hidden", default=False): boolean,
        vol.Optional("follow", default=False): boolean,
        vol.Optional("get_checksum", default=False): boolean,
        vol.Optional("checksum_algorithm", default="sha1"): vol.In(sorted(CHECKSUM_TOOLS)),
        vol.Optional("use_regex", default=False): boolean,
        vol.Optional("depth", default=None): maybe(integer),
        vol.Optional("mode", default=None): maybe(text),
        vol.Optional("exact_mode", default=True): boolean,
        vol.Optional("encoding", default=None): maybe(text),
        vol.Optional("limit", default=None): maybe(vol.All(integer, vol.Range(min=1))),
    }

    @dataclass(frozen=True)
    class Params:
        paths: list[str]
        patterns: list[str] = field(default_factory=list)
        excludes: list[str] | None = None
        contains: str | None = None
        read_whole_file: bool = False
        file_type: str = "file"
        age: str | None = None
        age_stamp: str = "mtime"
        size: str | None = None
        recurse: bool = False
        hidden: bool = False
        follow: bool = False
        get_checksum: bool = False
        checksum_algorithm: str = "sha1"
        use_regex: bool = False
        depth: int | None = None
        mode: str | None = None
        exact_mode: bool = True
        encoding: str | None = None
        limit: int | None = None

        def __post_init__(self) -> None:
            for option, patterns in (("patterns", self.patterns), ("excludes", self.excludes or [])):
                for item in patterns if self.use_regex else []:
                    try:
                        re.compile(item)
                    except re.error as exc:
                        raise vol.Invalid(f"{item!r} is not a valid regular expression: {exc}", path=[option])

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        files: list[dict[str, Any]] = []
        skipped: dict[str, str] = {}
        examined, limited = 0, False
        for root in params.paths:
            res = await quiet(ctx, list_script(root, params))
            if not res.ok:
                return failure(f"could not list {root}", res)
            tags, _ = tagged(res.stdout)
            if "notdir" in tags:
                skipped[root] = f"'{root}' is not a directory"
                continue
            now = float((tags.get("now") or ["0"])[0])
            picked, looked = [], 0
            for entry, level in walk_order(root, parse_entries(tags), params):
                looked += 1          # Ansible's examined: every entry of every folder walked
                if unlisted(entry, level, params) or not passes(entry, now, params):
                    continue
                picked.append(entry)
            examined += looked
            picked = await self._read_filters(ctx, picked, params)
            for entry in picked:
                files.append({"path": entry.path, **entry.info})
                if len(files) == params.limit:
                    limited = True
                    break
            if limited:
                break
        if params.get_checksum:
            await self._checksums(ctx, files, params)
        msg = ("Not all paths examined, check warnings for details" if skipped else
               "Limit of matches reached" if limited else "All paths examined")
        return Result(msg=msg, data={"files": files, "matched": len(files), "examined": examined,
                                     "skipped_paths": skipped, "msg": msg})

    @staticmethod
    async def _read_filters(ctx: TaskContext, picked: list[Entry], p: Params) -> list[Entry]:
        """contains: only regular files (file_type file) whose text matches."""
        if p.contains is None or p.file_type != "file" or not picked:
            return picked
        script = "".join(f"echo {FILE_MARK}; base64 < {q(e.path)} 2>/dev/null\n" for e in picked)
        res = await quiet(ctx, script + "exit 0\n")
        chunks = res.stdout.split(FILE_MARK + "\n")[1:]
        kept = []
        for entry, chunk in zip(picked, chunks):
            try:
                if contains_match(base64.b64decode("".join(chunk.split())), p):
                    kept.append(entry)
            except (UnicodeDecodeError, LookupError):
                continue     # Ansible skips a file it cannot decode
        return kept

    @staticmethod
    async def _checksums(ctx: TaskContext, files: list[dict[str, Any]], p: Params) -> None:
        regular = [f for f in files if f["isreg"]]
        if not regular:
            return
        tool = CHECKSUM_TOOLS[p.checksum_algorithm]
        script = "".join(f"s=$({tool} < {q(f['path'])}) && echo \"sum ${{s%% *}}\" || echo sum -\n"
                         for f in regular)
        tags, _ = tagged((await quiet(ctx, script)).stdout)
        for entry, value in zip(regular, tags.get("sum", [])):
            entry["checksum"] = value


def unlisted(entry: Entry, level: int, p: Find.Params) -> bool:
    """Entries Ansible looks at but never lists: deeper than depth, or hidden (their folders are still walked)."""
    if p.depth and level > p.depth:
        return True
    return posixpath.basename(entry.path).startswith(".") and not p.hidden

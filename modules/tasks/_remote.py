"""Shell helpers the task modules share: quoting, probes, staging data, installing files.

The target has a POSIX shell and coreutils, nothing more, so every probe is a
small sh script whose output is tagged lines ("stat 81a4 12 0 0 ...") that
Python parses; every decision is made here, on the controller.
"""
from __future__ import annotations

from dataclasses import dataclass

import difflib
import posixpath
import re
import secrets
import shlex
from typing import Any, Callable, ClassVar

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext
from engine.recipe.kv import parse_kv
from engine.recipe.schema import HintedInvalid, boolean, file_mode, positive_number
from engine.remote.connection import CommandResult
from modules.tasks._attrs import STAT_FMT, Attrs, Stat

CONTENT = "--recipe-content--"       # everything after this line is file content
DIFF_LIMIT = 256 * 1024              # bigger files are compared by checksum only
DIFF_LINES = 200
INLINE_LIMIT = 64 * 1024             # smaller payloads ride on a script's stdin instead of an upload


class NamedFreeForm:
    """For modules whose free-form shorthand is also a named option (apt: nginx, but also apt: name=nginx):
    a string whose words are all key=value, one of them that option, is Ansible's key=value form.

    TaskModule's parser leaves `name=` to the free form, which is right for command and shell (whose
    `cmd=` Ansible never parses out of a command line), not for these.
    """

    free_form: ClassVar[str | None]

    @classmethod
    def normalize(cls, args: Any) -> Any:
        if isinstance(args, str) and cls.free_form:
            parsed = parse_kv(args)
            if not parsed.free_form and cls.free_form in parsed.options:
                args = parsed.options
        return super().normalize(args)  # type: ignore[misc]


def maybe(validator: Any) -> Callable[[Any], Any]:
    """None or validator; voluptuous validates defaults too, and vol.Any would hide the hint."""
    compiled = vol.Schema(validator)
    return lambda value: None if value is None else compiled(value)


def text(value: Any) -> str:
    """A string; YAML numbers (line: 42, argv: [sleep, 1]) are accepted as their text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise vol.Invalid(f"expected a string, got {type(value).__name__}")
    return str(value)


def seconds(value: Any) -> float:
    """A duration as Ansible's int options take one: 30, 2.5 or "30" (a key=value string's text)."""
    if isinstance(value, str) and re.match(r"^\s*\d+(\.\d*)?\s*$", value):
        value = float(value)
    return positive_number(value)


def pattern(value: Any) -> str:
    """A Python regular expression, compiled once here so a typo is reported before anything runs."""
    value = text(value)
    try:
        re.compile(value)
    except re.error as exc:
        raise vol.Invalid(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


def flags(value: Any) -> str:
    """chattr's attribute letters as Ansible's `attributes` takes them: "i", "+i", "-a", "=ie"."""
    value = text(value).strip()
    if not re.match(r"^[-+=]?[A-Za-z]*$", value):
        raise HintedInvalid(f"{value!r} is not a set of file attributes", hint='use chattr letters, e.g. "+i" or "-a"')
    return value


def mode_or_preserve(value: Any) -> str:
    """copy's and template's mode: a file mode, or "preserve" (the source's own)."""
    return "preserve" if value == "preserve" else file_mode(value)


# The attributes every file-writing module takes, in one place. unsafe_writes is accepted as Ansible's
# is: the new file is always renamed into place, which is the safe write it falls back from.
ATTRIBUTES = {
    vol.Optional("mode", default=None): maybe(file_mode),
    vol.Optional("owner", default=None): maybe(text),
    vol.Optional("group", default=None): maybe(text),
    vol.Optional("attributes", default=None): maybe(flags),
    vol.Optional("unsafe_writes", default=False): boolean,
}


@dataclass(frozen=True, kw_only=True)
class FileAttributes:
    """The Params fields for ATTRIBUTES, which a file module's Params inherits (keyword-only, so they may
    follow its own required fields)."""

    mode: str | None = None
    owner: str | None = None
    group: str | None = None
    attributes: str | None = None
    unsafe_writes: bool = False


def q(path: str) -> str:
    """shlex.quote, except that a leading ~ still means the (become) user's home, as in Ansible."""
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + (shlex.quote(path[1:]) if len(path) > 1 else "")
    return shlex.quote(path)


def tail(text_: str, lines: int = 5, limit: int = 600) -> str:
    kept = [line.strip() for line in text_.strip().splitlines() if line.strip()][-lines:]
    return "; ".join(kept)[-limit:]


def failure(what: str, res: CommandResult) -> Result:
    """A failed Result for an internal script; its stdout may hold file content, so it is not kept."""
    return Result(failed=True, msg=f"{what}: {tail(res.stderr) or f'exit status {res.rc}'}")


async def quiet(ctx: TaskContext, script: str, stdin: bytes | str | None = None,
                become: bool = True) -> CommandResult:
    """Run an internal probe without streaming its output (it may be a whole file) as task output."""
    return await ctx.sh(script, stdin=stdin, become=become, stream=False)


def stat_sh(var: str, tag: str = "stat", follow: bool = False) -> str:
    """A shell line printing `<tag> <stat fields>` or `<tag> absent` for the path in var.

    Probes print straight to stdout rather than through $(...): every fork
    counts on a guest emulated without KVM.
    """
    flag = "-L " if follow else ""
    return f"printf '{tag} '; stat {flag}-c '{STAT_FMT}' {var} 2>/dev/null || echo absent\n"


UMASK_SH = "printf 'umask '; umask\n"


def tagged(stdout: str) -> tuple[dict[str, list[str]], str | None]:
    """Parse `tag value` lines up to the CONTENT marker; return the tags and the content after it."""
    tags: dict[str, list[str]] = {}
    rest = stdout
    while rest:
        line, _, rest = rest.partition("\n")
        if line == CONTENT:
            return tags, rest
        key, _, value = line.partition(" ")
        tags.setdefault(key, []).append(value)
    return tags, None


def first(tags: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    return tags.get(key, [default])[0]


def _foreign_become(ctx: TaskContext) -> bool:
    return ctx.become is not None and ctx.become.user not in ("root", "0")


def temp_path() -> str:
    return f"/tmp/.recipe-{secrets.token_hex(8)}"


async def payload(ctx: TaskContext, data: bytes) -> tuple[str, bytes | None]:
    """(uploaded path, None), or ("", data) for a script to read from its stdin.

    Small data goes on stdin: the connection's shell is already open, so that
    costs no round trip where SFTP costs several, and any become user can read
    it. Large data is uploaded, which streams instead of passing through a
    here-document.
    """
    if len(data) <= INLINE_LIMIT:
        return "", data
    return await stage(ctx, data), None


async def stage(ctx: TaskContext, data: bytes) -> str:
    """Upload data to a fresh temporary file as the login user; return its path."""
    path = temp_path()
    await ctx.upload(data, path)
    if _foreign_become(ctx):   # the upload is 0600 and the become user is not root: let it read
        await quiet(ctx, f"chmod 0644 {path}", become=False)
    return path


async def unstage(ctx: TaskContext, path: str) -> None:
    """Scripts remove their upload themselves, except where /tmp's sticky bit forbids the become user."""
    if _foreign_become(ctx):
        await quiet(ctx, f"rm -f {path}", become=False)


VALIDATE_FAILED = "--recipe-validate-failed--"   # the install script's line when validate said no


def validate_command(validate: str, path: str) -> str:
    """Ansible's `validate` with %s the file to check: split into words as Ansible's run_command does (no
    shell), each word quoted; a failure prints VALIDATE_FAILED and its status."""
    argv = [word.replace("%s", path) for word in shlex.split(validate)]
    return (f"{{ ({words(argv)}) </dev/null || {{ v=$?; printf '\\n{VALIDATE_FAILED} %s\\n' $v; false; }}; }}")


def backup_command(dest: str) -> str:
    """Copy dest to Ansible's backup name, `<dest>.<pid>.<date>@<time>~` in the target's time, and say it."""
    return (f'{{ b={q(dest)}.$$.$(date +%Y-%m-%d@%H:%M:%S)~ && cp -p {q(dest)} "$b" && '
            'printf \'backup %s\\n\' "$b"; }')


_VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def expanded_word(path: str) -> str:
    """path as a shell word the target expands as Ansible expands a `path` option (expanduser, expandvars):
    a leading ~ and $NAME / ${NAME}; every other character quoted, so nothing else runs (no command
    substitution). An unset variable expands to nothing (expandvars would leave it as written)."""
    words = []
    if path == "~" or path.startswith("~/"):
        words.append('"$HOME"')
        path = path[1:]
    position = 0
    for match in _VARIABLE.finditer(path):
        words += [q(path[position:match.start()])] if match.start() > position else []
        words.append(f'"${{{match.group(1) or match.group(2)}-}}"')
        position = match.end()
    words += [q(path[position:])] if position < len(path) or not words else []
    return "".join(words)


def install_script(upload: str, dest: str, mode: int, attrs: Attrs, existing: Stat | None,
                   backup: bool = False, mkdir: bool = False, validate: str | None = None,
                   keep_source: bool = False) -> str:
    """Copy an upload (or stdin, if upload is "") next to dest, set its attributes, rename it over dest.

    The rename is atomic: readers see the old file or the new one, never half of it. validate checks the
    new file before that rename, so a file it refuses never replaces the old one. Afterwards the script
    prints dest's stat line (tag "after") for the task's return values. keep_source: upload is a file
    of the target's own (copy's remote_src), which stays.
    """
    directory = posixpath.dirname(dest) or "."
    name = posixpath.join(directory, f".{posixpath.basename(dest)}.recipe-{secrets.token_hex(4)}")
    tmp = q(name)
    steps = [f"mkdir -p {q(directory)}"] if mkdir else []
    if backup:
        steps.append(backup_command(dest))
    steps += ["umask 077", f"cat {q(upload) if upload else ''} > {tmp}"]   # unreadable to others until chmod
    steps += place_commands(tmp, dest, mode, attrs, existing, validate_command(validate, name) if validate else "")
    steps.append("{ " + stat_sh(q(dest), "after").rstrip("\n") + "; }")
    steps.append(f"printf 'src %s\\n' {tmp}")     # the copy written (gone now): Ansible registers its upload's
    cleanup = f"rm -f {q(upload) if upload and not keep_source else ''} {tmp} 2>/dev/null"
    return "{ " + " && ".join(steps) + f"; }}; rc=$?; {cleanup}; exit $rc"


def place_commands(tmp: str, dest: str, mode: int, attrs: Attrs, existing: Stat | None,
                   check: str = "") -> list[str]:
    """Give tmp (already quoted, beside dest) its owner and mode, run check on it, then rename it over dest."""
    steps = []
    if existing and existing.kind == "file":           # keep the replaced file's owner where we may
        steps.append(f"{{ chown {existing.uid}:{existing.gid} {tmp} 2>/dev/null || :; }}")
        # and its ACLs and extended attributes, as Ansible's atomic_move does (GNU cp; elsewhere skipped)
        steps.append(f"{{ cp --attributes-only --preserve=mode,xattr {q(dest)} {tmp} 2>/dev/null || :; }}")
    steps += Attrs(None, attrs.owner, attrs.group).commands(tmp)
    return steps + [f"chmod {mode:04o} {tmp}", *([check] if check else []), f"mv -f {tmp} {q(dest)}"]


WHOAMI_SH = "printf 'whoami %s %s\\n' \"$(id -u)\" \"$(id -un)\"\n"


def not_root(tags: dict[str, list[str]], module: str) -> Result | None:
    """A failed Result when the probe's WHOAMI_SH line says the task does not run as root."""
    uid, _, user = (first(tags, "whoami") or "0 root").partition(" ")
    if uid == "0":
        return None
    return Result(failed=True, msg=f"{module} must run as root but runs as {user}; add become: true to the task")


def words(items: list[str] | tuple[str, ...]) -> str:
    """Arguments for a command line, each quoted."""
    return " ".join(shlex.quote(item) for item in items)


def text_diff(before: str | None, after: str, path: str) -> str:
    lines = list(difflib.unified_diff((before or "").splitlines(True), after.splitlines(True),
                                      f"{path} (before)", f"{path} (after)"))
    if len(lines) > DIFF_LINES:
        lines = lines[:DIFF_LINES] + [f"... {len(lines) - DIFF_LINES} more lines\n"]
    # A minified file is one huge line: cut long lines too, or the bound means nothing.
    return "".join((line if len(line) <= 400 else line[:400] + " ...").rstrip("\n") + "\n" for line in lines)

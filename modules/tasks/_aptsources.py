"""What apt_repository and deb822_repository share: one probe reading apt's source files, and apt-get update
with Ansible's retries.

The probe prints each file's name, where a symlink points (Ansible writes through it), its stat line and its
bytes as od's hex dump; the files are edited on the controller and written back with _conffile.write_file.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.build.taskmodule import Result, TaskContext
from modules.tasks._attrs import STAT_FMT, Stat
from modules.tasks._conffile import TextFile
from modules.tasks._remote import UMASK_SH, q, quiet, tail

UPDATE_FAILED = "--recipe-update-failed--"


@dataclass(frozen=True)
class Sources:
    files: dict[str, TextFile]     # by the name Ansible knows the file by (the link, not its target)
    umask: int
    codename: str                  # the target's VERSION_CODENAME ("" when os-release has none)


def sources_probe(paths: list[str], globs: list[tuple[str, str]]) -> str:
    """Shell printing every existing file of paths and of each (directory, pattern) in globs."""
    words = " ".join([*(q(path) for path in paths), *(f"{q(d)}/{pattern}" for d, pattern in globs)])
    return (UMASK_SH + "codename=$(. /etc/os-release 2>/dev/null; echo \"${VERSION_CODENAME:-}\")\n"
            "printf 'codename %s\\n' \"$codename\"\n"
            f"for f in {words}; do\n"
            '  [ -f "$f" ] || continue\n'
            "  printf 'file %s\\n' \"$f\"\n"
            '  [ -L "$f" ] && printf \'target %s\\n\' "$(readlink -f "$f")"\n'
            f"  printf 'stat '; stat -L -c '{STAT_FMT}' \"$f\"\n"
            "  od -An -v -tx1 \"$f\" | sed 's/^/hex/'\n"
            "done\nexit 0\n")


def parse_sources(stdout: str) -> Sources:
    files: dict[str, TextFile] = {}
    umask, codename = 0o022, ""
    name, target, stat, hexes = None, None, None, []

    def close() -> None:
        if name is not None:
            data = bytes.fromhex(" ".join(hexes)).decode("utf-8", "surrogateescape")
            files[name] = TextFile(target or name, Stat.parse(stat), umask, data)

    for line in stdout.splitlines():
        tag, _, value = line.partition(" ")
        if tag == "umask":
            umask = int(value, 8)
        elif tag == "codename":
            codename = value
        elif tag == "file":
            close()
            name, target, stat, hexes = value, None, None, []
        elif tag == "target":
            target = value
        elif tag == "stat":
            stat = value
        elif line.startswith("hex"):
            hexes.append(line[3:])
    close()
    return Sources(files, umask, codename)


async def read_sources(ctx: TaskContext, paths: list[str], globs: list[tuple[str, str]]) -> Sources | Result:
    res = await quiet(ctx, sources_probe(paths, globs))
    if not res.ok:
        return Result(failed=True, msg=f"could not read apt's sources: {tail(res.stderr) or res.rc}")
    return parse_sources(res.stdout)


def retry_delays(retries: int, max_delay: int) -> list[int]:
    """Ansible's back-off between apt-get update attempts: 1, 2, 4... seconds, at most max_delay."""
    return [2 ** retry if 2 ** retry <= max_delay else max_delay for retry in range(retries)]


def update_script(retries: int, max_delay: int) -> str:
    """apt-get update, tried `retries` times; as in Ansible, 0 tries is a failure."""
    delays = " ".join(str(d) for d in retry_delays(retries, max_delay))
    return ("export DEBIAN_FRONTEND=noninteractive LC_ALL=C\n"
            f"for d in {delays}; do\n"
            "  apt-get update -q && exit 0\n"
            "  echo \"apt-get update failed, retrying in $d seconds\" >&2; sleep $d\n"
            f"done\necho {UPDATE_FAILED}; exit 1\n")


async def update_cache(ctx: TaskContext, retries: int, max_delay: int) -> str | None:
    """Run apt-get update as Ansible's update_cache does; None on success, else the failure's words."""
    res = await ctx.sh(update_script(retries, max_delay))
    if res.ok:
        return None
    return f"Failed to update apt cache after {retries} retries: {tail(res.stderr) or 'unknown reason'}"

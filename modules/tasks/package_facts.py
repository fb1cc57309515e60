"""package_facts: the installed packages as Ansible's `packages` fact, {name: [{name, version, arch, ...}]}.

One script tries the asked managers in Ansible's order and prints each one's listing; the parsing is here.
On Debian one dpkg-query lists the packages; Ansible (through python-apt) also reports each version's
`origin`, the Origin of the first package file apt knows it from ("" for a version only dpkg knows), which
needs apt-cache policy: once for every installed package (which file each version comes from), and once
for the files' release lines (which origin each file has).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from modules.tasks._remote import failure, quiet, tagged, text

# Ansible's manager names (sorted, as its auto order), then its aliases; the ones recipe reads have a probe
MANAGERS = ("apk", "apt", "pacman", "pkg", "pkg_info", "portage", "rpm")
ALIASES = {"dnf": "rpm", "dnf5": "rpm", "yum": "rpm", "zypper": "rpm", "pkg5": "pkg", "pkgng": "pkg",
           "openbsd_pkg": "pkg_info"}
GONE = ("not-installed", "config-files")     # dpkg states in which apt has no installed version

# Each probe prints `found <manager>` when the manager is there, then its listing as `<manager> <line>`.
APT_SH = r"""if command -v dpkg-query >/dev/null 2>&1 && { command -v apt >/dev/null 2>&1 ||
   command -v apt-get >/dev/null 2>&1 || command -v aptitude >/dev/null 2>&1; }; then
  echo 'found apt'
  # apt's names: name:arch for a foreign architecture only (dpkg's binary:Package qualifies Multi-Arch: same too)
  list=$(dpkg-query -W -f='${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\t${Section}\n' \
    2>/dev/null | awk -F'\t' -v OFS='\t' -v native="$(dpkg --print-architecture 2>/dev/null)" \
    '$4 != native && $4 != "all" && $4 != "none" && $4 != "" {$2 = $2 ":" $4} {print}') ||
    echo 'error apt dpkg-query failed'
  printf '%s\n' "$list" | sed -n 's/^/apt /p'
  if command -v apt-cache >/dev/null 2>&1; then
    LC_ALL=C apt-cache policy 2>/dev/null | awk '/^ *-?[0-9]+ / {sub(/^ *-?[0-9]+ /, ""); f = $0; next}
      /^ +release / {sub(/^ +release /, ""); print "aptfile " f "\t" $0}'
    installed=$(printf '%s\n' "$list" | awk -F'\t' '$1 != "not-installed" && $1 != "config-files" && $2 != ""')
    LC_ALL=C apt-cache show -- $(printf '%s\n' "$installed" | awk -F'\t' '{print $2 "=" $3}') 2>/dev/null |
      awk '/^Package: / {p = $2} /^Architecture: / {a = $2} /^Section: / {s = $2}
        /^$/ {if (p != "") print "aptsection " p "\t" a "\t" s; p = ""; a = ""; s = ""}'
    LC_ALL=C apt-cache policy -- $(printf '%s\n' "$installed" | cut -f2) 2>/dev/null | awk '
      /^[^ ]/ {n = substr($0, 1, length($0) - 1); want = 0; next}
      /^ \*\*\* / {want = 1; next}
      want && /^        / {sub(/^ +-?[0-9]+ /, ""); print "aptfrom " n "\t" $0; want = 0; next}
      /^     [^ ]/ {want = 0}'
  fi
fi
"""
RPM_SH = r"""if command -v rpm >/dev/null 2>&1; then
  echo 'found rpm'
  rpm -qa --qf 'rpm %{NAME}\t%{VERSION}\t%{RELEASE}\t%{EPOCH}\t%{ARCH}\n' 2>/dev/null || echo 'error rpm rpm -qa failed'
fi
"""
APK_SH = r"""if command -v apk >/dev/null 2>&1; then
  echo 'found apk'
  apk info -v 2>/dev/null | sed 's/^/apk /' || echo 'error apk apk info failed'
fi
"""
PACMAN_SH = r"""if command -v pacman >/dev/null 2>&1; then
  echo 'found pacman'
  LC_ALL=C pacman -Qi 2>/dev/null | sed 's/^/pacman /' || echo 'error pacman pacman -Qi failed'
fi
"""
PKG_INFO_SH = r"""if command -v pkg_info >/dev/null 2>&1; then
  echo 'found pkg_info'
  pkg_info -a 2>/dev/null | sed 's/^/pkg_info /' || echo 'error pkg_info pkg_info -a failed'
fi
"""

Package = dict[str, Any]


def manager_names(value: Any) -> list[str]:
    """Ansible's `manager`: a name or a list, lower-cased; auto stands for every manager in Ansible's order."""
    names = [text(item).lower() for item in (value if isinstance(value, list) else [value])]
    unknown = [n for n in names if n != "auto" and n not in MANAGERS and n not in ALIASES]
    if unknown:
        raise vol.Invalid(f"Unsupported package managers requested: {', '.join(unknown)} "
                          f"(known: auto, {', '.join(MANAGERS + tuple(ALIASES))})")
    return names


def parse_apt(lines: list[str], files: list[str], sources: list[str], sections: list[str]) -> list[Package]:
    """dpkg-query's rows, with each installed version's origin from apt-cache policy's lines, and its section
    as apt has it: the index's (Debian's overrides), not the one in the package that dpkg keeps."""
    origin_of = {}
    for line in files:       # "<file>\t<release fields>": o= is the origin
        where, _, release = line.partition("\t")
        fields = dict(part.split("=", 1) for part in release.split(",") if "=" in part)
        origin_of[where] = fields.get("o", "")
    first_file = dict(line.split("\t", 1) for line in sources if "\t" in line)
    section_of = {}
    for line in sections:    # "<package>\t<arch>\t<section>"
        package, arch, section = (line.split("\t") + ["", ""])[:3]
        section_of[package, arch] = section or None
    found = []
    for line in lines:
        fields = line.split("\t")
        if len(fields) < 5 or fields[0] in GONE or not fields[1]:
            continue
        _, name, version, arch, section = fields[:5]
        category = section_of.get((name.partition(":")[0], arch), section or None)
        found.append({"name": name, "version": version, "arch": arch, "category": category,
                      "origin": origin_of.get(first_file.get(name, ""), "")})
    return found


def parse_rpm(lines: list[str]) -> list[Package]:
    """rpm's fields as python-rpm gives them to Ansible: a missing epoch or arch is the text "None"."""
    found = []
    for line in lines:
        fields = [("None" if f == "(none)" else f) for f in line.split("\t")]
        if len(fields) == 5:
            found.append(dict(zip(("name", "version", "release", "epoch", "arch"), fields)))
    return found


def parse_apk(lines: list[str]) -> list[Package]:
    """`name-version-release`, split from the right as Ansible does."""
    found = []
    for line in filter(None, lines):
        parts = line.rsplit("-", 2)
        found.append(dict(zip(("name", "version", "release"), parts)) if len(parts) == 3
                     else {"name": line, "version": "", "release": ""})
    return found


def parse_pacman(lines: list[str]) -> list[Package]:
    """`pacman -Qi` blocks: `Key : value` lines, continuation lines joined with two spaces."""
    found, details, last = [], {}, None
    for line in [*lines, ""]:
        if not line.strip():
            if details:
                provides = details.get("Provides", "None")
                found.append({"name": details.get("Name", ""), "version": details.get("Version", ""),
                              "arch": details.get("Architecture", ""),
                              "provides": None if provides == "None" else [p.split("=")[0]
                                                                           for p in provides.split("  ")]})
            details, last = {}, None
            continue
        match = re.match(r"([\w ]*[\w]) +: (.*)", line)
        if match:
            last = match.group(1)
            details[last] = match.group(2)
        elif last is not None:
            details[last] += "  " + line.lstrip()
    return found


def parse_pkg_info(lines: list[str]) -> list[Package]:
    found = []
    for line in filter(None, lines):
        parts = line.split(maxsplit=1)[0].rsplit("-", 1)
        found.append({"name": parts[0], "version": parts[1]} if len(parts) == 2 else {"name": line, "version": ""})
    return found


@dataclass(frozen=True)
class Reader:
    probe: str
    parse: Callable[[dict[str, list[str]]], list[Package]]


READERS = {
    "apt": Reader(APT_SH, lambda tags: parse_apt(tags.get("apt", []), tags.get("aptfile", []),
                                                 tags.get("aptfrom", []), tags.get("aptsection", []))),
    "rpm": Reader(RPM_SH, lambda tags: parse_rpm(tags.get("rpm", []))),
    "apk": Reader(APK_SH, lambda tags: parse_apk(tags.get("apk", []))),
    "pacman": Reader(PACMAN_SH, lambda tags: parse_pacman(tags.get("pacman", []))),
    "pkg_info": Reader(PKG_INFO_SH, lambda tags: parse_pkg_info(tags.get("pkg_info", []))),
}


def order(asked: list[str]) -> list[str]:
    """Ansible's order: the asked managers, auto replaced by all of them after the rest; aliases resolved,
    each manager once."""
    names = [n for n in asked if n != "auto"] + (list(MANAGERS) if "auto" in asked else [])
    return list(dict.fromkeys(ALIASES.get(name, name) for name in names))


def collect(managers: list[str], strategy: str, tags: dict[str, list[str]]) -> dict[str, list[Package]]:
    """The packages fact from the probe's output: by name, each version a dict with its `source`."""
    packages: dict[str, list[Package]] = {}
    for manager in managers:
        if strategy == "first" and packages:
            break
        if manager not in READERS or manager not in tags.get("found", []):
            continue
        for package in READERS[manager].parse(tags):
            package.setdefault("source", manager)
            packages.setdefault(package["name"], []).append(package)
    return packages


class PackageFacts(TaskModule, name="package_facts"):
    description = "Gather the installed packages as the `packages` fact (apt/dpkg, rpm, apk, pacman, pkg_info)"
    schema = {
        vol.Optional("manager", default=["auto"]): manager_names,
        vol.Optional("strategy", default="first"): vol.In(["first", "all"]),
    }

    @dataclass(frozen=True)
    class Params:
        manager: list[str]
        strategy: str = "first"

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        managers = order(p.manager)
        readable = [m for m in managers if m in READERS]
        if not readable:
            return Result(failed=True, msg=f"recipe cannot read packages with {', '.join(managers)} "
                                           f"(it reads {', '.join(READERS)})")
        res = await quiet(ctx, "".join(READERS[m].probe for m in readable) + "exit 0\n", become=False)
        if not res.ok:
            return failure("could not list the installed packages", res)
        tags, _ = tagged(res.stdout)
        packages = collect(readable, p.strategy, tags)
        if not packages:
            errors = "; ".join(tags.get("error", []))
            return Result(failed=True, msg=f"Could not detect a supported package manager from the following list: "
                                           f"{managers}" + (f" ({errors})" if errors else ""))
        facts = {"packages": packages}
        return Result(msg=f"{len(packages)} packages", facts=facts, data={"ansible_facts": facts})

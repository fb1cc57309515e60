"""Facts about the guest, gathered at connect with one POSIX shell command."""
from __future__ import annotations

from typing import Any

from engine.build.ansible_probe import PROBE, header, split_sections
from engine.errors import BuildError
from engine.remote.connection import Connection

PROBE_KEY = "_probe"    # the sections engine.build.ansible_facts reads; not one of recipe's documented facts

# recipe's own facts (key=value lines), then the sections Ansible's facts are computed from: one round trip.
RECIPE_PROBE = r"""
(
  [ -r /etc/os-release ] && . /etc/os-release
  printf 'os_id=%s\n' "${ID:-unknown}"
  printf 'os_version=%s\n' "${VERSION_ID:-}"
  printf 'os_like=%s\n' "${ID_LIKE:-}"
  printf 'os_name=%s\n' "${PRETTY_NAME:-}"
  printf 'os_codename=%s\n' "${VERSION_CODENAME:-}"
)
printf 'arch=%s\n' "$(uname -m)"
printf 'kernel=%s\n' "$(uname -r)"
printf 'hostname=%s\n' "$(hostname 2>/dev/null || uname -n)"
printf 'user=%s\n' "$(id -un)"
printf 'home=%s\n' "$HOME"
printf 'cpus=%s\n' "$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
printf 'memory_mb=%s\n' "$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo 2>/dev/null)"
if [ -d /run/systemd/system ]; then echo init=systemd; else echo init=other; fi
for m in apt-get dnf yum apk zypper pacman; do
  if command -v "$m" >/dev/null 2>&1; then printf 'pkg_mgr=%s\n' "$m"; break; fi
done
"""
GATHER = RECIPE_PROBE + PROBE

FAMILIES = {
    "debian": "debian", "ubuntu": "debian", "raspbian": "debian",
    "rhel": "redhat", "fedora": "redhat", "centos": "redhat", "rocky": "redhat", "almalinux": "redhat",
    "amzn": "redhat", "alpine": "alpine", "sles": "suse", "opensuse": "suse", "suse": "suse", "arch": "arch",
}


def parse_facts(text: str) -> dict[str, Any]:
    """recipe's documented facts, plus the probe's raw sections under PROBE_KEY (see ansible_facts)."""
    facts: dict[str, Any] = {}
    for line in header(text).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key.strip()] = value.strip()
    for key in ("cpus", "memory_mb"):
        facts[key] = int(facts[key]) if str(facts.get(key, "")).isdigit() else 0
    facts.setdefault("pkg_mgr", "")
    if facts["pkg_mgr"] == "apt-get":
        facts["pkg_mgr"] = "apt"
    candidates = [facts.get("os_id", ""), *str(facts.get("os_like", "")).split()]
    facts["os_family"] = next((FAMILIES[c] for c in candidates if c in FAMILIES), facts.get("os_id", "unknown"))
    facts[PROBE_KEY] = split_sections(text)
    return facts


async def gather_facts(connection: Connection) -> dict[str, Any]:
    result = await connection.run(GATHER, timeout=60)
    if result.rc != 0:
        raise BuildError(f"could not gather facts (rc={result.rc}): {result.stderr.strip()[-300:]}",
                         hint="the target needs a POSIX shell at /bin/sh")
    return parse_facts(result.stdout)

"""What the systemd and service_facts modules share: `systemctl show` parsing and Ansible's chroot test."""
from __future__ import annotations

import re
from typing import Iterable

import voluptuous as vol

UNIT = re.compile(r"^[A-Za-z0-9@_.:\\-]+$")

# Ansible's is_chroot: / is not PID 1's root; where /proc/1/root cannot be read (not root, no /proc), / is
# not the root inode of its filesystem (2; 256 on btrfs, 128 on xfs). SYSTEMD_OFFLINE=1 counts as one too.
CHROOT_SH = (
    "if [ -n \"${debian_chroot:-}\" ] || [ \"${SYSTEMD_OFFLINE:-}\" = 1 ]; then echo chroot\n"
    "elif p=$(stat -Lc %d:%i /proc/1/root/. 2>/dev/null); then [ \"$(stat -c %d:%i /)\" != \"$p\" ] && echo chroot\n"
    "else case $(stat -f -c %T / 2>/dev/null) in btrfs) r=256;; xfs) r=128;; *) r=2;; esac\n"
    "  [ \"$(stat -c %i /)\" != \"$r\" ] && echo chroot\nfi\n")


def unit_name(value: object) -> str:
    if not isinstance(value, str) or not UNIT.match(value) or value.startswith("-"):
        raise vol.Invalid(f"{value!r} is not a unit name (no glob patterns, spaces or leading '-')")
    return value


def parse_show(lines: Iterable[str]) -> dict[str, str]:
    """`systemctl show` output as a dict, as Ansible parses it: an Exec*= value in braces may span lines."""
    parsed: dict[str, str] = {}
    key, pending = None, []
    for line in lines:
        if key is not None:
            pending.append(line)
            if line.rstrip().endswith("}"):
                parsed[key] = "\n".join(pending).strip()
                key, pending = None, []
            continue
        if "=" not in line:
            continue
        name, value = line.split("=", 1)
        if name.startswith("Exec") and value.lstrip().startswith("{") and not value.rstrip().endswith("}"):
            key, pending = name, [value]
            continue
        parsed[name] = value.strip()
    return parsed


def running(status: dict[str, str]) -> bool:
    return status.get("ActiveState") in ("active", "activating")

"""Ansible's hardware and virtualization facts from the probe: cpu, memory, DMI, uptime, mounts
(after ansible/module_utils/facts/hardware/linux.py) and virtualization_* (virtual/linux.py).

Not gathered: devices, device_links and lvm (they cost a walk of /sys/block and LVM commands on every build).
"""
from __future__ import annotations

import re
from typing import Any

from engine.build.ansible_facts_system import Probe
from engine.build.ansible_probe import DMI_DIR

MEMORY_TOP = ("MemTotal", "SwapTotal", "MemFree", "SwapFree")
MEMORY_ALL = (*MEMORY_TOP, "Buffers", "Cached", "SwapCached")

FORM_FACTOR = ["Unknown", "Other", "Unknown", "Desktop", "Low Profile Desktop", "Pizza Box", "Mini Tower", "Tower",
               "Portable", "Laptop", "Notebook", "Hand Held", "Docking Station", "All In One", "Sub Notebook",
               "Space-saving", "Lunch Box", "Main Server Chassis", "Expansion Chassis", "Sub Chassis",
               "Bus Expansion Chassis", "Peripheral Chassis", "RAID Chassis", "Rack Mount Chassis", "Sealed-case PC",
               "Multi-system", "CompactPCI", "AdvancedTCA", "Blade", "Blade Enclosure", "Tablet", "Convertible",
               "Detachable", "IoT Gateway", "Embedded PC", "Mini PC", "Stick PC"]
DMI_FACTS = {"bios_date": "bios_date", "bios_vendor": "bios_vendor", "bios_version": "bios_version",
             "board_asset_tag": "board_asset_tag", "board_name": "board_name", "board_serial": "board_serial",
             "board_vendor": "board_vendor", "board_version": "board_version",
             "chassis_asset_tag": "chassis_asset_tag", "chassis_serial": "chassis_serial",
             "chassis_vendor": "chassis_vendor", "chassis_version": "chassis_version", "form_factor": "chassis_type",
             "product_name": "product_name", "product_serial": "product_serial", "product_uuid": "product_uuid",
             "product_version": "product_version", "system_vendor": "sys_vendor"}
OCTAL_ESCAPE = re.compile(r"\\[0-9]{3}")


def memory_facts(probe: Probe) -> dict[str, Any]:
    stats: dict[str, int] = {}
    facts: dict[str, Any] = {}
    for line in probe.lines("meminfo"):
        key, _, rest = line.partition(":")
        if key in MEMORY_ALL and rest.split():
            stats[key.lower()] = int(rest.split()[0]) // 1024
            if key in MEMORY_TOP:
                facts[f"{key.lower()}_mb"] = stats[key.lower()]
    if not stats:
        return {}
    get = stats.get
    nocache_free = get("cached", 0) + get("memfree", 0) + get("buffers", 0) \
        if None not in (get("cached"), get("memfree"), get("buffers")) else None
    facts["memory_mb"] = {
        "real": {"total": get("memtotal"), "free": get("memfree"),
                 "used": _minus(get("memtotal"), get("memfree"))},
        "nocache": {"free": nocache_free, "used": _minus(get("memtotal"), nocache_free)},
        "swap": {"total": get("swaptotal"), "free": get("swapfree"), "used": _minus(get("swaptotal"), get("swapfree")),
                 "cached": get("swapcached")},
    }
    return facts


def _minus(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b


def cpu_facts(probe: Probe, architecture: str, nproc: int) -> dict[str, Any]:
    """processor_* as Ansible counts them from /proc/cpuinfo (sockets by physical id, threads by siblings)."""
    lines = probe.lines("cpuinfo")
    if not lines:
        return {}
    facts: dict[str, Any] = {"processor": []}
    counts = {"vendor_id": 0, "model name": 0, "processor": 0}
    sockets: dict[str, int] = {}
    cores: dict[str, int] = {}
    physid = coreid = "0"
    total = 0
    for line in lines:
        key, _, val = line.partition(":")
        key, val = key.strip(), val.strip()
        if key == "flags":
            facts["flags"] = val.split()
        if key in ("model name", "Processor", "vendor_id", "cpu", "Vendor", "processor"):
            facts["processor"].append(val)
            counts[key] = counts.get(key, 0) + 1
            total += 1
        elif key == "physical id":
            physid = val
            sockets.setdefault(physid, 1)
        elif key == "core id":
            coreid = val
            if coreid not in sockets:      # sic: Ansible tests sockets here, not cores
                cores[coreid] = 1
        elif key == "cpu cores":
            sockets[physid] = int(val)
        elif key == "siblings":
            cores[coreid] = int(val)
    if counts["vendor_id"] and counts["vendor_id"] == counts["model name"]:
        total = counts["vendor_id"]
    if architecture.startswith(("armv", "aarch", "ppc")):
        total = counts["processor"]
    facts["processor_count"] = len(sockets) if sockets else total
    socket_values = list(sockets.values())
    facts["processor_cores"] = socket_values[0] if socket_values and socket_values[0] else 1
    core_values = list(cores.values())
    facts["processor_threads_per_core"] = round((core_values[0] if core_values else 1) / facts["processor_cores"])
    facts["processor_vcpus"] = facts["processor_threads_per_core"] * facts["processor_count"] * facts["processor_cores"]
    facts["processor_nproc"] = nproc or counts["processor"]
    return facts


def dmi_values(probe: Probe) -> dict[str, str]:
    """{file name: content} of the DMI files the probe could read (grep -H: path:content)."""
    values = {}
    for line in probe.lines("dmi"):
        path, sep, content = line.partition(":")
        if sep and path.startswith(DMI_DIR + "/"):
            values[path[len(DMI_DIR) + 1:]] = content.strip()
    return values


def dmi_facts(probe: Probe) -> dict[str, Any]:
    """Unreadable or empty files say NA, as in Ansible; without /sys's DMI, everything is NA (no dmidecode)."""
    if f"{DMI_DIR}/product_name" not in probe.exists:
        return dict.fromkeys(DMI_FACTS, "NA")
    values = dmi_values(probe)
    facts = {key: values.get(name) or "NA" for key, name in DMI_FACTS.items()}
    chassis = values.get("chassis_type")
    if chassis:
        try:
            facts["form_factor"] = FORM_FACTOR[int(chassis)]
        except (IndexError, ValueError):
            facts["form_factor"] = f"unknown ({chassis})"
    return facts


def uptime_facts(probe: Probe) -> dict[str, Any]:
    words = (probe.text("uptime") or "").split(" ")
    try:
        return {"uptime_seconds": int(float(words[0]))}
    except ValueError:
        return {}


def mount_facts(probe: Probe) -> dict[str, Any]:
    binds = _bind_mounts(probe)
    uuids = {words[0]: words[1] for words in map(str.split, probe.lines("lsblk")) if len(words) == 2}
    sizes = {line.split(" ", 1)[0]: line.split()[1:] for line in probe.lines("statfs")}
    mounts = []
    for line in probe.lines("mtab"):
        raw = line.split()
        if len(raw) < 6:
            continue
        fields = [OCTAL_ESCAPE.sub(lambda m: chr(int(m.group()[1:], 8)), word) for word in raw]
        device, mount, fstype, options = fields[:4]
        if not device.startswith(("/", "\\")) and ":/" not in device or fstype == "none":
            continue
        info: dict[str, Any] = {"mount": mount, "device": device, "fstype": fstype, "options": options,
                                "dump": int(fields[4]), "passno": int(fields[5])}
        if mount in binds and not re.match(r'.*bind.*"', options):
            info["options"] += ",bind"
        info.update(_statfs(sizes.get(raw[1], [])))
        info["uuid"] = uuids.get(device) or "N/A"
        mounts.append(info)
    return {"mounts": mounts}


def _bind_mounts(probe: Probe) -> set[str]:
    """Targets whose findmnt SOURCE has a [/dir] part: what Ansible marks `bind`."""
    return {words[0] for words in map(str.split, probe.lines("findmnt")) if len(words) >= 2
            and re.match(r".*\]", words[1])}


def _statfs(numbers: list[str]) -> dict[str, int]:
    """stat -f's %S %s %b %a %c %d as Ansible's get_mount_size names them."""
    if len(numbers) != 6 or not all(n.isdigit() for n in numbers):
        return {}
    frsize, bsize, blocks, bavail, files, ffree = map(int, numbers)
    return {"size_total": frsize * blocks, "size_available": frsize * bavail, "block_size": bsize,
            "block_total": blocks, "block_available": bavail, "block_used": blocks - bavail,
            "inode_total": files, "inode_available": ffree, "inode_used": files - ffree}

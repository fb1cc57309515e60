"""Ansible's `ansible_facts`, computed from the one probe recipe runs at connect (engine.build.facts).

`ansible_facts(facts)` gives the mapping Ansible's setup module gathers, keys without the `ansible_`
prefix (as the `ansible_facts` variable has them: `os_family`, `distribution`, `default_ipv4`...),
with Ansible's values and types. gather_subset and filter keep Ansible's meaning
(ansible/module_utils/facts/collector.py, ansible_collector.py): subsets name collectors or the facts
they own, `!x` excludes, `min` is always there, and a collector's prerequisites come along.

Left out, on purpose: python (no Python on the target), local (facts.d scripts: not run), devices,
device_links, lvm, caps, systemd (they cost commands on every build for facts roles rarely read).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from engine.build import ansible_facts_system as system
from engine.build.ansible_facts_distribution import distribution_facts
from engine.build.ansible_facts_hardware import cpu_facts, dmi_facts, memory_facts, mount_facts, uptime_facts
from engine.build.ansible_facts_network import network_facts
from engine.build.ansible_facts_system import Probe
from engine.build.ansible_facts_virtual import virtual_facts
from engine.build.ansible_probe import split_sections
from engine.build.facts import PROBE_KEY

Facts = dict[str, Any]


@dataclass(frozen=True)
class Collector:
    """One of Ansible's Linux fact collectors: its name, the fact names that select it, what it needs first."""

    name: str
    collect: Callable[[Probe, Facts], Facts]
    fact_ids: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()


def _hardware(probe: Probe, done: Facts) -> Facts:
    nproc = (probe.text("nproc") or "").strip()
    return {**cpu_facts(probe, done.get("architecture", ""), int(nproc) if nproc.isdigit() else 0),
            **memory_facts(probe), **dmi_facts(probe), **uptime_facts(probe), **mount_facts(probe)}


def _only(function: Callable[[Probe], Facts]) -> Callable[[Probe, Facts], Facts]:
    return lambda probe, done: function(probe)


def _nothing(probe: Probe, done: Facts) -> Facts:
    return {}


# In an order where each collector comes after what it requires (Ansible sorts them the same way).
COLLECTORS = (
    Collector("platform", _only(system.platform_facts),
              ("system", "kernel", "kernel_version", "machine", "python_version", "architecture", "machine_id")),
    Collector("distribution", _only(distribution_facts),
              ("distribution_version", "distribution_release", "distribution_major_version", "os_family")),
    Collector("lsb", _only(system.lsb_facts)),
    Collector("cmdline", _only(system.cmdline_facts)),
    Collector("dns", _only(system.dns_facts)),
    Collector("python", _only(system.python_facts)),
    Collector("loadavg", _only(system.loadavg_facts)),
    Collector("iscsi", _only(system.iscsi_facts)),
    Collector("nvme", _only(system.nvme_facts)),
    Collector("fibre_channel_wwn", _only(system.fc_wwn_facts)),
    Collector("network", _only(network_facts),
              ("interfaces", "default_ipv4", "default_ipv6", "all_ipv4_addresses", "all_ipv6_addresses"),
              ("distribution", "platform")),
    Collector("date_time", _only(system.date_time_facts)),
    Collector("apparmor", _only(system.apparmor_facts)),
    Collector("systemd", _nothing),
    Collector("chroot", _only(system.chroot_facts), ("is_chroot",)),
    Collector("ohai", _nothing),
    Collector("virtual", _only(virtual_facts),
              ("virtualization_type", "virtualization_role", "virtualization_tech_guest", "virtualization_tech_host")),
    Collector("selinux", _only(system.selinux_facts)),
    Collector("ssh_pub_keys", _only(system.ssh_pub_key_facts),
              ("ssh_host_pub_keys", "ssh_host_key_dsa_public", "ssh_host_key_rsa_public",
               "ssh_host_key_ecdsa_public", "ssh_host_key_ed25519_public")),
    Collector("caps", _nothing, ("system_capabilities", "system_capabilities_enforced")),
    Collector("facter", _nothing, ("facter",)),
    Collector("env", _only(system.env_facts)),
    Collector("service_mgr", lambda probe, done: system.service_mgr_facts(probe, done.get("system", "")), (),
              ("distribution", "platform")),
    Collector("user", _only(system.user_facts),
              ("user_id", "user_uid", "user_gid", "user_gecos", "user_dir", "user_shell", "real_user_id",
               "effective_user_id", "effective_group_ids")),
    Collector("pkg_mgr", lambda probe, done: system.pkg_mgr_facts(probe, done.get("os_family", "")), (),
              ("distribution",)),
    Collector("local", lambda probe, done: {"local": {}}),
    Collector("fips", _only(system.fips_facts)),
    Collector("hardware", _hardware, ("devices", "mounts", "processor", "processor_cores", "processor_count"),
              ("platform",)),
)
BY_NAME = {c.name: c for c in COLLECTORS}
# Every name gather_subset accepts -> the collector it selects.
SUBSETS = {**{fact: c.name for c in COLLECTORS for fact in c.fact_ids}, **{c.name: c.name for c in COLLECTORS}}
MINIMAL = frozenset({"apparmor", "caps", "cmdline", "date_time", "distribution", "dns", "env", "fips", "local", "lsb",
                     "pkg_mgr", "platform", "python", "selinux", "service_mgr", "ssh_pub_keys", "user"})


class BadSubset(ValueError):
    """A gather_subset name Ansible does not know (message: Ansible's own)."""

    def __init__(self, name: str, valid: Iterable[str]):
        super().__init__(f"Bad subset '{name}' given to Ansible. gather_subset options allowed: all, "
                         + ", ".join(sorted(valid)))
        self.name = name


def selected_collectors(gather_subset: Iterable[str] = ("all",)) -> list[Collector]:
    """The collectors a gather_subset selects, as Ansible's get_collector_names and _solve_deps choose them."""
    valid = frozenset(SUBSETS)
    added: set[str] = set()
    excluded: set[str] = set()
    explicit: set[str] = set()
    for subset in ["min", *(list(gather_subset) or ["all"])]:
        if subset == "min":
            added |= MINIMAL
        elif subset == "all":
            added |= valid
        elif subset == "!min":
            excluded |= MINIMAL
        elif subset == "!all":
            excluded |= valid - MINIMAL
        elif subset.startswith("!"):
            name = subset[1:]
            excluded |= {name, *BY_NAME[name].fact_ids} if name in BY_NAME else {name}
        elif subset not in valid:
            raise BadSubset(subset, valid)
        else:
            explicit.add(subset)
            added.add(subset)
    names = {SUBSETS[name] for name in (added or valid) - (excluded - explicit)}
    pending = list(names)
    while pending:
        for required in BY_NAME[pending.pop()].requires:
            if required not in names:
                names.add(required)
                pending.append(required)
    return [c for c in COLLECTORS if c.name in names]


def matches(name: str, filters: Iterable[str]) -> bool:
    """Ansible's setup filter: fnmatch on the ansible_-prefixed name; a pattern without the prefix gets it."""
    for pattern in filters:
        if not pattern or fnmatch.fnmatch(name, pattern):
            return True
        if not pattern.startswith(("ansible_", "facter", "ohai")) and fnmatch.fnmatch(name, "ansible_" + pattern):
            return True
    return False


def ansible_facts(facts: Mapping[str, Any], gather_subset: Iterable[str] = ("all",),
                  filters: Iterable[str] = ()) -> Facts:
    """The `ansible_facts` mapping from what engine.build.facts.parse_facts returned (keys without ansible_).

    Raises BadSubset for a gather_subset name Ansible would refuse."""
    sections = facts.get(PROBE_KEY) or {}
    probe = Probe.of(sections if isinstance(sections, dict) else split_sections(str(sections)))
    subset = list(gather_subset) or ["all"]
    wanted = [f for f in filters if f != "*"]
    done: Facts = {}
    result: Facts = {}
    for collector in selected_collectors(subset):
        found = {key.replace("-", "_"): value for key, value in collector.collect(probe, done).items()}
        done.update(found)
        result.update({k: v for k, v in found.items() if not wanted or matches("ansible_" + k, wanted)})
    meta = {"gather_subset": subset, "module_setup": True}
    result.update({k: v for k, v in meta.items() if not wanted or matches(k, wanted)})
    return result

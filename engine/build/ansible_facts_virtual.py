"""Ansible's virtualization facts (virtualization_type, _role, _tech_guest, _tech_host) from the probe,
after ansible/module_utils/facts/virtual/linux.py: the first clue found sets type and role; every clue
adds to the tech sets. Not looked at: dmidecode (root only, slow) and the vdsm process scan under /rhev.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.build.ansible_facts_hardware import dmi_values
from engine.build.ansible_facts_system import Probe

KVM_PRODUCTS = ("KVM", "KVM Server", "Bochs", "AHV", "CloudStack KVM Hypervisor")
KVM_VENDORS = ("QEMU", "Amazon EC2", "DigitalOcean", "Google", "Scaleway", "Nutanix")
VENDOR_TYPES = {"oVirt": "oVirt", "KubeVirt": "KubeVirt", "Microsoft Corporation": "VirtualPC",
                "Parallels Software International Inc.": "parallels", "OpenStack Foundation": "openstack"}
CPUINFO_CLUES = ((r"^model name.*QEMU Virtual CPU", "kvm"), (r"^vendor_id.*User Mode Linux", "uml"),
                 (r"^model name.*UML", "uml"), (r"^machine.*CHRP IBM pSeries .emulated by qemu.", "kvm"),
                 (r"^vendor_id.*PowerVM Lx86", "powervm_lx86"), (r"^vendor_id.*IBM/S390", "ibm_systemz"))


@dataclass
class Finding:
    """What the clues said so far: the first one decides type and role."""

    facts: dict[str, Any] = field(default_factory=dict)
    guest: set[str] = field(default_factory=set)
    host: set[str] = field(default_factory=set)
    found: bool = False

    def guest_clue(self, tech: str, kind: str | None = None, role: str | None = "guest") -> None:
        self.guest.add(tech)
        self.first(kind or tech, role)

    def host_clue(self, tech: str, role: str | None = "host") -> None:
        self.host.add(tech)
        self.first(tech, role)

    def first(self, kind: str, role: str | None) -> None:
        if not self.found:
            self.facts["virtualization_type"] = kind
            if role:
                self.facts["virtualization_role"] = role
            self.found = True


def virtual_facts(probe: Probe) -> dict[str, Any]:
    f = Finding()
    _containers(probe, f)
    _xen_and_openvz(probe, f)
    if not f.found:
        f.facts["virtualization_role"] = "guest"    # Ansible's provisional role, dropped below when nothing matches
    _dmi(probe, f)
    if not f.found:
        f.facts.pop("virtualization_role", None)
    _kernel(probe, f)
    if "/dev/kvm" in probe.exists:
        f.host_clue("kvm")
    if not f.found:
        f.facts.update(virtualization_type="NA", virtualization_role="NA")
    return {**f.facts, "virtualization_tech_guest": sorted(f.guest), "virtualization_tech_host": sorted(f.host)}


def _containers(probe: Probe, f: Finding) -> None:
    for line in probe.lines("cgroup1"):
        if re.search(r"/docker(/|-[0-9a-f]+\.scope)", line):
            f.guest_clue("docker")
        if re.search("/lxc/", line) or re.search("/machine.slice/machine-lxc", line):
            f.guest_clue("lxc")
        if re.search("/system.slice/containerd.service", line):
            f.guest_clue("containerd")
    for line in probe.lines("proc1_container"):
        if "container=lxc" in line:
            f.guest_clue("lxc")
        if "container=podman" in line:
            f.guest_clue("podman")
        if re.search("^container=.", line):
            f.guest_clue("container")
    if "/proc/vz" in probe.exists and "/proc/lve" not in probe.exists:
        f.facts["virtualization_type"] = "openvz"
        host = "/proc/bc" in probe.exists
        (f.host if host else f.guest).add("openvz")
        if not f.found:
            f.facts["virtualization_role"] = "host" if host else "guest"
        f.found = True
    container = probe.text("systemd_container")
    if container:
        f.guest_clue(container)
    if "/.dockerenv" in probe.exists or "/.dockerinit" in probe.exists:
        f.guest_clue("docker")
    if f.guest & {"docker", "lxc", "podman", "openvz", "containerd"} or container:
        f.guest.add("container")


def _xen_and_openvz(probe: Probe, f: Finding) -> None:
    if "/proc/xen" not in probe.exists:
        return
    if any("control_d" in line for line in probe.lines("xen_capabilities")):
        f.host.add("xen")
        role = "host"
    else:
        role = "guest"
    if not f.found:
        f.facts.update(virtualization_type="xen", virtualization_role=role)
    f.found = True


def _dmi(probe: Probe, f: Finding) -> None:
    dmi = dmi_values(probe)
    product, vendor, bios = dmi.get("product_name"), dmi.get("sys_vendor"), dmi.get("bios_vendor")
    family = probe.text("product_family")
    if product in KVM_PRODUCTS:
        f.guest_clue("kvm", role=None)
    if vendor == "oVirt":
        f.guest_clue("oVirt", role=None)
    if vendor == "Red Hat" and family == "RHV":
        f.guest_clue("RHV", role=None)
    elif vendor == "Red Hat" and product == "RHEV Hypervisor":
        f.guest_clue("RHEV", role=None)
    if product and product.startswith("VMware"):
        f.guest_clue("VMware", role=None)
    if product in ("OpenStack Compute", "OpenStack Nova"):
        f.guest_clue("openstack", role=None)
    if bios == "Xen":
        f.guest_clue("xen", role=None)
    if bios == "innotek GmbH":
        f.guest_clue("virtualbox", role=None)
    if bios in ("Amazon EC2", "DigitalOcean", "Hetzner", "Linode"):
        f.guest_clue("kvm", role=None)
    if vendor in KVM_VENDORS:
        f.guest_clue("kvm", role=None)
    if vendor in ("KubeVirt", "Microsoft Corporation", "Parallels Software International Inc."):
        f.guest_clue(VENDOR_TYPES[vendor], role=None)
    if vendor == "OpenStack Foundation":
        f.guest_clue("openstack", role=None)


def _kernel(probe: Probe, f: Finding) -> None:
    """VServer contexts, cpuinfo's emulated CPUs and loaded hypervisor modules."""
    for line in probe.lines("vxid"):
        if re.match(r"^VxID:\s+\d+", line):
            host = bool(re.match(r"^VxID:\s+0", line))
            (f.host if host else f.guest).add("linux_vserver")
            f.first("linux_vserver", "host" if host else "guest")
    for line in probe.lines("cpuinfo"):
        tech = next((tech for pattern, tech in CPUINFO_CLUES if re.match(pattern, line)), None)
        if tech:
            f.guest_clue(tech, role="LPAR" if tech == "ibm_systemz" else "guest")
    modules = set(probe.lines("modules"))
    if "kvm" in modules:
        f.host_clue("kvm")
    if "vboxdrv" in modules:
        f.host_clue("virtualbox")
    if "virtio" in modules:
        f.host.add("kvm")
        f.first("kvm", "guest")

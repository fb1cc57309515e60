"""What a vagrant-libvirt machine is in libvirt, through virsh: its domain, its disk, the volumes and the
network made for it; and how each is removed when `vagrant destroy` did not (a killed run, a failed destroy).

Nothing here removes what it cannot tie to the build: the domain is the one vagrant-libvirt recorded in the
build's .vagrant/ folder (or that has the build's unique name), the networks those vagrant-libvirt recorded
as made for it, the box image only when the build's private VAGRANT_HOME uploaded it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

from modules.platforms.vagrant.vagrantfile import MACHINE

RECORD = "recipe-vagrant.json"       # in the build's work dir: what the sweep needs to find its leftovers
VIRSH_TIMEOUT = 120.0


class LibvirtFailure(OSError):
    """virsh failed; the message says how (an OSError, so the local sweep reports it and goes on)."""


@dataclass
class MachineRecord:
    """What a build tells a later sweep about its machine (written to the work dir before `vagrant up`)."""

    provider: str
    uri: str = "qemu:///system"
    domain: str = ""                 # the libvirt domain's name: <prefix>default
    pool: str = "default"
    box_volume_prefix: str = ""      # the box image vagrant-libvirt uploads, when this build owns it

    def save(self, work_dir: Path) -> None:
        temporary = work_dir / f".{RECORD}.tmp"
        temporary.write_text(json.dumps(asdict(self), indent=1) + "\n")
        temporary.replace(work_dir / RECORD)

    @classmethod
    def load(cls, work_dir: Path) -> "MachineRecord | None":
        try:
            return cls(**json.loads((work_dir / RECORD).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def machine_dir(project: Path, provider: str) -> Path:
    return project / ".vagrant" / "machines" / MACHINE / provider


def machine_id(project: Path, provider: str) -> str | None:
    """The provider's id of the machine, as Vagrant records it (libvirt: the domain's UUID)."""
    try:
        return (machine_dir(project, provider) / "id").read_text().strip() or None
    except OSError:
        return None


def created_networks(project: Path) -> list[str]:
    """UUIDs of the networks vagrant-libvirt made for the machine (and removes at destroy when unused)."""
    try:
        text = (machine_dir(project, "libvirt") / "created_networks").read_text()
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def _run_virsh(uri: str, args: tuple[str, ...]) -> subprocess.CompletedProcess:
    path = shutil.which("virsh", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        raise LibvirtFailure("virsh is not installed (Debian: apt-get install libvirt-clients)")
    try:
        return subprocess.run([path, "-c", uri, *args], capture_output=True, text=True, timeout=VIRSH_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise LibvirtFailure(f"virsh {' '.join(args)} did not answer within {VIRSH_TIMEOUT:g}s") from None


def virsh(uri: str, *args: str, check: bool = True) -> str:
    done = _run_virsh(uri, args)
    if check and done.returncode != 0:
        raise LibvirtFailure(f"virsh -c {uri} {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def exists(uri: str, kind: str, ref: str) -> bool:
    """Whether a domain or a network (by name or UUID) exists; LibvirtFailure if libvirt does not answer."""
    command = {"domain": "dominfo", "network": "net-info"}[kind]
    done = _run_virsh(uri, (command, ref))
    if done.returncode == 0:
        return True
    said = done.stderr.lower()
    if "failed to get" in said or "not found" in said or "no domain" in said or "no network" in said:
        return False
    raise LibvirtFailure(f"virsh -c {uri} {command} {ref}: {done.stderr.strip()}")


def remove_domain(uri: str, ref: str) -> None:
    """Stop the domain and undefine it with its storage (not the box image its disk is a snapshot of)."""
    virsh(uri, "destroy", ref, check=False)              # not running is fine
    virsh(uri, "undefine", ref, "--managed-save", "--snapshots-metadata", "--nvram", "--remove-all-storage")


def domain_disk(uri: str, ref: str) -> tuple[Path, str]:
    """The file of the domain's first disk, and its format (qcow2: a snapshot of the box image)."""
    root = ET.fromstring(virsh(uri, "dumpxml", "--inactive", ref))
    for disk in root.iter("disk"):
        if disk.get("device", "disk") != "disk":
            continue
        source, driver = disk.find("source"), disk.find("driver")
        if source is None:
            continue
        if source.get("file"):
            path = source.get("file", "")
        elif source.get("volume"):
            path = virsh(uri, "vol-path", "--pool", source.get("pool", "default"), source.get("volume", "")).strip()
        else:
            continue
        return Path(path), (driver.get("type") if driver is not None and driver.get("type") else "raw")
    raise LibvirtFailure(f"the domain {ref} has no disk backed by a file")


def volumes(uri: str, pool: str) -> dict[str, str]:
    """The pool's volumes: name -> path."""
    found = {}
    for line in virsh(uri, "vol-list", "--pool", pool).splitlines()[2:]:
        parts = line.split(None, 1)
        if len(parts) == 2:
            found[parts[0]] = parts[1].strip()
    return found


def backed_by(uri: str, pool: str, path: str) -> list[str]:
    """The volumes of the pool whose disk is a snapshot of path (a domain's disk on a box image)."""
    users = []
    for name, other in volumes(uri, pool).items():
        if other == path:
            continue
        try:
            backing = ET.fromstring(virsh(uri, "vol-dumpxml", "--pool", pool, name)).find("backingStore/path")
        except (LibvirtFailure, ET.ParseError):
            continue
        if backing is not None and backing.text == path:
            users.append(name)
    return users


def remove_volume(uri: str, pool: str, name: str) -> None:
    path = volumes(uri, pool).get(name)
    if path is None:
        return
    users = backed_by(uri, pool, path)
    if users:
        raise LibvirtFailure(f"the volume {pool}/{name} is still the base of {', '.join(users)}; kept")
    virsh(uri, "vol-delete", "--pool", pool, name)


def network_users(uri: str, network: str) -> list[str]:
    """Domains with an interface on the network (vagrant-libvirt removes a network only when none has)."""
    users = []
    for domain in filter(None, (n.strip() for n in virsh(uri, "list", "--all", "--name").splitlines())):
        try:
            root = ET.fromstring(virsh(uri, "dumpxml", "--inactive", domain))
        except (LibvirtFailure, ET.ParseError):
            continue
        if any(s.get("network") == network for s in root.iter("source")):
            users.append(domain)
    return users


def remove_network(uri: str, ref: str) -> None:
    name = virsh(uri, "net-name", ref).strip() if len(ref) == 36 and ref.count("-") == 4 else ref
    users = network_users(uri, name)
    if users:
        raise LibvirtFailure(f"the network {name} is in use by {', '.join(users)}; kept")
    virsh(uri, "net-destroy", name, check=False)        # not active is fine
    virsh(uri, "net-undefine", name)

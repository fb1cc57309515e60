"""What a dead vagrant build left outside its work dir, for `recipe sweep --local` (and each `recipe run`).

A vagrant build writes a record (modules.platforms.vagrant.libvirt.RECORD) into its work dir before
`vagrant up`. From it and from Vagrant's own .vagrant/ folder the sweep finds, in the order they go:
vagrant processes still running in the work dir (a `vagrant up` outlives a SIGKILLed recipe), the libvirt
domain (its UUID in .vagrant/machines/default/libvirt/id, or the build's unique domain name), its disk
volume, the box image the build's private VAGRANT_HOME uploaded, and the networks vagrant-libvirt
recorded as made for the machine. The build's own cleanup uses the same list after `vagrant destroy`, to
remove whatever destroy left. VirtualBox and VMware machines are written for, never run here.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from engine.leftovers.local_sweep import HERE, RunLeftovers
from engine.leftovers.sweep import Leftover
from modules.platforms.vagrant.libvirt import (LibvirtFailure, MachineRecord, created_networks, exists, machine_id,
                                               remove_domain, remove_network, remove_volume, virsh, volumes)


def processes_in(work_dir: Path) -> list[int]:
    """Processes whose working directory is in the work dir: vagrant, which runs in its project folder."""
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(pid_dir / "cwd")
        except OSError:
            continue                        # gone meanwhile, or not ours to look at
        if cwd == str(work_dir) or cwd.startswith(str(work_dir) + "/"):
            found.append(int(pid_dir.name))
    return sorted(found)


def _libvirt(work_dir: Path, record: MachineRecord, build_id: str) -> list[Leftover]:
    def leftover(kind: str, id_: str) -> Leftover:
        return Leftover(kind, id_, record.uri, build_id, None)

    domain = machine_id(work_dir, "libvirt")
    found: list[Leftover] = []
    try:
        for ref in filter(None, dict.fromkeys([domain, record.domain])):
            if exists(record.uri, "domain", ref):
                found.append(leftover("libvirt domain", ref))
                break
        mine = [f"{record.domain}.img"] if record.domain else []
        for name in volumes(record.uri, record.pool):
            if name in mine or (record.box_volume_prefix and name.startswith(record.box_volume_prefix)):
                found.append(leftover("libvirt volume", f"{record.pool}/{name}"))
        for uuid in created_networks(work_dir):
            if exists(record.uri, "network", uuid):
                found.append(leftover("libvirt network", virsh(record.uri, "net-name", uuid).strip() or uuid))
    except LibvirtFailure:
        # libvirt does not answer: list the machine anyway, so removing it fails with why, and the work dir
        # that names it stays for a later sweep
        if not found and (domain or record.domain):
            found.append(leftover("libvirt domain", domain or record.domain))
    return found


def _virtualbox(work_dir: Path, record: MachineRecord, build_id: str) -> list[Leftover]:
    """Written for VirtualBox, never run here: the VM Vagrant recorded, by its UUID."""
    uuid = machine_id(work_dir, "virtualbox")
    return [Leftover("virtualbox machine", uuid, HERE, build_id, None)] if uuid else []


def _vmware_desktop(work_dir: Path, record: MachineRecord, build_id: str) -> list[Leftover]:
    """Written for vagrant-vmware-desktop, never run here: its id file holds the path of the .vmx."""
    vmx = machine_id(work_dir, "vmware_desktop")
    return [Leftover("vmware machine", vmx, HERE, build_id, None)] if vmx and Path(vmx).exists() else []


FINDERS: dict[str, Callable[[Path, MachineRecord, str], list[Leftover]]] = {
    "libvirt": _libvirt, "virtualbox": _virtualbox, "vmware_desktop": _vmware_desktop}


def _alive(pid: int) -> bool:
    """Running, or stopping; a zombie (exited, not yet reaped) counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _stop(pid: int) -> None:
    """SIGTERM (vagrant cleans up what it was making), SIGKILL after 10 s."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tool(*argv: str, check: bool = True) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise OSError(f"{argv[0]} is not installed") from None
    if check and done.returncode != 0:
        raise OSError(f"{' '.join(argv)}: {(done.stderr or done.stdout).strip()}")


def _remove_virtualbox(uuid: str) -> None:
    _tool("VBoxManage", "controlvm", uuid, "poweroff", check=False)      # not running is fine
    _tool("VBoxManage", "unregistervm", uuid, "--delete")


def _remove_vmware(vmx: str) -> None:
    _tool("vmrun", "stop", vmx, "hard", check=False)
    _tool("vmrun", "deleteVM", vmx)


class VagrantLeftovers(RunLeftovers, name="vagrant"):
    kinds = ("vagrant process", "libvirt domain", "libvirt volume", "libvirt network", "virtualbox machine",
             "vmware machine")

    def find(self, work_dir: Path, build_id: str) -> list[Leftover]:
        record = MachineRecord.load(work_dir)
        if record is None or record.provider not in FINDERS:
            return []                       # not a vagrant build's work dir
        found = [Leftover("vagrant process", str(pid), HERE, build_id, None) for pid in processes_in(work_dir)]
        return found + FINDERS[record.provider](work_dir, record, build_id)

    def remove(self, leftover: Leftover) -> None:
        kind, ref, uri = leftover.kind, leftover.id, leftover.where
        if kind == "vagrant process":
            _stop(int(ref))
        elif kind == "libvirt domain":
            if exists(uri, "domain", ref):
                remove_domain(uri, ref)
        elif kind == "libvirt volume":
            pool, _, name = ref.partition("/")
            remove_volume(uri, pool, name)
        elif kind == "libvirt network":
            if exists(uri, "network", ref):
                remove_network(uri, ref)
        elif kind == "virtualbox machine":
            _remove_virtualbox(ref)
        elif kind == "vmware machine":
            _remove_vmware(ref)

"""One throwaway Debian guest for the benches, booted as the qemu platform boots one: an overlay on the cached
bootstrap base (the one `make test` builds), a fresh cloud-init seed with its own login key and pinned host key,
QEMU's command line from the platform's Machine. Nothing is installed on this machine; the guest is thrown away.

    async with booted_guest(work, accel="tcg") as guest:   # SSH answers, as `debian` (sudo) and as root
        guest.ssh("uname -a")
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from engine.accelerator import choose_accelerator
from engine.local_cache import default_cache_dir
from modules.platforms.qemu.base import BootstrapBase, resolve_base
from modules.platforms.qemu.machine import Machine, MachineSpec, free_port
from modules.platforms.qemu.seed import make_seed

USER = "debian"
BOOT_TIMEOUT = 1200.0          # a loaded 2-core machine boots a TCG guest in minutes
PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Guest:
    """The booted guest, as both tools reach it; host/port/user/client_key/host_public_key are the names
    tests/sshd.SshServer has, so the differential oracle can run against a guest as against a local sshd."""

    port: int
    client_key: Path
    host_public_key: str
    known_hosts: Path
    user: str = USER
    host: str = "127.0.0.1"

    def ssh(self, command: str, check: bool = True, user: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", "-p", str(self.port), "-i", str(self.client_key), "-o", "BatchMode=yes",
                               "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                               "-o", "ConnectTimeout=10", f"{user or self.user}@{self.host}", command],
                              capture_output=True, text=True, check=check, timeout=600)

    def as_root(self) -> "Guest":
        """The same guest, logged in to as root: debian's key is authorized for root too (Debian's sshd permits
        root logins by key), for content that expects to run as root, as Ansible's own test targets do."""
        self.ssh("sudo install -d -m 700 /root/.ssh && sudo install -m 600 ~/.ssh/authorized_keys /root/.ssh/")
        return Guest(self.port, self.client_key, self.host_public_key, self.known_hosts, user="root")

    def ensure_python(self) -> str:
        """Ansible needs python3 on the target: say whether the guest had it, and install it if not."""
        if self.ssh(f"test -x {PYTHON}", check=False).returncode == 0:
            return "the guest already had python3 (cloud-init's)"
        self.ssh("sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3")
        return "python3 was installed on the guest by the bench, for ansible-playbook only"


async def _boot(work: Path, accel: str, name: str) -> tuple[Machine, Guest]:
    base = await resolve_base(BootstrapBase(), default_cache_dir(), log=lambda line: print("  base:", line))
    chosen = await choose_accelerator(accel, remembered=default_cache_dir() / "accelerator.json")
    disk = work / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", base.format, "-b", str(base.path), str(disk),
                    "8G"], check=True)
    seed = await make_seed(work / "seed", "bench", "bench", USER, "bench")
    port = free_port()
    spec = MachineSpec(name=name, disk=disk, console_log=work / "console.log", ssh_port=port,
                       accel=chosen, cpus=2, memory=1024, seed=seed.iso, pid_file=work / "qemu.pid")
    machine = Machine(spec, work / "qemu.log")
    await machine.start()
    known_hosts = work / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {seed.host_public_key}\n")
    print(f"guest: {base.path.name} under {chosen}, ssh on 127.0.0.1:{port}")
    return machine, Guest(port, seed.private_key, seed.host_public_key, known_hosts)


def _wait_for_ssh(guest: Guest, machine: Machine) -> float:
    started = time.monotonic()
    while time.monotonic() - started < BOOT_TIMEOUT:
        if not machine.running:
            sys.exit(f"QEMU exited during boot:\n{machine.console_tail()}")
        if guest.ssh("cloud-init status --wait >/dev/null 2>&1; true", check=False).returncode == 0:
            return time.monotonic() - started
        time.sleep(5)
    sys.exit(f"no SSH after {BOOT_TIMEOUT:.0f} s:\n{machine.console_tail()}")


@contextlib.asynccontextmanager
async def booted_guest(work: Path, accel: str = "tcg", name: str = "recipe-bench") -> AsyncIterator[Guest]:
    """A guest whose SSH answers; stopped (QEMU ended) when the block ends, however it ends."""
    machine, guest = await _boot(work, accel, name)
    try:
        print(f"booted: SSH after {_wait_for_ssh(guest, machine):.0f} s")
        yield guest
    finally:
        await machine.stop()

"""A libvirt daemon (qemu:///system) for tests, on machines where no systemd starts it.

`libvirt_daemon(directory)` is a context manager: when `virsh -c qemu:///system version` already answers it
uses that daemon and starts nothing; otherwise (as root) it starts virtlogd (QEMU's console and log
files go through it) and libvirtd as child processes, logging into `directory`, waits until virsh answers,
and on exit stops what it started, in reverse order. libvirtd needs nothing else here: it makes its own
runtime directories under /run/libvirt, and the networks it starts bring their own dnsmasq and firewall
rules (iptables, a dependency of libvirt-daemon-system).

What a daemon started here leaves on the machine is put back on exit: the IP forwarding it turned on for a
NAT network, and the empty LIBVIRT_* iptables chains it made when none existed before. Domains, networks,
pools and volumes are the caller's to remove (Libvirt.purge removes those whose names carry a prefix);
a running domain outlives libvirtd, so remove them before the daemon stops.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

URI = "qemu:///system"
SBIN = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
VIRTLOGD_SOCKET = "/run/libvirt/virtlogd-sock"
HINT = "`make deps` installs libvirt-daemon-system, libvirt-clients, dnsmasq-base and iptables"
FORWARDING = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")
# the chains libvirt's network driver adds, by table, and the built-in chain each is jumped to from
CHAINS = {"filter": (("INPUT", "LIBVIRT_INP"), ("OUTPUT", "LIBVIRT_OUT"), ("FORWARD", "LIBVIRT_FWX"),
                     ("FORWARD", "LIBVIRT_FWI"), ("FORWARD", "LIBVIRT_FWO")),
          "nat": (("POSTROUTING", "LIBVIRT_PRT"),), "mangle": (("POSTROUTING", "LIBVIRT_PRT"),)}


class LibvirtError(RuntimeError):
    pass


def tool(name: str) -> str:
    """The path of a program, or an error that says how to install it."""
    path = shutil.which(name, path=SBIN)
    if path is None:
        raise LibvirtError(f"{name} is not installed: {HINT}")
    return path


def answers(uri: str = URI, timeout: float = 10) -> bool:
    """Whether a libvirt daemon answers on uri (virsh version, which needs the hypervisor driver too)."""
    try:
        return subprocess.run([tool("virsh"), "-c", uri, "version"], capture_output=True,
                              timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(path)
            return True
        except OSError:
            return False


@dataclass
class Libvirt:
    """A daemon that answers on uri; started says whether this process started it (and will stop it)."""

    uri: str
    started: bool
    directory: Path
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def virsh(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        result = subprocess.run([tool("virsh"), "-c", self.uri, *args], capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise LibvirtError(f"virsh {' '.join(args)} failed ({result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()}")
        return result.stdout

    def names(self, kind: str, pool: str | None = None) -> list[str]:
        """Every domain, net, pool (active or not), or the volumes of pool, by name."""
        if kind == "domain":
            out = self.virsh("list", "--all", "--name")
        elif kind == "net":
            out = self.virsh("net-list", "--all", "--name")
        elif kind == "pool":
            out = self.virsh("pool-list", "--all", "--name")
        elif kind == "vol":
            out = self.virsh("vol-list", "--pool", pool or "default")
            # "Name  Path" header, a rule, then one "name  path" per volume (names carry no spaces here)
            return [line.split()[0] for line in out.splitlines()[2:] if line.strip()]
        else:
            raise ValueError(kind)
        return [line.strip() for line in out.splitlines() if line.strip()]

    def leftovers(self, prefix: str, pools: tuple[str, ...] = ()) -> list[str]:
        """What carries prefix (domains, networks, pools, volumes in any active pool) plus every volume
        of the pools named, as "kind name" strings: what a test that cleaned up leaves is []."""
        found = [f"domain {n}" for n in self.names("domain") if n.startswith(prefix)]
        found += [f"net {n}" for n in self.names("net") if n.startswith(prefix)]
        for pool in self.names("pool"):
            if pool.startswith(prefix) and pool not in pools:
                found.append(f"pool {pool}")
            if self.pool_active(pool):
                found += [f"vol {pool}/{v}" for v in self.names("vol", pool) if pool in pools or v.startswith(prefix)]
        return found

    def purge(self, prefix: str, pools: tuple[str, ...] = ()) -> list[str]:
        """Remove every domain, network, pool and volume whose name starts with prefix, and the volumes of
        the pools named (the pools stay); return what was removed, in leftovers' form."""
        removed = []
        for name in self.names("domain"):
            if name.startswith(prefix):
                self.virsh("destroy", name, check=False)
                self.virsh("undefine", name, "--managed-save", "--snapshots-metadata", "--nvram", check=False)
                removed.append(f"domain {name}")
        for name in self.names("net"):
            if name.startswith(prefix):
                self.virsh("net-destroy", name, check=False)
                self.virsh("net-undefine", name, check=False)
                removed.append(f"net {name}")
        for pool in self.names("pool"):
            if not self.pool_active(pool):
                continue
            for vol in self.names("vol", pool):
                if pool in pools or pool.startswith(prefix) or vol.startswith(prefix):
                    self.virsh("vol-delete", "--pool", pool, vol, check=False)
                    removed.append(f"vol {pool}/{vol}")
            if pool.startswith(prefix) and pool not in pools:
                self.virsh("pool-destroy", pool, check=False)
                self.virsh("pool-undefine", pool, check=False)
                removed.append(f"pool {pool}")
        return removed

    def pool_active(self, name: str) -> bool:
        info = self.virsh("pool-info", name, check=False)
        return any(line.split(":", 1)[0].strip() == "State" and "running" in line for line in info.splitlines())

    @contextlib.contextmanager
    def transient_pool(self, name: str, target: Path) -> Iterator[str]:
        """A directory pool that exists for the block only (pool-create, not pool-define: nothing goes into
        /etc/libvirt); its volumes are deleted with it, and its directory too when this made it."""
        made = not target.exists()
        target.mkdir(mode=0o711, parents=True, exist_ok=True)
        if name in self.names("pool"):   # a killed run's, with its volumes
            self.purge(name)
        self.virsh("pool-create-as", name, "dir", "--target", str(target))
        try:
            yield name
        finally:
            for vol in self.names("vol", name):
                self.virsh("vol-delete", "--pool", name, vol, check=False)
            self.virsh("pool-destroy", name, check=False)
            if made:
                with contextlib.suppress(OSError):
                    target.rmdir()

    def log(self) -> str:
        """The tail of the logs of the daemons started here."""
        text = ""
        for name, _ in self.processes:
            path = self.directory / f"{name}.log"
            if path.exists():
                text += f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:]) + "\n"
        return text


def _start(libvirt: Libvirt, name: str, ready, timeout: float) -> None:
    log = open(libvirt.directory / f"{name}.log", "w")
    # a session of its own: Ctrl-C in the terminal reaches pytest, which then stops the daemon in order
    process = subprocess.Popen([tool(name)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    log.close()
    libvirt.processes.append((name, process))
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise LibvirtError(f"{name} exited with status {process.returncode}:\n{libvirt.log()}")
        if time.monotonic() > deadline:
            raise LibvirtError(f"{name} did not answer within {timeout:.0f} s:\n{libvirt.log()}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _iptables(*args: str) -> list[subprocess.CompletedProcess]:
    runs = []
    for program in ("iptables", "ip6tables"):
        path = shutil.which(program, path=SBIN)
        if path:
            runs.append(subprocess.run([path, "-w", *args], capture_output=True, text=True))
    return runs


def _libvirt_chains_exist() -> bool:
    return any(run.returncode == 0 for run in _iptables("-t", "filter", "-S", "LIBVIRT_INP"))


def _remove_empty_libvirt_chains() -> None:
    """The chains libvirt made for its networks, once they hold no rule (every network is gone)."""
    for table, chains in CHAINS.items():
        for parent, chain in chains:
            for program in ("iptables", "ip6tables"):
                path = shutil.which(program, path=SBIN)
                if not path:
                    continue
                listed = subprocess.run([path, "-w", "-t", table, "-S", chain], capture_output=True, text=True)
                if listed.returncode != 0 or any(l.startswith("-A") for l in listed.stdout.splitlines()):
                    continue
                while subprocess.run([path, "-w", "-t", table, "-D", parent, "-j", chain],
                                     capture_output=True).returncode == 0:
                    pass
                subprocess.run([path, "-w", "-t", table, "-X", chain], capture_output=True)


@contextlib.contextmanager
def libvirt_daemon(directory: Path, uri: str = URI, timeout: float = 60) -> Iterator[Libvirt]:
    """A libvirt daemon answering on uri for the block: the running one, or one started (and stopped) here."""
    for name in ("virsh", "libvirtd", "virtlogd"):
        tool(name)
    directory.mkdir(parents=True, exist_ok=True)
    if answers(uri):
        yield Libvirt(uri, started=False, directory=directory)
        return
    if os.geteuid() != 0:
        raise LibvirtError(f"no libvirt daemon answers on {uri}, and only root can start the system one "
                           "(run the tests as root, or start libvirtd first)")
    libvirt = Libvirt(uri, started=True, directory=directory)
    forwarding = {path: _read(path) for path in FORWARDING}
    chains_before = _libvirt_chains_exist()
    try:
        if not _socket_answers(VIRTLOGD_SOCKET):
            _start(libvirt, "virtlogd", lambda: _socket_answers(VIRTLOGD_SOCKET), timeout)
        _start(libvirt, "libvirtd", lambda: answers(uri, timeout=5), timeout)
        yield libvirt
    finally:
        for _, process in reversed(libvirt.processes):
            _stop(process)
        for path, value in forwarding.items():
            if value is not None and _read(path) != value:
                with contextlib.suppress(OSError):
                    Path(path).write_text(value + "\n")
        if not chains_before:
            _remove_empty_libvirt_chains()

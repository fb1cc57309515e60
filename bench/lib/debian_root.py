"""A throwaway Debian machine for corpus items that change the system they run on (users, sudoers, /tmp paths
of their own): a debootstrapped root, cached under ~/.cache/recipe/bench, run as an overlay in its own mount,
PID and UTS namespaces with its own sshd on 127.0.0.1, logged in to as root.

It boots in a second, where a TCG guest takes minutes, and both tools run at native speed. The bench's work
folder is bind-mounted at the same path inside, so the remote_tmp_dir paths both tools are given, and the files
the oracle reads from them, are the same on both sides. `reset()` throws the overlay's changes away, so each
tool starts from the same machine. Ending the namespaces' first process (`stop()`) ends every process in them
and every mount: nothing is left behind, even when the bench is killed.

    with debian_root(work) as machine:      # machine.server is a tests/sshd.SshServer
        ...
        machine.reset()
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.sshd import SshServer

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# python3 for ansible-playbook's modules, sudo for become, acl/attr for the copy target's ACL tasks
PACKAGES = ("openssh-server", "python3", "sudo", "acl", "attr", "procps", "iproute2")
CACHE = Path.home() / ".cache/recipe/bench"
START_TIMEOUT = 30.0
SSHD_CONFIG = """\
# the bench's throwaway root: root logs in by key; many sessions at once (Ansible's and recipe's)
PermitRootLogin prohibit-password
MaxSessions 64
MaxStartups 64
UseDNS no
"""
HOSTNAME = "debian-root"
HOSTS = f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n"     # sudo resolves its own host name


def root_directory() -> Path:
    """The cached root for this suite and package list: made once (debootstrap, a few minutes)."""
    key = hashlib.sha256(" ".join((SUITE, MIRROR, *PACKAGES, SSHD_CONFIG, HOSTS)).encode()).hexdigest()[:12]
    final = CACHE / f"debian-root-{key}"
    if (final / "etc/ssh/ssh_host_ed25519_key.pub").is_file():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = CACHE / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"debian root: debootstrap {SUITE} into {final} (once)", flush=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(partial),
                    MIRROR], check=True, stdout=subprocess.DEVNULL)
    (partial / "etc/ssh/sshd_config.d/bench.conf").write_text(SSHD_CONFIG)
    (partial / "etc/hosts").write_text(HOSTS)
    subprocess.run(["chroot", str(partial), "ssh-keygen", "-A"], check=True, capture_output=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(partial / "bench_client_key")],
                   check=True)
    ssh_dir = partial / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text((partial / "bench_client_key.pub").read_text())
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    partial.rename(final)     # only a whole root carries the final name
    return final


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# run by `unshare` as the new PID namespace's first process: the overlay and the mounts live and die with it
_START = """\
set -e
mount -t overlay overlay -o lowerdir="$LOWER",upperdir="$DIR/upper",workdir="$DIR/work" "$DIR/merged"
mount -t proc proc "$DIR/merged/proc"
mount --rbind /dev "$DIR/merged/dev"
mkdir -p "$DIR/merged$SHARED" "$DIR/merged/run/sshd"
mount --bind "$SHARED" "$DIR/merged$SHARED"
hostname "$HOSTNAME"
exec chroot "$DIR/merged" /usr/sbin/sshd -D -e -p "$PORT" -o ListenAddress=127.0.0.1
"""


@dataclass
class DebianRoot:
    lower: Path          # the cached root, never written
    directory: Path      # this machine's overlay folders and log
    shared: Path         # the host folder seen at the same path inside
    server: SshServer

    def start(self) -> None:
        for name in ("upper", "work", "merged"):
            shutil.rmtree(self.directory / name, ignore_errors=True)
            (self.directory / name).mkdir(parents=True)
        env = {**os.environ, "LOWER": str(self.lower), "DIR": str(self.directory), "SHARED": str(self.shared),
               "PORT": str(self.server.port), "HOSTNAME": HOSTNAME}
        log = open(self.directory / "sshd.log", "ab")
        self.server.process = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--uts", "--fork", "--kill-child", "sh", "-c", _START],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.server.process.poll() is not None:
                raise RuntimeError(f"the Debian root's sshd ended:\n{self.server.log()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.server.port), 1):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Debian root's sshd did not answer in {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        """The machine as it was first started: the overlay's changes thrown away, sshd on the same port."""
        self.stop()
        self.start()


@contextlib.contextmanager
def debian_root(work: Path) -> Iterator[DebianRoot]:
    lower = root_directory()
    directory = work / "debian-root"
    directory.mkdir(parents=True, exist_ok=True)
    public = (lower / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    server = SshServer(host="127.0.0.1", port=_free_port(), user="root", client_key=lower / "bench_client_key",
                       host_public_key=" ".join(public[:2]), directory=directory, process=None)
    machine = DebianRoot(lower, directory, work, server)
    machine.start()
    try:
        yield machine
    finally:
        machine.stop()

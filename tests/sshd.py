"""A real OpenSSH server on 127.0.0.1 for tests: its own host key, client key and config in a temp dir."""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import free_port, terminate

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class SshServer:
    host: str
    port: int
    user: str
    client_key: Path          # private key the client logs in with
    host_public_key: str      # "ssh-ed25519 AAAA..." to pin
    directory: Path
    process: subprocess.Popen

    def stop(self) -> None:
        terminate(self.process)

    def log(self) -> str:
        path = self.directory / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_sshd(directory: Path, max_sessions: int = 64) -> SshServer:
    if not os.path.exists(SSHD):
        raise RuntimeError("sshd not found: `make test` installs openssh-server")
    directory.mkdir(parents=True, exist_ok=True)
    _keygen(directory / "host_key")
    _keygen(directory / "client_key")
    (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
    os.chmod(directory / "authorized_keys", 0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # privilege separation directory
    port = free_port()
    config = directory / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {directory / 'host_key'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}", f"PidFile {directory / 'sshd.pid'}",
        "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp", f"MaxSessions {max_sessions}",
        "MaxStartups 100:30:200", "LogLevel INFO", "",
    ]))
    log = open(directory / "sshd.log", "w")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {(directory / 'sshd.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.05)
    host_key = (directory / "host_key.pub").read_text().split()
    return SshServer("127.0.0.1", port, getpass.getuser(), directory / "client_key",
                     f"{host_key[0]} {host_key[1]}", directory, process)

"""The NoCloud seed of one boot: a temporary login key and a temporary host key.

The guest gets the host key through cloud-init, so the client can verify the
guest's identity instead of trusting whatever answers on the forwarded port.
Both keys live only in the build's work directory; the login key carries the
comment recipe-build-<id>, which sysprep removes from the image.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from engine.errors import BuildError
from engine.remote.ssh import BUILD_KEY_MARK


@dataclass(frozen=True)
class BootKeys:
    """One boot's login key (its private half in a 0600 file) and host key."""

    private_key: Path
    login_public: str
    host_public: str                    # "ssh-ed25519 AAAA..."
    host_private: str = field(repr=False)


@dataclass(frozen=True)
class Seed:
    iso: Path
    keys: BootKeys

    @property
    def private_key(self) -> Path:             # the login key (OpenSSH format, mode 0600)
        return self.keys.private_key

    @property
    def host_public_key(self) -> str:          # "ssh-ed25519 AAAA..." the guest will present
        return self.keys.host_public

    @property
    def host_private_key(self) -> str:         # for a resumed guest, given over SSH (RotateKeys)
        return self.keys.host_private


def user_data(user: str, login_public_key: str, host_private: str, host_public: str) -> str:
    config = {
        "users": [{"name": user, "sudo": "ALL=(ALL) NOPASSWD:ALL", "shell": "/bin/bash",
                              "lock_passwd": True, "ssh_authorized_keys": [login_public_key]}],
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],
        "ssh_keys": {"ed25519_private": host_private, "ed25519_public": host_public},
        "disable_root": user != "root",
        "ssh_pwauth": False,
    }
    if user == "root":   # cloud-init adds the default user's keys to root when root logins are allowed
        config["users"] = ["default"]
        config["disable_root"] = False
        config["ssh_authorized_keys"] = [login_public_key]
    # JSON is YAML, and it needs no YAML writer here
    return "#cloud-config\n" + json.dumps(config, indent=2) + "\n"


def make_keys(directory: Path, build_id: str, boot_name: str) -> BootKeys:
    directory.mkdir(parents=True, exist_ok=True)
    login = asyncssh.generate_private_key("ssh-ed25519", comment=f"{BUILD_KEY_MARK}{build_id}-{boot_name}")
    host = asyncssh.generate_private_key("ssh-ed25519", comment=f"recipe-host-{build_id}")
    private_key = directory / "login_key"
    private_key.touch(mode=0o600)
    private_key.write_bytes(login.export_private_key("openssh"))
    return BootKeys(private_key, login.export_public_key("openssh").decode().strip(),
                    " ".join(host.export_public_key("openssh").decode().split()[:2]),
                    host.export_private_key("openssh").decode())


async def make_seed(directory: Path, build_id: str, boot_name: str, user: str, hostname: str) -> Seed:
    """Write keys and user-data into directory and build the seed ISO (volume label cidata)."""
    keys = make_keys(directory, build_id, boot_name)
    content = directory / "cidata"
    content.mkdir(exist_ok=True)
    (content / "user-data").write_text(user_data(user, keys.login_public, keys.host_private, keys.host_public))
    (content / "meta-data").write_text(f"instance-id: recipe-{build_id}-{boot_name}\nlocal-hostname: {hostname}\n")
    iso = directory / "seed.iso"
    process = await asyncio.create_subprocess_exec(
        "xorriso", "-as", "mkisofs", "-quiet", "-volid", "cidata", "-joliet", "-rock", "-output", str(iso),
        str(content / "user-data"), str(content / "meta-data"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise BuildError(f"could not make the cloud-init seed: {output.decode(errors='replace')[-300:]}",
                         hint="is xorriso installed? (make installs it)")
    return Seed(iso, keys)

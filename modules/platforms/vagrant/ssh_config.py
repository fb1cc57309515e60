"""Where the machine answers SSH, from `vagrant ssh-config` (parsed by python-vagrant)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import vagrant

from engine.errors import BuildError


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()

    def identity_file(self) -> str | None:
        """The first IdentityFile that exists (Vagrant lists the generated key, then the insecure one)."""
        return next((path for path in self.identity_files if os.path.isfile(path)), None)


def parse_ssh_config(text: str) -> SshTarget:
    """HostName, Port, User and every IdentityFile of the first Host block of `vagrant ssh-config`."""
    try:
        conf = vagrant.Vagrant().conf(ssh_config=text)     # python-vagrant's parser: keys of the Host section
    except ValueError as exc:
        raise BuildError(f"cannot read vagrant ssh-config: {exc}: {text.strip()[:300]!r}") from None
    host, port = conf.get("HostName"), conf.get("Port", "22")
    if not host:
        raise BuildError(f"vagrant ssh-config gives no HostName: {text.strip()[:300]!r}",
                         hint="the machine has no address yet; is it running? (vagrant status)")
    try:
        port_number = int(port)
    except ValueError:
        raise BuildError(f"vagrant ssh-config gives a Port that is not a number: {port!r}") from None
    identities = []
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "IdentityFile" and value.strip():
            identities.append(os.path.expanduser(value.strip().strip('"')))
    return SshTarget(host=host, port=port_number, user=conf.get("User") or "vagrant",
                     identity_files=tuple(dict.fromkeys(identities)))

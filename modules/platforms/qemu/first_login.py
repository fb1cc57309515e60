"""The first login to a freshly installed system, which has no cloud-init to hand it recipe's keys.

The installed disk is booted alone, and recipe logs in the way the recipe says the installer set up (the
source's ssh.user with ssh.password, or ssh.private_key_file). The host key the system presents then is
trusted on first use: nothing else could vouch for it, and this connection is local (QEMU's user network,
forwarded to 127.0.0.1). recipe authorizes a key of its own and keeps it, with that host key, beside the
installed image: every build after verifies the host key and logs in with the key, never with the password,
and RotateKeys gives each build its own keys at once.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from engine.errors import BuildError
from engine.remote.connection import Become
from engine.remote.ssh import BUILD_KEY_MARK, Endpoint, SshSession
from modules.platforms.qemu.bootstrap_steps import Log, Status
from modules.platforms.qemu.machine import POWEROFF, Machine, MachineSpec

SHUTDOWN_TIMEOUT = 120.0
# The base's key carries the mark of a build's key: sysprep removes it from an image, and RotateKeys replaces
# it with the build's own.
AUTHORIZE = """set -eu
umask 077
mkdir -p "$HOME/.ssh"
touch "$HOME/.ssh/authorized_keys"
cat >> "$HOME/.ssh/authorized_keys"
"""


@dataclass(frozen=True)
class FirstLogin:
    """How to log in to the installed system the first time: the source's ssh settings."""

    user: str
    password: str | None = field(default=None, repr=False)
    private_key_file: str | None = None
    connect_timeout: float = 600.0


async def first_login(disk: Path, work: Path, spec: MachineSpec, login: FirstLogin, say: Log,
                      status: Status | None) -> tuple[bytes, str]:
    """Boot the installed disk, log in, authorize a new key; that key (OpenSSH private key) and the host key."""
    machine = Machine(spec, work / "first-login.log")
    session = SshSession(Endpoint(host="127.0.0.1", port=spec.ssh_port, user=login.user, password=login.password,
                                  private_key_file=login.private_key_file))
    try:
        if status:
            status("booting the installed system for its first login")
        await machine.start()
        await _connect(session, machine, login)
        host_key = session.server_host_key()
        fingerprint = asyncssh.import_public_key(host_key).get_fingerprint()
        say(f"installer: first login as {login.user}: trusted the host key the installed system presented, "
            f"{fingerprint}, on this first use; every build verifies it")
        if status:
            status(f"first login: trusted the installed system's host key {fingerprint} on first use")
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{BUILD_KEY_MARK}installed-base")
        result = await session.run(AUTHORIZE, stdin=key.export_public_key("openssh").decode(), timeout=60)
        if not result.ok:
            raise BuildError(f"could not authorize recipe's key on the installed system: "
                             f"{(result.stdout + result.stderr).strip()[-300:]}")
        await _power_off(session, machine, login)
        return key.export_private_key("openssh"), host_key
    finally:
        await session.close()
        await machine.stop(grace=2.0)


async def _connect(session: SshSession, machine: Machine, login: FirstLogin) -> None:
    connect = asyncio.ensure_future(session.connect(login.connect_timeout))
    exited = asyncio.ensure_future(machine.wait())
    try:
        await asyncio.wait([connect, exited], return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
        if not connect.done():
            connect.cancel()
            await asyncio.gather(connect, return_exceptions=True)
    if connect.cancelled():
        raise BuildError(f"the installed system stopped before SSH answered; console:\n{machine.console_tail()}",
                         hint="the installer's system did not boot from its disk: does it install a boot loader?")
    try:
        connect.result()
    except BuildError as exc:
        raise BuildError(f"first login to the installed system failed: {exc.message}; last lines of its console:\n"
                         f"{machine.console_tail()}",
                         hint="the answer file must create ssh.user with ssh.password (or authorize "
                              "ssh.private_key_file) and install and enable an SSH server") from None


async def _power_off(session: SshSession, machine: Machine, login: FirstLogin) -> None:
    become = None if login.user == "root" else Become("root", password=login.password)
    try:
        await session.run(POWEROFF, become=become, timeout=60)
    except BuildError:
        pass                    # the connection may drop as the machine goes down
    await session.close()
    if not await machine.wait(SHUTDOWN_TIMEOUT):
        raise BuildError(f"the installed system did not power off within {SHUTDOWN_TIMEOUT:g} s",
                         hint=f"can {login.user} run poweroff through sudo?")

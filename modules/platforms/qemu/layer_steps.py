"""The steps a qemu build takes for its cache layers: plan where to start, keep the booted machine's layer, and
give a resumed machine this build's keys."""
from __future__ import annotations

import asyncio
import secrets
import shlex
import time
from dataclasses import dataclass

import asyncssh

from engine.build.layer_keys import KeyInputs, task_keys
from engine.build.runner import BuildState, Cleanup
from engine.cache.layer_store import LayerStore
from engine.errors import BuildError
from engine.local_cache import layers_dir
from engine.process import run_tool
from engine.remote.connection import Become
from engine.remote.ssh import SshSession
from modules.platforms.qemu.layers import LayerWriter, first_key, plan
from modules.platforms.qemu.machine import QEMU
from modules.platforms.qemu.steps import Boot, VmRun, disk_size


@dataclass
class PlanLayers:
    """Name this build's layers and find the deepest one a build has kept: the build starts there."""

    vm: VmRun
    name: str = "cache"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        if state.options.check or self.vm.base is None:
            return                          # --check changes nothing: nothing to keep
        store = LayerStore(layers_dir())
        hmac_key = await asyncio.to_thread(store.hmac_key)
        recipe, config = state.recipe, self.vm.config
        version = (await run_tool(QEMU, "--version", what="qemu --version")).splitlines()[0]
        settings = {"cpus": config.cpus, "memory": config.memory, "firmware": config.firmware,
                    "accelerator": self.vm.accel, "qemu_args": list(config.qemu_args), "disk_size": disk_size(self.vm),
                    "user": state.build.source.ssh.user, "qemu": version}
        first = first_key(settings, self.vm.base)
        tags = (tuple(sorted(state.options.tags)), tuple(sorted(state.options.skip_tags)))
        keys = task_keys(first, recipe.tasks, KeyInputs(recipe, state.build.info.as_vars(), hmac_key, tags))
        chosen = plan(store, first, keys, fresh=state.options.no_cache, max_age=recipe.cache_max_age)
        variables = {name: value for layer in recipe.variables.layers() for name, value in layer.items()}
        writer = LayerWriter(store, chosen, state, tuple(task.label for task in recipe.tasks),
                             [str(variables[name]) for name in recipe.secrets if variables.get(name) is not None])
        cleanup.push("cache layers in use", lambda: asyncio.to_thread(writer.release))
        self.vm.layers = writer
        state.task_cache = writer
        start = chosen.start
        stop = next((index for index, why in enumerate(chosen.why_not) if why), None)
        state.events.emit("cache", layers=sum(1 for key in chosen.keys if key), resumes=chosen.done if start else None,
                          warm=chosen.warm, layer=start.record.key[:12] if start else None,
                          not_cached="" if stop is None else f"{recipe.tasks[stop].label!r} on: {chosen.why_not[stop]}")


@dataclass
class FirstLayer:
    """The booted, connected machine: a layer with its memory, which any build of this base and VM resumes."""

    vm: VmRun
    name: str = "keep the booted machine"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        writer = self.vm.layers
        if writer is None or writer.plan.start is not None:
            return
        await writer.checkpoint(None, time.monotonic() - self.vm.boot_started)


@dataclass
class RotateKeys:
    """A resumed machine still has the keys of the build that kept it: give it this build's login key, host key,
    hostname, machine-id, clock and fresh entropy, and connect again verifying the new host key."""

    vm: VmRun
    boot: Boot
    name: str = "new keys"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        if self.boot.rotate_to is None:
            return
        endpoint, host_private = self.boot.rotate_to
        assert state.connection and endpoint.private_key_file and endpoint.host_key
        login_public = (await asyncio.to_thread(_public_key_of, endpoint.private_key_file))
        user = state.build.source.ssh.user
        hostname = self.vm.config.hostname or state.build.info.recipe
        script = ROTATE.format(user=shlex.quote(user), hostname=shlex.quote(hostname), epoch=int(time.time()),
                               entropy=secrets.token_hex(64))
        data = f"{login_public}\n{endpoint.host_key}\n{host_private}"
        result = await state.connection.run(script, stdin=data, become=None if user == "root" else Become("root"),
                                            timeout=120)
        if not result.ok:
            raise BuildError(f"could not give the resumed machine this build's keys: "
                             f"{(result.stdout + result.stderr).strip()[-400:]}",
                             hint="run with --no-cache to boot instead of resuming")
        session = SshSession(endpoint, warn=lambda msg: state.events.emit("warning", msg=msg))
        cleanup.push(f"ssh connection to {endpoint}", session.close)
        await session.connect(60)
        await state.connection.close()
        state.connection, state.endpoint = session, endpoint
        state.events.emit("connected", endpoint=str(endpoint), host_key_verified=session.host_key_verified)


# sshd keeps running sessions on a restart (Debian's ssh.service kills only the listener)
ROTATE = """set -eu
read -r login; read -r hostpub; hostkey=$(cat)
home=$(getent passwd {user} | cut -d: -f6)
printf '%s\\n' "$login" > "$home/.ssh/authorized_keys"
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
(umask 077; printf '%s\\n' "$hostkey" > /etc/ssh/ssh_host_ed25519_key)
printf '%s\\n' "$hostpub" > /etc/ssh/ssh_host_ed25519_key.pub
hostname {hostname}; printf '%s\\n' {hostname} > /etc/hostname
date -u -s @{epoch} >/dev/null
printf '%s' {entropy} > /dev/urandom
if [ -s /etc/machine-id ]; then
  od -An -tx1 -N16 /dev/urandom | tr -d ' \\n' > /etc/machine-id; echo >> /etc/machine-id
fi
systemctl restart ssh 2>/dev/null || systemctl restart sshd 2>/dev/null || service ssh restart
"""


def _public_key_of(private_key_file: str) -> str:
    return asyncssh.read_private_key(private_key_file).export_public_key("openssh").decode().strip()

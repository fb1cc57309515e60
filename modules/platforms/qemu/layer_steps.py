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
from engine.cache.layer_store import LayerStore, prune
from engine.errors import BuildError
from engine.local_cache import layers_dir
from engine.process import run_tool
from engine.remote.connection import Become
from engine.remote.ssh import BUILD_KEY_MARK, SshSession
from modules.platforms.qemu.layers import LayerWriter, first_key, plan
from modules.platforms.qemu.machine import QEMU
from modules.platforms.qemu.steps import Boot, VmRun, disk_size


@dataclass
class PlanLayers:
    """Name this build's layers and find the deepest one a build has kept: the build starts there."""

    vm: VmRun
    name: str = "cache"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        if state.options.check or self.vm.base is None or state.options.cache_max_size == 0:
            return                          # --check changes nothing; a cache of size 0 keeps nothing
        store = LayerStore(layers_dir())
        hmac_key = await asyncio.to_thread(store.hmac_key)
        recipe, config = state.recipe, self.vm.config
        version = (await run_tool(QEMU, "--version", what="qemu --version")).splitlines()[0]
        settings = {"cpus": config.cpus, "memory": config.memory, "firmware": config.firmware,
                    "accelerator": self.vm.accel, "qemu_args": list(config.qemu_args), "disk_size": disk_size(self.vm),
                    "user": state.build.source.ssh.user, "qemu": version}
        first = first_key(settings, self.vm.base)
        tags = (tuple(sorted(state.options.tags)), tuple(sorted(state.options.skip_tags)))
        host = (self.vm.config.hostname or state.build.info.recipe, state.build.source.name)
        keys = task_keys(first, recipe.tasks, KeyInputs(recipe, state.build.info.as_vars(), hmac_key, host, tags))
        chosen = plan(store, first, keys, fresh=state.options.no_cache, max_age=recipe.cache_max_age)
        variables = {name: value for layer in recipe.variables.layers() for name, value in layer.items()}
        writer = LayerWriter(store, chosen, state, tuple(task.heading for task in recipe.tasks),
                             [str(variables[name]) for name in recipe.secrets if variables.get(name) is not None],
                             base_format=self.vm.base_format,
                             renew_after=0.0 if state.options.no_cache else recipe.cache_max_age)
        cleanup.push("cache layers in use", lambda: self._release(writer, store, state))
        self.vm.layers = writer
        state.task_cache = writer
        start = chosen.start
        stop = next((index for index, why in enumerate(chosen.why_not) if why), None)
        not_cached = "" if stop is None else f"{recipe.tasks[stop].heading!r} on: {chosen.why_not[stop]}"
        state.events.emit("cache", layers=sum(1 for key in chosen.keys if key), resumes=chosen.done if start else None,
                          warm=chosen.warm, layer=start.record.key[:12] if start else None, not_cached=not_cached)

    @staticmethod
    async def _release(writer: LayerWriter, store: LayerStore, state: BuildState) -> None:
        """The build's layers are free for others; then the cache keeps to its size (the least recently used
        go first; a layer another build uses stays)."""
        await writer.settle()
        await asyncio.to_thread(writer.release)
        limit = state.options.cache_max_size
        if limit is not None:
            removed = await asyncio.to_thread(prune, store, None, limit)
            if removed:
                state.events.emit("log", source="cache", line=f"removed {len(removed)} least recently used cache "
                                                              f"layer(s): the layers may take {limit >> 20} MiB "
                                                              "(RECIPE_CACHE_MAX_SIZE)")


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
    hostname, machine-id, clock and fresh entropy, then connect again verifying the new host key. That second
    connection is made while the facts are gathered over the first (UseNewKeys takes it up after them): the
    facts see the machine as renamed, and a warm boot spends no time waiting for sshd."""

    vm: VmRun
    boot: Boot
    name: str = "new keys"
    reconnect: asyncio.Task | None = None
    session: SshSession | None = None

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        if self.boot.rotate_to is None:
            return
        endpoint, host_private = self.boot.rotate_to
        assert state.connection and endpoint.private_key_file and endpoint.host_key
        login_public = (await asyncio.to_thread(_public_key_of, endpoint.private_key_file))
        user = state.build.source.ssh.user
        hostname = self.vm.config.hostname or state.build.info.recipe     # as the seed names a booted one
        script = ROTATE.format(user=shlex.quote(user), hostname=shlex.quote(hostname), epoch=int(time.time()),
                               mark=shlex.quote(BUILD_KEY_MARK),
                               entropy=secrets.token_hex(64))
        data = f"{login_public}\n{endpoint.host_key}\n{host_private}"
        result = await state.connection.run(script, stdin=data, become=None if user == "root" else Become("root"),
                                            timeout=120)
        if not result.ok:
            raise BuildError(f"could not give the resumed machine this build's keys: "
                             f"{(result.stdout + result.stderr).strip()[-400:]}",
                             hint="run with --no-cache to boot instead of resuming")
        session = SshSession(endpoint, warn=lambda msg: state.events.emit("warning", msg=msg))
        self.session, self.reconnect = session, asyncio.create_task(session.connect(60))
        cleanup.push(f"ssh connection to {endpoint} with this build's keys", self._close)

    async def _close(self) -> None:
        if self.reconnect is not None and not self.reconnect.done():
            self.reconnect.cancel()
            await asyncio.gather(self.reconnect, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


@dataclass
class UseNewKeys:
    """Go on over the connection RotateKeys made with this build's keys (the first one, with the kept layer's
    keys, is closed): every task runs over a connection that verified this build's host key."""

    rotate: RotateKeys
    name: str = "connect with the new keys"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        if self.rotate.reconnect is None:
            return
        assert self.rotate.session and state.connection
        await self.rotate.reconnect
        await state.connection.close()
        session = self.rotate.session
        state.connection, state.endpoint = session, session.endpoint
        state.events.emit("connected", endpoint=str(session.endpoint), host_key_verified=session.host_key_verified)


# sshd keeps running sessions when its listener re-executes itself on SIGHUP (reading the new host key): far
# quicker under TCG than `systemctl restart`, and the script returns once the new listener has its sockets.
# With socket activation (ssh.socket) every connection starts its own sshd: nothing to restart.
# /etc/hosts: cloud-init's manage_etc_hosts line named the earlier build's hostname.
# authorized_keys keeps the keys recipe did not put there (an installed system's own), and loses recipe's.
ROTATE = """set -eu
read -r login; read -r hostpub; hostkey=$(cat)
home=$(getent passwd {user} | cut -d: -f6)
keys="$home/.ssh/authorized_keys"
others=$(grep -v -- {mark} "$keys" 2>/dev/null || true)
printf '%s\\n' "$others" "$login" | sed '/^$/d' > "$keys"
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
(umask 077; printf '%s\\n' "$hostkey" > /etc/ssh/ssh_host_ed25519_key)
printf '%s\\n' "$hostpub" > /etc/ssh/ssh_host_ed25519_key.pub
old=$(hostname)
hostname {hostname}; printf '%s\\n' {hostname} > /etc/hostname
if [ "$old" != {hostname} ] && [ -w /etc/hosts ]; then
  hosts=$(awk -v old="$old" -v new={hostname} '$1 == "127.0.1.1" {{ for (i = 2; i <= NF; i++)
    if ($i == old) $i = new; else if (index($i, old ".") == 1) $i = new substr($i, length(old) + 1) }} 1' /etc/hosts)
  printf '%s\\n' "$hosts" > /etc/hosts
fi
date -u -s @{epoch} >/dev/null
printf '%s' {entropy} > /dev/urandom
if [ -s /etc/machine-id ]; then
  od -An -tx1 -N16 /dev/urandom | tr -d ' \\n' > /etc/machine-id; echo >> /etc/machine-id
fi
pid=$(cat /run/sshd.pid 2>/dev/null || true)
sockets() {{ ls -l "/proc/$pid/fd" 2>/dev/null | sed -n 's/.*socket:\\[\\([0-9]*\\)\\]$/\\1/p' | sort | tr '\\n' ' '; }}
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  before=$(sockets); kill -HUP "$pid"; n=0
  while [ $n -lt 100 ]; do
    now=$(sockets); [ -n "$now" ] && [ "$now" != "$before" ] && break; sleep 0.05; n=$((n + 1))
  done
elif ! systemctl is-active --quiet ssh.socket 2>/dev/null; then
  systemctl restart ssh 2>/dev/null || systemctl restart sshd 2>/dev/null || service ssh restart
fi
"""


def _public_key_of(private_key_file: str) -> str:
    return asyncssh.read_private_key(private_key_file).export_public_key("openssh").decode().strip()

"""The steps of a vagrant build: project, box, up, connect, halt, disk, export.

Each step pushes its cleanup before it acts (engine.build.runner). `vagrant destroy --force` is pushed
before `vagrant up` starts, so a build stopped anywhere (a failure, Ctrl-C, a timeout) destroys the
machine; whatever destroy leaves (a killed `up`, a failing provider) is then found and removed the way
`recipe sweep --local` finds a dead run's (modules.platforms.vagrant.sweep). The private VAGRANT_HOME
(boxes, keys) goes after the machine, with the work dir.
"""
from __future__ import annotations

import asyncio
import hashlib
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import asyncssh

from engine.accelerator import choose_accelerator
from engine.artifacts.export_chain import Chain, export_context, machine_shape
from engine.build.runner import BuildState, Cleanup
from engine.build.steps import Connect
from engine.errors import BuildError
from engine.local_cache import default_cache_dir
from engine.recipe.model import Build
from engine.remote.ssh import Endpoint, SshSession
from modules.platforms.vagrant import libvirt
from modules.platforms.vagrant.cli import INSTALL_HINT, PLUGINS, VagrantCli
from modules.platforms.vagrant.config import VagrantConfig
from modules.platforms.vagrant.disks import machine_disk
from modules.platforms.vagrant.ssh_config import parse_ssh_config
from modules.platforms.vagrant.sweep import VagrantLeftovers
from modules.platforms.vagrant.vagrantfile import MACHINE, Names, render

DESTROY_TIMEOUT = 600.0
FORCED_HALT_TIMEOUT = 120.0
HOST_KEY_TIMEOUT = 60.0
STOPPED = ("shutoff", "poweroff", "not_running", "stopped", "not_created")
# the host key asked for at the first connection, best first (asyncssh's own order puts RSA first)
HOST_KEY_ALGORITHMS = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                       "rsa-sha2-512", "rsa-sha2-256")


@dataclass
class VagrantRun:
    """What the steps of one vagrant build share."""

    build: Build
    config: VagrantConfig
    cli: VagrantCli | None = None
    private_home: bool = True
    names: Names | None = None
    accel: str = "tcg"
    record: libvirt.MachineRecord | None = None
    step: str = ""                           # the step vagrant's output lines belong to (the live view's status)

    def vagrant(self) -> VagrantCli:
        assert self.cli is not None, "the vagrant project step comes first"
        return self.cli


def box_volume_prefix(box: str) -> str:
    """How vagrant-libvirt names the box image it uploads to the pool: <name>_vagrant_box_image_<version>_..."""
    return box.replace("/", "-VAGRANTSLASH-") + "_vagrant_box_image_"


def box_name(config: VagrantConfig, work_dir: Path, private_home: bool) -> str:
    """The name the build's box goes by. A box file added to a private VAGRANT_HOME is named after the work
    dir: unique, so the box image vagrant-libvirt uploads to a shared pool is this build's alone."""
    if config.box_url and not config.catalog:
        if private_home:
            return work_dir.name
        if not config.box:
            return "recipe-box-" + hashlib.sha256(config.box_url.encode()).hexdigest()[:12]
    assert config.box, "the schema requires box without box_url"
    return config.box


@dataclass
class Project:
    """The work dir becomes a Vagrant project: a Vagrantfile, and VAGRANT_HOME (private unless given)."""

    vm: VagrantRun
    name: str = "vagrant project"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        assert state.work_dir
        config, work = self.vm.config, state.work_dir
        self.vm.step = self.name
        self.vm.private_home = config.vagrant_home is None
        home = work / "vagrant.d" if self.vm.private_home else Path(config.vagrant_home or "").expanduser()
        if self.vm.private_home:
            cleanup.push(f"private VAGRANT_HOME {home}", lambda: asyncio.to_thread(shutil.rmtree, home, True))
        home.mkdir(parents=True, exist_ok=True)

        def line(text: str) -> None:
            state.events.emit("step.status", step=self.vm.step, status=text, source="vagrant")

        def progress(what: str, percent: int) -> None:
            state.events.emit("progress", phase=f"vagrant {what}", done=percent, total=100)

        self.vm.cli = VagrantCli(project=work, home=home, on_line=line, on_progress=progress)
        plugin = PLUGINS.get(config.provider)
        if plugin:
            installed = await self.vm.vagrant().ask("plugin list", lambda v: [p.name for p in v.plugin_list()])
            if plugin not in installed:
                hint = INSTALL_HINT if plugin == "vagrant-libvirt" else f"vagrant plugin install {plugin}"
                raise BuildError(f"the {config.provider} provider needs the {plugin} plugin, which Vagrant does not "
                                 f"have (it has: {', '.join(installed) or 'no plugins'})", hint=hint)
        if config.provider == "libvirt":
            self.vm.accel = await choose_accelerator(config.accelerator,
                                                     remembered=default_cache_dir() / "accelerator.json")
        info = state.build.info
        self.vm.names = Names(box=box_name(config, work, self.vm.private_home), prefix=f"{work.name}-",
                              build=info.name, build_id=info.id)
        (work / "Vagrantfile").write_text(render(config, self.vm.names, self.vm.accel))
        self.vm.record = libvirt.MachineRecord(provider=config.provider, uri=config.libvirt_uri,
                                               domain=self.vm.names.prefix + MACHINE,
                                               pool=config.storage_pool or "default")
        self.vm.record.save(work)
        state.events.emit("vagrant", project=str(work), vagrant_home=str(home), private_home=self.vm.private_home,
                          box=self.vm.names.box, provider=config.provider,
                          accelerator=self.vm.accel if config.provider == "libvirt" else None)


@dataclass
class AddBox:
    """`vagrant box add` of box_url: a box file (with --checksum) or a catalog (with --box-version)."""

    vm: VagrantRun
    name: str = "box add"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config, names = self.vm.config, self.vm.names
        assert config.box_url and names
        self.vm.step = self.name
        cli = self.vm.vagrant()
        if not self.vm.private_home:
            boxes = await cli.ask("box list", lambda v: v.box_list())
            if any(b.name == names.box and b.provider == config.provider and
                   (config.box_version is None or b.version == config.box_version) for b in boxes):
                state.events.emit("step.status", step=self.name, status=f"{names.box} is in VAGRANT_HOME already")
                return
        url = config.box_url
        parsed = urlparse(url)
        if parsed.scheme == "file" and not Path(unquote(parsed.path)).is_file():
            raise BuildError(f"box_url names no file: {unquote(parsed.path)}", hint="check the path of box_url")
        args = ["box", "add", "--provider", config.provider, "--force"]
        if config.catalog:
            args += ["--name", names.box] if config.box else []
            args += ["--box-version", config.box_version] if config.box_version else []
        else:
            args += ["--name", names.box]
        if config.checksum:
            args += ["--checksum", config.checksum.hexdigest, "--checksum-type", config.checksum.kind]
        await cli.run(*args, url, what="box add",
                      hint="box_url must be a box file for the provider (or a catalog, with box and box_version)")


@dataclass
class Up:
    """`vagrant up`; its cleanup, pushed first, destroys the machine whatever happens."""

    vm: VagrantRun
    name: str = "vagrant up"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        assert state.work_dir and self.vm.names and self.vm.record
        config, work, cli = self.vm.config, state.work_dir, self.vm.vagrant()
        self.vm.step = self.name
        if config.provider == "libvirt" and self.vm.private_home:
            # the box image vagrant-libvirt uploads into the pool is this build's to remove, unless it was there
            prefix = box_volume_prefix(self.vm.names.box)
            try:
                present = await asyncio.to_thread(libvirt.volumes, config.libvirt_uri, self.vm.record.pool)
            except libvirt.LibvirtFailure as exc:
                raise BuildError(f"libvirt does not answer: {exc}",
                                 hint=f"is libvirtd running, and is the storage pool {self.vm.record.pool} there? "
                                      f"(virsh -c {config.libvirt_uri} pool-list --all)") from None
            if not any(name.startswith(prefix) for name in present):
                self.vm.record.box_volume_prefix = prefix
                self.vm.record.save(work)
        cleanup.push(f"vagrant machine ({config.provider}, vagrant destroy)", lambda: self.destroy(state))
        await cli.run("up", "--provider", config.provider, what="up", timeout=config.boot_timeout + 1800,
                      hint="see the vagrant lines above; under TCG a boot takes minutes: raise boot_timeout if "
                           "it timed out")

    async def destroy(self, state: BuildState) -> None:
        assert state.work_dir
        cli = self.vm.vagrant()
        self.vm.step = "cleanup"
        try:
            await cli.run("destroy", "--force", what="destroy", timeout=DESTROY_TIMEOUT)
        except BuildError as exc:
            state.events.emit("warning", msg=f"{exc.message}; removing the machine directly")
        finder = VagrantLeftovers()
        left = await asyncio.to_thread(finder.find, state.work_dir, state.build.info.id)
        failures = []
        for leftover in left:
            try:
                await asyncio.to_thread(finder.remove, leftover)
                state.events.emit("step.status", step="cleanup", status=f"removed {leftover.kind} {leftover.id}")
            except OSError as exc:
                failures.append(f"{leftover.kind} {leftover.id}: {exc}")
        if failures:
            raise BuildError("left behind: " + "; ".join(failures),
                             hint="`recipe sweep --local` tries again once the build's run is over")


class ConnectVagrant(Connect):
    """recipe's own SSH to where `vagrant ssh-config` says. Unless the source pins ssh.host_key (or gives
    ssh.known_hosts), the host key is trusted on first use, said with its fingerprint in the build log,
    and pinned: every later connection (after a reboot, ansible-playbook's) must present that same key."""

    def __init__(self, vm: VagrantRun):
        super().__init__()
        self.vm = vm

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        ssh = state.build.source.ssh
        text = await self.vm.vagrant().ask("ssh-config", lambda v: v.ssh_config(),
                                           hint="is the machine running? (vagrant status in the work dir)")
        target = parse_ssh_config(text)
        key_file = ssh.private_key_file or target.identity_file()
        if not key_file and not ssh.password:
            raise BuildError(f"vagrant ssh-config names no key file that exists ({', '.join(target.identity_files)})",
                             hint="give ssh.private_key_file (or ssh.password)")
        endpoint = Endpoint(host=target.host, port=target.port, user=self.vm.config.ssh_user or target.user,
                            private_key_file=key_file, password=ssh.password, host_key=ssh.host_key,
                            known_hosts=ssh.known_hosts)
        if not endpoint.host_key and not endpoint.known_hosts:
            endpoint = await self._trust_on_first_use(endpoint, state)
        session = SshSession(endpoint, warn=lambda msg: state.events.emit("warning", msg=msg))
        cleanup.push(f"ssh connection to {endpoint}", session.close)
        await session.connect(ssh.connect_timeout)
        state.connection, state.endpoint = session, endpoint
        state.events.emit("connected", endpoint=str(endpoint), host_key_verified=session.host_key_verified)

    async def _trust_on_first_use(self, endpoint: Endpoint, state: BuildState) -> Endpoint:
        """The key the machine presents at the first connection, pinned for the rest of the build."""
        key = await first_host_key(endpoint.host, endpoint.port, HOST_KEY_TIMEOUT)
        line = key.export_public_key("openssh").decode().strip()
        message = (f"host key of {endpoint.host}:{endpoint.port} trusted on first use: {key.get_algorithm()} "
                   f"{key.get_fingerprint()} (nothing to check it against: a Vagrant box's host key is known only "
                   "once it boots); pinned, every later connection of this build must present it")
        state.events.emit("step.status", step=self.name, status=message, host_key=line,
                          fingerprint=key.get_fingerprint(), trust="first use")
        return replace(endpoint, host_key=line)


async def first_host_key(host: str, port: int, timeout: float) -> asyncssh.SSHKey:
    """The server's host key, asked without logging in; retried while sshd is not answering yet."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = "no answer"
    while asyncio.get_running_loop().time() < deadline:
        try:
            key = await asyncio.wait_for(asyncssh.get_server_host_key(
                host, port, server_host_key_algs=list(HOST_KEY_ALGORITHMS)), 30)
            if key is not None:
                return key
            last = "no host key presented"
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            last = f"{type(exc).__name__}: {exc}".rstrip(": ")
        await asyncio.sleep(1)
    raise BuildError(f"could not read the host key of {host}:{port} within {timeout:g}s: {last}",
                     hint="vagrant up said the machine was ready; is sshd still running in it?")


@dataclass
class Halt:
    """`vagrant halt`, and `vagrant halt --force` if it does not stop within halt_timeout."""

    vm: VagrantRun
    name: str = "vagrant halt"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config, cli = self.vm.config, self.vm.vagrant()
        self.vm.step = self.name
        if state.connection is not None:
            await state.connection.close()
            state.connection = None
        try:
            await cli.run("halt", what="halt", timeout=config.halt_timeout)
        except BuildError as exc:
            state.events.emit("warning", msg=f"{exc.message.splitlines()[0]}; forcing it off (vagrant halt --force)")
            await cli.run("halt", "--force", what="halt --force", timeout=FORCED_HALT_TIMEOUT)
        statuses = await cli.ask("status", lambda v: v.status())
        states = {s.name: s.state for s in statuses}
        if states.get(MACHINE) not in STOPPED:
            raise BuildError(f"the machine is still {states.get(MACHINE)!r} after vagrant halt",
                             hint="its disk cannot be exported while it runs")


@dataclass
class FindDisk:
    vm: VagrantRun
    name: str = "disk"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        assert state.work_dir
        config = self.vm.config
        state.disk, state.disk_format = await machine_disk(config.provider, state.work_dir, config.libvirt_uri)
        state.events.emit("disk", path=str(state.disk), format=state.disk_format)


@dataclass
class Export:
    """The build's exports as a chain, from the machine's disk (engine.artifacts.export_chain)."""

    vm: VagrantRun
    name: str = "export"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config = self.vm.config
        machine = machine_shape(state, cpus=config.cpus, memory_mib=config.memory, firmware="bios")
        made = await Chain(self.vm.build.exports, export_context(state, machine)).run()
        state.artifacts += [artifact.path for artifact in made]

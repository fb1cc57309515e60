"""The steps of a qemu build: work dir, base, disk, boot, connect, shut down, export, verify.

Each step pushes its cleanup before it acts (see engine.build.runner), so a build
stopped anywhere releases its QEMU process and files in reverse order.
"""
from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.artifacts.export import Artifact
from engine.artifacts.export_chain import Chain, export_context, machine_shape
from engine.build.executor import provision
from engine.build.runner import BuildState, Cleanup
from engine.build.steps import Connect
from engine.errors import BuildError
from engine.process import run_tool
from engine.recipe.model import Build
from engine.remote.connection import Become
from engine.remote.ssh import Endpoint, SshSession
from engine.accelerator import choose_accelerator
from engine.local_cache import default_cache_dir
from modules.platforms.qemu.base import resolve_base
from engine.units import parse_size
from modules.platforms.qemu.base_spec import BaseLogin, BootstrapBase, InstallerBase
from modules.platforms.qemu.boot_stage import BootStage, follow_console
from modules.platforms.qemu.bootstrap import DEFAULT_DISK_SIZE
from modules.platforms.qemu.config import QemuConfig
from modules.platforms.qemu.first_login import FirstLogin
from modules.platforms.qemu.installer import InstallRun, InstallVm
from modules.platforms.qemu.layers import DISK as LAYER_DISK
from modules.platforms.qemu.layers import HOST_KEY as LAYER_HOST_KEY
from modules.platforms.qemu.layers import LOGIN_KEY as LAYER_LOGIN_KEY
from modules.platforms.qemu.layers import STATE as LAYER_STATE
from modules.platforms.qemu.layers import VARS as LAYER_VARS
from modules.platforms.qemu.layers import LayerWriter
from modules.platforms.qemu.machine import OVMF_VARS, POWEROFF, Machine, MachineSpec, free_port
from modules.platforms.qemu.seed import make_keys, make_seed


@dataclass
class VmRun:
    """What the steps of one qemu build share."""

    build: Build
    config: QemuConfig
    base: Path | None = None
    base_format: str = "qcow2"
    base_size: int | None = None             # bytes, as qemu-img reports the virtual size
    accel: str = "tcg"
    machine: Machine | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    layers: LayerWriter | None = None        # the cache layers this build resumes and keeps (layer_steps)
    boot_started: float = 0.0                # monotonic time the build's QEMU started
    base_login: BaseLogin | None = None      # an installed base: the key and host key recipe logs in with first


@dataclass
class PrepareBase:
    vm: VmRun
    name: str = "base image"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        def progress(phase: str, done: int, total: int | None) -> None:
            state.events.emit("progress", phase=phase, done=done, total=total)

        def log(line: str) -> None:
            state.events.emit("log", source="base", line=line)

        def status(what: str) -> None:
            state.events.emit("step.status", step=self.name, status=what)

        config = self.vm.config
        self.vm.accel = await choose_accelerator(config.accelerator,
                                                 remembered=default_cache_dir() / "accelerator.json")
        install = None
        if isinstance(config.base, InstallerBase):
            assert state.work_dir
            ssh = state.build.source.ssh
            cleanup.push("the installer's console logs", lambda: _keep_consoles(state, state.work_dir / "installer"))
            install = InstallRun(work=state.work_dir / "installer",
                                 vm=InstallVm(self.vm.accel, config.cpus, config.memory, config.firmware),
                                 login=FirstLogin(ssh.user, ssh.password, ssh.private_key_file, ssh.connect_timeout))
        resolved = await resolve_base(config.base, default_cache_dir(), progress, log, status, install)
        self.vm.base, self.vm.base_format, self.vm.base_size = resolved.path, resolved.format, resolved.virtual_size
        self.vm.base_login = resolved.login
        state.events.emit("base", path=str(resolved.path), accelerator=self.vm.accel)


async def _keep_consoles(state: BuildState, folder: Path) -> None:
    """The installer's serial consoles (console-install.log, console-first-login.log) beside the artifacts,
    as a build's own: what an install did, or why it failed, outlives the work dir."""
    keep = state.options.output_dir / state.build.info.name
    for console in sorted(folder.glob("console-*.log")):
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(console, keep / console.name)


def disk_size(vm: VmRun) -> str | None:
    """What the build's disk is grown to: disk_size, or DEFAULT_DISK_SIZE for a smaller bootstrap base, or
    None (the base image's own size)."""
    wanted = vm.config.disk_size
    if wanted is None and isinstance(vm.config.base, BootstrapBase):
        if not vm.base_size or vm.base_size < parse_size(DEFAULT_DISK_SIZE):
            wanted = DEFAULT_DISK_SIZE
    if wanted and vm.base_size and parse_size(wanted) < vm.base_size:
        # qemu-img would cut the disk short, and the guest would find a broken filesystem
        raise BuildError(f"disk_size {wanted} is smaller than the base image ({vm.base_size / 2 ** 30:.2f} GiB)",
                         hint="raise disk_size, or leave it out to keep the base image's size")
    return wanted


@dataclass
class CreateDisk:
    """A qcow2 overlay on the cached base, which is never written, grown to disk_size.

    A bootstrap base is as small as its system allows: without disk_size its overlay is grown to
    DEFAULT_DISK_SIZE (4G), the size such disks always had; cloud-init's growpart grows the root at boot."""

    vm: VmRun
    name: str = "disk"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        assert state.work_dir and self.vm.base
        disk = state.work_dir / "disk.qcow2"
        wanted = disk_size(self.vm)
        size = [wanted] if wanted else []
        backing, backing_format = self.vm.base, self.vm.base_format
        layers = self.vm.layers
        if layers:                  # the first overlay is the first layer this build keeps, in its own folder
            disk = layers.first_top()
            if layers.plan.start:   # a layer holds the whole disk already, grown to its size
                backing, backing_format, size = layers.plan.start.path / LAYER_DISK, "qcow2", []
        await run_tool("qemu-img", "create", "-q", "-f", "qcow2", "-F", backing_format, "-b",
                       backing, disk, *size, what="qemu-img create (overlay)",
                       hint="disk_size must not be smaller than the base image")
        state.disk, state.disk_format = disk, "qcow2"


@dataclass
class Boot:
    """Start QEMU on a disk with a fresh seed; the Connect step after it uses its endpoint."""

    vm: VmRun
    boot_name: str = "build"
    disk: Path | None = None          # None: the build's disk
    name: str = "boot"
    endpoint: Endpoint | None = None
    rotate_to: tuple[Endpoint, str] | None = None     # resumed: this build's endpoint and host key (RotateKeys)

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        assert state.work_dir
        config, info = self.vm.config, state.build.info
        boot_dir = state.work_dir / self.boot_name
        user = state.build.source.ssh.user
        installed = self.vm.base_login is not None      # no cloud-init: no seed, keys over SSH (RotateKeys)
        seed = None if installed else await make_seed(boot_dir, info.id, self.boot_name, user,
                                                      config.hostname or info.recipe)
        keys = make_keys(boot_dir, info.id, self.boot_name) if seed is None else seed.keys
        port = free_port()
        vars_copy = None
        if config.firmware == "uefi":
            vars_copy = boot_dir / "OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS, vars_copy)
        disk = self.disk or state.disk
        assert disk is not None
        layers = self.vm.layers if self.boot_name == "build" else None
        resumed = layers.plan.start.path if layers and layers.plan.warm and layers.plan.start else None
        if resumed and vars_copy:
            shutil.copyfile(resumed / LAYER_VARS, vars_copy)     # the firmware's variables as they were saved
        spec = MachineSpec(name=f"recipe-{info.name}-{self.boot_name}", disk=disk,
                           console_log=boot_dir / "console.log", ssh_port=port, accel=self.vm.accel,
                           cpus=config.cpus, memory=config.memory, firmware=config.firmware,
                           seed=seed.iso if seed else None, ovmf_vars=vars_copy, extra_args=tuple(config.qemu_args),
                           pid_file=boot_dir / "qemu.pid", monitor=layers is not None,
                           incoming=resumed / LAYER_STATE if resumed else None)
        machine = Machine(spec, boot_dir / "qemu.log")
        cleanup.push(f"QEMU ({self.boot_name})", lambda: self._release(machine, state))
        self.vm.boot_started = time.monotonic()
        await machine.start()
        self.vm.machine = machine
        state.events.emit("booted", pid=machine.pid, port=port, accelerator=self.vm.accel, resumed=bool(resumed))
        self.endpoint = Endpoint(host="127.0.0.1", port=port, user=user, private_key_file=str(keys.private_key),
                                 host_key=keys.host_public)
        if layers:
            layers.machine, layers.keys_files = machine, (keys.private_key, keys.host_public)
        login = self._first_login(port, state, resumed)
        if login is not None:       # the machine trusts the keys of the build that kept it, or the base's, at first
            self.rotate_to = (self.endpoint, keys.host_private) if self.boot_name == "build" else None
            self.endpoint = login

    def _first_login(self, port: int, state: BuildState, resumed: Path | None) -> Endpoint | None:
        """How the booted machine is logged in to before RotateKeys, when not with this boot's keys: a resumed
        layer's keys, an installed base's, or (verifying an installed base's image) as the source says."""
        ssh, base = state.build.source.ssh, self.vm.base_login
        if resumed:
            return Endpoint(host="127.0.0.1", port=port, user=ssh.user,
                            private_key_file=str(resumed / LAYER_LOGIN_KEY),
                            host_key=(resumed / LAYER_HOST_KEY).read_text().strip())
        if base is None:
            return None
        if self.boot_name == "build":
            return Endpoint(host="127.0.0.1", port=port, user=ssh.user, private_key_file=str(base.private_key),
                            host_key=base.host_key)
        # the image was given the build's keys and may have been sysprepped: log in as the installer set up
        return Endpoint(host="127.0.0.1", port=port, user=ssh.user, password=ssh.password,
                        private_key_file=ssh.private_key_file)

    async def _release(self, machine: Machine, state: BuildState) -> None:
        await machine.stop()
        keep = state.options.output_dir / state.build.info.name
        keep.mkdir(parents=True, exist_ok=True)
        if machine.spec.console_log.exists():
            shutil.copyfile(machine.spec.console_log, keep / f"console-{self.boot_name}.log")


class ConnectVm(Connect):
    """Connect as soon as sshd answers; if QEMU dies or time runs out, quote the console.
    While it waits, the guest's boot stage, read from its console, is a step.status event."""

    def __init__(self, vm: VmRun, boot: Boot):
        super().__init__()
        self.vm, self.boot = vm, boot

    def target(self, state: BuildState) -> Endpoint:
        assert self.boot.endpoint is not None
        return self.boot.endpoint

    async def wait_connected(self, session: SshSession, state: BuildState) -> None:
        machine = self.vm.machine
        assert machine is not None
        connect = asyncio.ensure_future(session.connect(state.build.source.ssh.connect_timeout))
        exited = asyncio.ensure_future(machine.wait())
        stages = asyncio.ensure_future(follow_console(machine.spec.console_log, lambda s: self._stage(s, state)))
        try:
            await asyncio.wait([connect, exited], return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            stages.cancel()
            qemu_died = not connect.done()
            if qemu_died:               # or this step was cancelled (Ctrl-C): stop connecting either way
                connect.cancel()
        if qemu_died:
            raise BuildError(f"QEMU exited before SSH answered; console:\n{machine.console_tail()}",
                             hint="the image did not boot; see the console above")
        try:
            connect.result()
        except BuildError as exc:
            raise BuildError(f"{exc.message}; last lines of the console:\n{machine.console_tail()}",
                             hint="the guest booted but sshd or cloud-init did not come up in time"
                             if "timed out" not in exc.message else exc.hint) from None

    def _stage(self, stage: BootStage, state: BuildState) -> None:
        state.events.emit("step.status", step=self.name, status=f"booting: {stage.text}", stage=stage.phase)


@dataclass
class Shutdown:
    """poweroff over SSH, wait for QEMU to exit, and kill it only after the timeout."""

    vm: VmRun
    name: str = "shutdown"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        machine = self.vm.machine
        assert machine and state.connection
        become = None if state.build.source.ssh.user == "root" else Become("root")
        try:
            await state.connection.run(POWEROFF, become=become, timeout=30)
        except BuildError:
            pass  # the connection may drop as the machine goes down
        await state.connection.close()
        state.connection = None
        if not await machine.wait(self.vm.config.shutdown_timeout):
            state.events.emit("warning", msg=f"no poweroff after {self.vm.config.shutdown_timeout:g}s; killing QEMU")
            await machine.stop(grace=1.0)


@dataclass
class Export:
    """Run the build's exports as a chain (engine.artifacts.export_chain); the recipe's compiler has made sure
    one of them keeps the disk (a qcow2 when none writes a disk format)."""

    vm: VmRun
    name: str = "export"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config = self.vm.config
        machine = machine_shape(state, cpus=config.cpus, memory_mib=config.memory, firmware=config.firmware)
        chain = Chain(self.vm.build.exports, export_context(state, machine))
        made = await chain.run()
        self.vm.artifacts += made
        state.artifacts += [artifact.path for artifact in made]


@dataclass
class VerifyDisk:
    """A throwaway overlay on the exported image (or on the build disk), so verifying writes nothing back."""

    vm: VmRun
    boot: Boot
    name: str = "verify disk"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        assert state.work_dir and state.disk
        image = next((a for a in self.vm.artifacts if a.format in ("qcow2", "raw")), None)
        backing, backing_format = (image.path, image.format) if image else (state.disk, state.disk_format)
        disk = state.work_dir / "verify.qcow2"
        await run_tool("qemu-img", "create", "-q", "-f", "qcow2", "-F", backing_format, "-b", backing.resolve(),
                       disk, what="qemu-img create (verify overlay)")
        self.boot.disk = disk


@dataclass
class RunVerify:
    name: str = "verify"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        await provision(state, state.recipe.verify, ())      # no cache: the verify tasks run on every verify boot

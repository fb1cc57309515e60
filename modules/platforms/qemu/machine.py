"""One QEMU process: its command line, start, graceful stop, forced kill, console tail."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import BuildError
from modules.platforms.qemu.monitor import Monitor
from modules.platforms.qemu.vm_state import resume_state

QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS.fd")
# How a guest is powered off over SSH: systemd queues the poweroff and answers at once; elsewhere, poweroff
# waits for the answer to leave
POWEROFF = "sync; systemctl --no-block poweroff 2>/dev/null || { nohup sh -c 'sleep 0.5; poweroff' >/dev/null 2>&1 & }"


@dataclass(frozen=True)
class MachineSpec:
    name: str
    disk: Path
    console_log: Path
    ssh_port: int
    accel: str = "tcg"
    cpus: int = 2
    memory: int = 1024                   # MiB
    firmware: str = "bios"               # bios | uefi
    disk_format: str = "qcow2"
    seed: Path | None = None
    ovmf_vars: Path | None = None        # a writable copy, for uefi
    pid_file: Path | None = None         # for `recipe sweep --local`, should this run die by SIGKILL
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    netdev_options: str = ""             # more of -netdev user's options (",tftp=...,bootfile=..." for PXE)
    qemu: str = QEMU
    monitor: bool = False                # a QMP monitor (Machine.monitor) for checkpoints and saved states
    incoming: Path | None = None         # a saved state (QEMU's migration stream) to resume instead of booting


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(spec: MachineSpec) -> list[str]:
    args = [spec.qemu, "-name", spec.name, "-machine", "q35", "-accel", spec.accel,
            "-cpu", "host" if spec.accel == "kvm" else "max", "-smp", str(spec.cpus), "-m", str(spec.memory),
            "-display", "none", "-vga", "none", "-monitor", "none",
            # cache=unsafe: a build VM is disposable, and guest flushes cost a lot under emulation
            "-drive", f"id=disk0,file={spec.disk},if=virtio,format={spec.disk_format},discard=unmap,cache=unsafe",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22{spec.netdev_options}",
            "-device", "virtio-net-pci,netdev=net0",
            "-device", "virtio-rng-pci",       # entropy for sshd and cloud-init on first boot
            "-chardev", f"file,id=console,path={spec.console_log}", "-serial", "chardev:console"]
    if spec.pid_file:
        args += ["-pidfile", str(spec.pid_file)]
    if spec.incoming:
        args += ["-incoming", "defer"]           # the state is fed through the monitor (Machine.start)
    if spec.seed:
        args += ["-drive", f"file={spec.seed},if=virtio,format=raw,readonly=on"]
    if spec.firmware == "uefi":
        args += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,file={spec.ovmf_vars}"]
    return args + list(spec.extra_args)


class Machine:
    def __init__(self, spec: MachineSpec, log_path: Path):
        self.spec = spec
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self.monitor: Monitor | None = Monitor(spec.name) if spec.monitor or spec.incoming else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        args = command(self.spec) + (self.monitor.qemu_args() if self.monitor else [])
        with open(self._log_path, "ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(self.monitor.qemu_fd,) if self.monitor else (),
                start_new_session=True)   # Ctrl-C in the terminal goes to recipe, which stops QEMU itself
        await asyncio.sleep(0.3)
        if not self.running:
            raise BuildError(f"QEMU exited at once: {self.qemu_log()[-500:]}",
                             hint="check qemu_args, the disk image, and that the forwarded port is free")
        if self.monitor:
            await self.monitor.open()
        if self.spec.incoming and self.monitor:
            await resume_state(self.monitor, self.spec.incoming)

    async def wait(self, timeout: float | None = None) -> bool:
        """True once QEMU has exited; False if it still runs after timeout."""
        if self._process is None:
            return True
        try:
            await asyncio.wait_for(self._process.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (QEMU closes its files), then SIGKILL after grace seconds."""
        if self.monitor:
            await self.monitor.close()
        if not self.running:
            return
        assert self._process is not None
        try:
            self._process.send_signal(signal.SIGTERM)
            if not await self.wait(grace):
                os.killpg(self._process.pid, signal.SIGKILL)
                await self._process.wait()
        except ProcessLookupError:
            pass

    def qemu_log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def console_tail(self, lines: int = 15) -> str:
        try:
            text = self.spec.console_log.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return "(no console output)"
        tail = [line.rstrip("\r") for line in text.splitlines() if line.strip()][-lines:]
        return "\n".join(tail) or "(no console output)"

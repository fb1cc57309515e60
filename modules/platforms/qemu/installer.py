"""`base: {installer: ...}`: run an OS installer once into an empty disk, and keep the installed disk as a base.

What Packer's qemu builder does with iso_url, boot_command and http_directory, in this order:

1. the key: a hash of everything the installed disk depends on (the ISO's checksum or the files' contents, the
   kernel line, the boot_command, the answer files, the disk's size, the firmware, the login user and
   INSTALLER_VERSION). `<cache>/images/installed-<key>.qcow2` is the base once it exists; a lock makes two
   builds wanting the same installation wait for one install.
2. the install: the ISO downloaded and verified (or the kernel, or QEMU's TFTP for PXE), an empty qcow2 of
   `size`, the HTTP server started (install_http), QEMU started with -no-reboot (an installer that reboots
   at its end has ended too), boot_wait, then the boot_command typed over QMP, key by key. The installer runs
   until QEMU exits, or install_timeout.
3. the first login (first_login.py): the installed disk booted alone, logged in to with the source's
   ssh.password (or private key), the host key it presents trusted on this first use, a key of recipe's
   authorized; both kept beside the image (`.login` and `.json`), so every build logs in with them.
4. the disk renamed into place: a half-installed disk never has the final name (`.installed-<key>.<pid>.tmp`
   until then, swept as a bootstrap's leftovers are).

QEMU's console log and pid file live in the build's work dir, so `recipe sweep --local` finds a QEMU whose
build was killed, as it finds a build's own.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import BuildError
from engine.local_cache import file_lock
from engine.process import run_tool
from modules.platforms.qemu import download
from modules.platforms.qemu.base_spec import BaseLogin, InstallerBase, PathBase, UrlBase
from modules.platforms.qemu.boot_command import Key, Wait, hold_event, key_events, parse
from modules.platforms.qemu.boot_stage import BootStage, follow_console
from modules.platforms.qemu.bootstrap_steps import Log, Progress, Status
from modules.platforms.qemu.first_login import FirstLogin, first_login
from modules.platforms.qemu.install_http import GUEST_HOST_ADDRESS, InstallServer, with_port
from modules.platforms.qemu.machine import OVMF_VARS, Machine, MachineSpec, free_port
from modules.platforms.qemu.work_dirs import sweep_stale

# Bump when what this module does to an installed disk changes: installed bases of the earlier version are
# then installed again.
INSTALLER_VERSION = 1


@dataclass(frozen=True)
class InstallVm:
    """The machine the installer runs in, as the source describes its build VM."""

    accel: str = "tcg"
    cpus: int = 2
    memory: int = 1024
    firmware: str = "bios"


@dataclass(frozen=True)
class InstallRun:
    """What installing needs besides the base: where QEMU's files go, the VM, the first login."""

    work: Path
    vm: InstallVm
    login: FirstLogin


def image_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / "images" / f"installed-{key}.qcow2"


def installed_key(base: InstallerBase, vm: InstallVm, user: str) -> str:
    """The hash of what the installed disk depends on (the port the answer files were served on is not)."""
    digest = hashlib.sha256(f"installer v{INSTALLER_VERSION}\n".encode())

    def add(*parts: object) -> None:
        for part in parts:
            digest.update(repr(part).encode() + b"\0")

    if isinstance(base.iso, UrlBase):
        add("iso url", base.iso.url, base.iso.checksum)
    elif isinstance(base.iso, PathBase):
        add("iso file", _file_digest(base.iso.path))
    for name, path in (("kernel", base.kernel), ("initrd", base.initrd)):
        if path is not None:
            add(name, _file_digest(path))
    if base.netboot:
        add("netboot", base.netboot.bootfile, _tree_digest(base.netboot.tftp_dir))
    if base.http_directory:
        add("http directory", _tree_digest(base.http_directory))
    add(base.append, base.boot_command, base.http_content, base.size, vm.firmware, user)
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> str:
    if not path.is_file():
        raise BuildError(f"{path} does not exist" if not path.exists() else f"{path} is not a file",
                         hint="a relative path is taken from the recipe's directory")
    return download.hash_file(path, "sha256")


def _tree_digest(root: Path) -> str:
    """Every file's path and content under root (answer files are small; a TFTP tree is an installer's)."""
    if not root.is_dir():
        raise BuildError(f"{root} is not a directory", hint="a relative path is taken from the recipe's directory")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root)}\0{download.hash_file(path, 'sha256')}\0".encode())
    return digest.hexdigest()


async def install_base(base: InstallerBase, cache_dir: Path, run: InstallRun, progress: Progress | None = None,
                       log: Log | None = None, status: Status | None = None) -> tuple[Path, BaseLogin]:
    """The installed disk and how to log in to it: from the cache, or installed now (once, under a lock)."""
    say = log or (lambda line: None)
    work, vm, login = run.work, run.vm, run.login
    key = await asyncio.to_thread(installed_key, base, vm, login.user)
    final = image_path(cache_dir, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    async with file_lock(final.with_suffix(".lock"), f"installing {final.name}", log):
        if final.is_file():
            return final, read_login(final)
        await sweep_stale(cache_dir, say)
        started = time.monotonic()
        temporary = final.parent / f".{final.stem}.{os.getpid()}.tmp"
        work.mkdir(parents=True, exist_ok=True)
        try:
            await run_installer(base, cache_dir, temporary, work, vm, say, progress, status)
            say(f"installer: the installer finished in {time.monotonic() - started:.0f} s")
            found = await first_login(temporary, work, vm_spec(vm, work, temporary, "first-login"), login, say,
                                      status)
            _keep_login(final, found, key)
            temporary.rename(final)
        finally:
            temporary.unlink(missing_ok=True)
        say(f"installer: {final.name} installed and kept in {time.monotonic() - started:.0f} s")
        return final, read_login(final)


def vm_spec(vm: InstallVm, work: Path, disk: Path, name: str, extra: tuple[str, ...] = (),
            netdev_options: str = "", monitor: bool = False) -> MachineSpec:
    vars_copy = None
    if vm.firmware == "uefi":
        vars_copy = work / f"{name}-OVMF_VARS.fd"
        if not vars_copy.exists():
            shutil.copyfile(OVMF_VARS, vars_copy)
    return MachineSpec(name=f"recipe-{name}", disk=disk, console_log=work / f"console-{name}.log",
                       ssh_port=free_port(), accel=vm.accel, cpus=vm.cpus, memory=vm.memory, firmware=vm.firmware,
                       ovmf_vars=vars_copy, pid_file=work / f"{name}.pid", extra_args=extra,
                       netdev_options=netdev_options, monitor=monitor)


async def run_installer(base: InstallerBase, cache_dir: Path, disk: Path, work: Path, vm: InstallVm, say: Log,
                        progress: Progress | None = None,
                        status: Status | None = None) -> list[tuple[str, int]]:
    """Boot the installer on disk, type, serve, and wait for QEMU to exit; the HTTP requests it made."""
    work.mkdir(parents=True, exist_ok=True)
    boot_args, netdev = await _boot_args(base, cache_dir, progress, say)
    await run_tool("qemu-img", "create", "-q", "-f", "qcow2", disk, base.size, what="qemu-img create (install disk)")
    server = InstallServer(base.http_directory, log=lambda line: say(f"installer: http: {line}"))
    port = server.start()
    server.content = {path: with_port(text, port) for path, text in base.http_content}
    boot_args = tuple(with_port(arg, port) for arg in boot_args)
    say(f"installer: serving answer files on http://{GUEST_HOST_ADDRESS}:{port}/ (127.0.0.1:{port} here)")
    spec = vm_spec(vm, work, disk, "install", ("-no-reboot", *boot_args), netdev, monitor=True)
    machine = Machine(spec, work / "install.log")
    try:
        await machine.start()
        typing = asyncio.create_task(_type(machine, base, port, say, status))
        watching = asyncio.create_task(follow_console(machine.spec.console_log,
                                                      lambda stage: _show(stage, status)))
        try:
            finished = await machine.wait(base.install_timeout)
        finally:
            for task in (typing, watching):
                task.cancel()
            await asyncio.gather(typing, watching, return_exceptions=True)
        if not finished:
            asked = "" if server.requests else " The installer never fetched a file from the HTTP server."
            raise BuildError(f"the installer did not finish within {base.install_timeout:g} s.{asked} Last lines "
                             f"of its console:\n{machine.console_tail()}",
                             hint="raise install_timeout, check the boot_command, and make the answer file power "
                                  "the machine off (or reboot) at its end")
        if typing.done() and not typing.cancelled() and typing.exception():
            raise typing.exception()        # type: ignore[misc]
        return server.requests
    finally:
        await machine.stop(grace=2.0)
        server.stop()


async def _boot_args(base: InstallerBase, cache_dir: Path, progress: Progress | None,
                     say: Log) -> tuple[tuple[str, ...], str]:
    """QEMU's arguments that boot the installer once, and more -netdev options for PXE."""
    if isinstance(base.iso, UrlBase):
        iso = await download.fetch_image(base.iso.url, base.iso.checksum, cache_dir / "images", progress, say)
        return ("-drive", f"file={iso},media=cdrom,readonly=on", "-boot", "once=d"), ""
    if isinstance(base.iso, PathBase):
        if not base.iso.path.is_file():
            raise BuildError(f"the installer's iso {base.iso.path} does not exist",
                             hint="a relative path is taken from the recipe's directory")
        return ("-drive", f"file={base.iso.path},media=cdrom,readonly=on", "-boot", "once=d"), ""
    if base.kernel is not None:
        args = ("-kernel", str(base.kernel), *(("-initrd", str(base.initrd)) if base.initrd else ()))
        return (*args, "-append", base.append), ""
    assert base.netboot is not None
    netboot = base.netboot
    if not (netboot.tftp_dir / netboot.bootfile).is_file():
        raise BuildError(f"netboot: {netboot.tftp_dir / netboot.bootfile} does not exist",
                         hint="tftp_dir is the folder QEMU serves over TFTP; bootfile is a file in it")
    return ("-boot", "once=n"), f",tftp={netboot.tftp_dir},bootfile={netboot.bootfile}"


async def _type(machine: Machine, base: InstallerBase, port: int, say: Log, status: Status | None) -> None:
    """boot_wait, then the boot_command, a key every boot_key_interval (Packer's way)."""
    if not base.boot_command:
        return
    await asyncio.sleep(base.boot_wait)
    assert machine.monitor is not None
    if status:
        status("typing the boot_command")
    for line in (with_port(line, port) for line in base.boot_command):
        say(f"installer: typing {line!r}")
        for action in parse(line):
            if isinstance(action, Wait):
                await asyncio.sleep(action.seconds)
                continue
            for events in key_events(action) if isinstance(action, Key) else [hold_event(action)]:
                await machine.monitor.execute("input-send-event", events=events)
                await asyncio.sleep(base.boot_key_interval / 2)


def _show(stage: BootStage, status: Status | None) -> None:
    if status:
        status(f"installing: {stage.text}")


# ---------------------------------------------------------------- the login kept beside the image

def login_files(image: Path) -> tuple[Path, Path]:
    return image.with_suffix(".login"), image.with_suffix(".json")


def _keep_login(image: Path, found: tuple[bytes, str], key: str) -> None:
    private, host_key = found
    key_file, record = login_files(image)
    with contextlib.suppress(FileNotFoundError):
        key_file.unlink()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(private)
    record.write_text(json.dumps({"key": key, "host_key": host_key, "installed": int(time.time()),
                                  "trusted": "on first use, at the first login after the install"}, indent=2) + "\n")


def read_login(image: Path) -> BaseLogin:
    key_file, record = login_files(image)
    try:
        host_key = json.loads(record.read_text())["host_key"]
    except (OSError, ValueError, KeyError):
        raise BuildError(f"the installed base {image.name} has no login record ({record.name})",
                         hint=f"remove {image} to install it again") from None
    return BaseLogin(private_key=key_file, host_key=host_key)


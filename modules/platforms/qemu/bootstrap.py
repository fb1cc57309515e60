"""`base: {bootstrap: ...}`: a bootable cloud-style Debian disk built from nothing, without loop devices or mounts.

The recipe of the image, in the order it runs (mkosi and osbuild build disks
the same way, from files rather than from mounted devices):

1. debootstrap a minbase tree with a kernel, systemd, sshd, sudo, cloud-init,
   growpart and ifupdown, into a work directory; the recipe's packages are
   then installed with apt-get in a chroot (apt resolves virtual packages,
   debootstrap does not).
2. configure the tree: no machine identity (empty /etc/machine-id, no ssh
   host keys: cloud-init writes per-instance ones), cloud-init limited to
   NoCloud, fstab by UUID, hostname, apt sources, caches emptied (image_tree.py
   holds what the files say).
3. the root filesystem: `mke2fs -t ext4 -d <tree>` into root.img; at the same
   time the boot partition: a FAT ESP image (mkfs.fat, mtools) holding the
   kernel and initrd, syslinux for BIOS and systemd-boot for UEFI, both
   booting `root=UUID=<uuid> rw console=ttyS0,115200 net.ifnames=0`.
4. the disk: an MBR written by sfdisk on the image file (1: the ESP, type ef,
   bootable; 2: the root, last, so growpart can grow it), the partitions
   copied in with dd, syslinux's MBR code in the first 440 bytes.
5. `qemu-img convert -O qcow2` into `<cache>/images/bootstrap-<hash>.qcow2`
   under a temporary name, renamed when whole. The hash covers every input
   and BOOTSTRAP_VERSION, so the image is built once and then reused.

The work directory goes on success, failure and cancellation; a cancelled
build kills the process group of the step that was running.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from engine.errors import BuildError
from engine.recipe.schema import did_you_mean
from modules.platforms.qemu.base_spec import BootstrapBase
from modules.platforms.qemu.distros import DISTROS, Distro
from modules.platforms.qemu.download import file_lock
from modules.platforms.qemu.image_tree import (POLICY_RC_D, Identity, clean_tree, configure_tree, kernel_cmdline,
                                               kernel_files, loader_conf, loader_entry, preseed_tree, syslinux_cfg,
                                               tree_bytes, write)

Progress = Callable[[str, int, "int | None"], None]
Log = Callable[[str], None]

# Bump when the image this module makes changes (packages, configuration, layout):
# the cached images of the previous recipe are then no longer used.
BOOTSTRAP_VERSION = 2

MIB = 1 << 20
ESP_START = 1 * MIB
ESP_SIZE = 256 * MIB
ROOT_START = ESP_START + ESP_SIZE
SECTOR = 512

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SCRIPTS = Path("/usr/share/debootstrap/scripts")
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
TOOLS = {"debootstrap": "debootstrap", "chroot": "coreutils", "mke2fs": "e2fsprogs", "sfdisk": "fdisk",
         "mkfs.fat": "dosfstools", "mcopy": "mtools", "syslinux": "syslinux", "dd": "coreutils",
         "qemu-img": "qemu-utils", "umount": "mount"}
FILES = {SYSLINUX_MBR: "syslinux-common", SYSTEMD_BOOT: "systemd-boot-efi"}
TERMINATE_GRACE = 10.0
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy")     # passed on to debootstrap and apt
TAIL_LINES = 25


# ---------------------------------------------------------------- names, identities, layout

def image_inputs(base: BootstrapBase) -> dict:
    """Everything the image depends on; its hash names the image."""
    return {"bootstrap_version": BOOTSTRAP_VERSION, "distro": base.distro, "suite": base.suite,
            "mirror": base.mirror.rstrip("/"), "packages": sorted(set(base.packages)), "size": disk_size(base)}


def image_key(base: BootstrapBase) -> str:
    return hashlib.sha256(json.dumps(image_inputs(base), sort_keys=True).encode()).hexdigest()


def image_path(base: BootstrapBase, cache_dir: Path) -> Path:
    return Path(cache_dir) / "images" / f"bootstrap-{image_key(base)[:16]}.qcow2"


def disk_size(base: BootstrapBase) -> int:
    """The disk size in bytes, rounded up to a MiB."""
    return -(-base.size_bytes // MIB) * MIB


@dataclass(frozen=True)
class Layout:
    """Where the partitions go on a disk of `size` bytes (MiB-aligned, MBR)."""

    size: int

    @property
    def root_size(self) -> int:
        return self.size - ROOT_START

    def sfdisk_script(self, disk_id: str) -> str:
        return (f"label: dos\nlabel-id: {disk_id}\nunit: sectors\n\n"
                f"start={ESP_START // SECTOR}, size={ESP_SIZE // SECTOR}, type=ef, bootable\n"
                f"start={ROOT_START // SECTOR}, size={self.root_size // SECTOR}, type=83\n")


# ---------------------------------------------------------------- running steps

class Steps:
    """Runs the commands of a bootstrap, streaming their output to log; a failure names its step."""

    def __init__(self, log: Log | None, progress: Progress | None, total: int):
        self.log_fn, self.progress, self.total, self.done = log, progress, total, 0

    def log(self, message: str) -> None:
        if self.log_fn is not None:
            self.log_fn(message)

    def advance(self, what: str) -> None:
        self.log(f"bootstrap: {what}")
        if self.progress is not None:
            self.progress("bootstrap", self.done, self.total)
        self.done += 1

    def finish(self) -> None:
        if self.progress is not None:
            self.progress("bootstrap", self.total, self.total)

    async def run(self, step: str, argv: Sequence[str | Path], *, input: str | None = None,
                  env: dict[str, str] | None = None, hint: str = "") -> list[str]:
        """Run argv, each output line to log; the last lines are in the error if it fails."""
        environment = {"PATH": SYSTEM_PATH, "LC_ALL": "C", "HOME": "/root", "TMPDIR": "/tmp",
                       **{k: v for k, v in os.environ.items() if k.lower() in PROXY_VARIABLES}, **(env or {})}
        try:
            process = await asyncio.create_subprocess_exec(
                *[str(a) for a in argv], stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=environment,
                start_new_session=True, limit=1 << 20)
        except FileNotFoundError:
            raise BuildError(f"bootstrap step {step!r} failed: {argv[0]} is not installed",
                             hint=f"install the Debian package {TOOLS.get(str(argv[0]), argv[0])}") from None
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        try:
            if input is not None:
                assert process.stdin is not None
                process.stdin.write(input.encode())
                await process.stdin.drain()
                process.stdin.close()
            assert process.stdout is not None
            async for raw in process.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    tail.append(line)
                    self.log(line)
            status = await process.wait()
        except BaseException:
            await terminate(process)
            raise
        if status != 0:
            quoted = "\n".join(f"  | {line}" for line in tail) or "  | (no output)"
            raise BuildError(f"bootstrap step {step!r} failed (exit status {status}); its last output:\n{quoted}",
                             hint=hint or "see the lines above; the work directory was removed")
        return list(tail)


async def terminate(process: asyncio.subprocess.Process) -> None:
    """Stop process and everything it started (its session): TERM, then KILL."""
    if process.returncode is not None:
        return
    for sig, grace in ((signal.SIGTERM, TERMINATE_GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), grace)
            break
        except asyncio.TimeoutError:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)   # whatever is left of the group


# ---------------------------------------------------------------- cleanup

def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first."""
    real = os.path.realpath(path)
    found = []
    with contextlib.suppress(OSError):
        with open("/proc/self/mountinfo") as mountinfo:
            for line in mountinfo:
                fields = line.split()
                if len(fields) > 4:
                    point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
                    if point == real or point.startswith(real + "/"):
                        found.append(point)
    return sorted(found, key=len, reverse=True)


async def remove_work_dir(path: Path, log: Log | None = None) -> None:
    """Remove a work directory, first unmounting whatever an interrupted debootstrap left mounted in it."""
    if not path.exists():
        return
    for point in mounts_under(path):
        process = await asyncio.create_subprocess_exec("umount", "-l", point, env={"PATH": SYSTEM_PATH},
                                                       stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
        await process.wait()
    left = mounts_under(path)
    if left:
        if log:
            log(f"bootstrap: {path} was left in place: {', '.join(left)} could not be unmounted")
        return
    await asyncio.to_thread(shutil.rmtree, path, True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def sweep_stale(cache_dir: Path, log: Log | None = None) -> None:
    """Work directories and temporary images of bootstraps whose process died (a SIGKILL, a crash)."""
    for path in list((cache_dir / "tmp").glob("bootstrap-*-*")) + list((cache_dir / "images").glob(".bootstrap-*.tmp")):
        match = re.search(r"-(\d+)-", path.name) if path.is_dir() else re.search(r"\.(\d+)\.tmp$", path.name)
        if match and not _pid_alive(int(match.group(1))):
            if log:
                log(f"bootstrap: removing {path}, left by an interrupted build")
            if path.is_dir():
                await remove_work_dir(path, log)
            else:
                path.unlink(missing_ok=True)


# ---------------------------------------------------------------- the build

def check_host(base: BootstrapBase, distro: Distro) -> None:
    if os.geteuid() != 0:
        raise BuildError("a bootstrap base is built as root (debootstrap chroots into the new tree)",
                         hint="run recipe as root, or use base: {url: ..., checksum: ...}")
    missing = sorted({package for tool, package in TOOLS.items() if not shutil.which(tool, path=SYSTEM_PATH)} |
                     {package for path, package in FILES.items() if not path.is_file()})
    if not Path(distro.keyring).is_file():
        missing.append(f"{distro.name}-archive-keyring")
    if missing:
        raise BuildError("building a bootstrap base needs tools that are not installed",
                         hint="apt-get install " + " ".join(missing))
    if not (SCRIPTS / base.suite).exists():
        known = sorted(p.name for p in SCRIPTS.iterdir()) if SCRIPTS.is_dir() else []
        raise BuildError(f"debootstrap does not know the suite {base.suite!r}",
                         hint=did_you_mean(base.suite, known, "see /usr/share/debootstrap/scripts"))


async def build_image(base: BootstrapBase, cache_dir: Path, progress: Progress | None = None,
                      log: Log | None = None) -> Path:
    """The qcow2 image base describes: from the cache, or built (once, under a lock) and cached."""
    final = image_path(base, cache_dir)
    if final.is_file():
        return final
    distro = DISTROS[base.distro]
    check_host(base, distro)
    final.parent.mkdir(parents=True, exist_ok=True)
    async with file_lock(final.with_suffix(".lock"), f"bootstrapping {final.name}", log):
        if final.is_file():
            return final
        await sweep_stale(Path(cache_dir), log)
        work_parent = Path(cache_dir) / "tmp"
        work_parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"bootstrap-{os.getpid()}-", dir=work_parent))
        try:
            await _build(base, distro, final, work, progress, log)
        finally:
            await remove_work_dir(work, log)
    return final


async def _build(base: BootstrapBase, distro: Distro, final: Path, work: Path,
                 progress: Progress | None, log: Log | None) -> None:
    started = time.monotonic()
    key = image_key(base)
    identity = Identity.of(key)
    layout = Layout(disk_size(base))
    root = work / "root"
    steps = Steps(log, progress, total=6 if base.packages else 5)

    steps.advance(f"debootstrap {distro.name} {base.suite} from {base.mirror} into {root}")
    await asyncio.to_thread(preseed_tree, root, identity)
    await steps.run("debootstrap", [
        "debootstrap", "--variant=minbase", f"--keyring={distro.keyring}",
        f"--components={','.join(distro.components)}", "--include=" + ",".join(distro.packages),
        base.suite, root, base.mirror],
        hint=f"check the suite and the mirror ({base.mirror}); debootstrap's log was in the work directory")

    if base.packages:
        steps.advance(f"installing {' '.join(base.packages)}")
        await install_packages(steps, root, base.packages)

    steps.advance("configuring the tree")
    await asyncio.to_thread(configure_tree, root, identity, distro.name, distro.sources(base.mirror, base.suite))
    await asyncio.to_thread(clean_tree, root)
    vmlinuz, initrd, version = kernel_files(root)
    needed = await asyncio.to_thread(tree_bytes, root)
    if needed * 1.15 + 128 * MIB > layout.root_size:
        raise BuildError(f"bootstrap: the system takes {needed >> 20} MiB, too much for a {base.size} disk",
                         hint=f"use size: {-(-int(needed * 1.3 + ROOT_START) // (1 << 30))}G or more")

    steps.advance("making the root filesystem and the boot partition")
    root_img, esp_img = work / "root.img", work / "esp.img"
    await asyncio.gather(
        make_root_fs(steps, root, root_img, layout, identity),
        make_esp(steps, work, esp_img, vmlinuz, initrd, identity, entry=distro.name,
                 title=f"{distro.name.capitalize()} {base.suite}"))

    steps.advance("writing the disk")
    disk = work / "disk.raw"
    await assemble_disk(steps, disk, layout, identity, esp_img, root_img)

    steps.advance(f"converting to qcow2 as {final.name}")
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        await steps.run("qemu-img convert", ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", disk, temporary])
        manifest = {"image": final.name, "inputs": image_inputs(base), "kernel": version,
                    "root_uuid": identity.root_uuid, "kernel_cmdline": kernel_cmdline(identity),
                    "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "seconds": round(time.monotonic() - started, 1)}
        final.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    steps.finish()
    steps.log(f"bootstrap: {final} built in {time.monotonic() - started:.0f} s")


async def install_packages(steps: Steps, root: Path, packages: Sequence[str]) -> None:
    """The recipe's packages, with apt-get in a chroot (no daemon started: policy-rc.d)."""
    write(root, "usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
    env = {"DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true"}
    hint = "check the package names of bootstrap.packages"
    await steps.run("apt-get update", ["chroot", root, "apt-get", "-q", "update"], env=env)
    await steps.run("apt-get install", ["chroot", root, "apt-get", "-q", "-y", "--no-install-recommends",
                                        "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                                        "install", *packages], env=env, hint=hint)
    await steps.run("apt-get clean", ["chroot", root, "apt-get", "clean"], env=env)
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)


def _mke2fs_features() -> list[str]:
    """Keep the filesystem readable by older guests (orphan_file needs Linux 5.15 and e2fsprogs 1.47)."""
    with contextlib.suppress(OSError):
        if "orphan_file" in Path("/etc/mke2fs.conf").read_text():
            return ["-O", "^orphan_file"]
    return []


async def make_root_fs(steps: Steps, root: Path, image: Path, layout: Layout, identity: Identity) -> None:
    await steps.run("mke2fs", ["mke2fs", "-q", "-F", "-t", "ext4", *_mke2fs_features(),
                               "-E", "lazy_itable_init=0,lazy_journal_init=0",
                               "-d", root, "-U", identity.root_uuid, "-L", "root", image,
                               f"{layout.root_size // 1024}k"])


async def make_esp(steps: Steps, work: Path, image: Path, vmlinuz: Path, initrd: Path, identity: Identity,
                   entry: str, title: str) -> None:
    """A FAT32 ESP with the kernel, syslinux (BIOS) and systemd-boot (UEFI), made without mounting."""
    stage = work / "esp"
    files = {"vmlinuz": vmlinuz, "initrd.img": initrd, "EFI/BOOT/BOOTX64.EFI": SYSTEMD_BOOT}
    texts = {"syslinux.cfg": syslinux_cfg(identity), "loader/loader.conf": loader_conf(entry),
             f"loader/entries/{entry}.conf": loader_entry(identity, title)}

    def stage_files() -> None:
        for name, source in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, stage / name)
        for name, text in texts.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text)

    await asyncio.to_thread(stage_files)
    mtools = {"MTOOLS_SKIP_CHECK": "1"}
    await steps.run("mkfs.fat", ["mkfs.fat", "-F", "32", "-n", "ESP", "-i", identity.esp_id,
                                 "-h", str(ESP_START // SECTOR), "-C", image, str(ESP_SIZE // 1024)])
    await steps.run("syslinux", ["syslinux", "--install", image], env=mtools)
    await steps.run("mcopy", ["mcopy", "-s", "-Q", "-i", image, *sorted(stage.iterdir()), "::/"], env=mtools)


async def assemble_disk(steps: Steps, disk: Path, layout: Layout, identity: Identity, esp: Path, root: Path) -> None:
    """The partition table (sfdisk on the file), the partitions (dd) and syslinux's MBR code."""
    with open(disk, "wb") as stream:
        stream.truncate(layout.size)
    await steps.run("sfdisk", ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk],
                    input=layout.sfdisk_script(identity.disk_id))

    def copy_in(step: str, source: Path, offset: int):
        return steps.run(step, ["dd", f"if={source}", f"of={disk}", "bs=1M", f"seek={offset // MIB}",
                                "conv=notrunc,sparse", "status=none"])

    await asyncio.gather(copy_in("dd (boot partition)", esp, ESP_START), copy_in("dd (root partition)", root, ROOT_START))
    await steps.run("dd (MBR code)", ["dd", f"if={SYSLINUX_MBR}", f"of={disk}", "bs=440", "count=1",
                                      "conv=notrunc", "status=none"])

"""`base: {bootstrap: ...}`: a bootable cloud-style Debian disk built from nothing, without loop devices or mounts.

The recipe of the image, in the order it runs (mkosi and osbuild build disks
the same way, from files rather than from mounted devices):

1. debootstrap a minbase tree with a kernel, systemd, sshd, sudo, cloud-init,
   growpart, ifupdown and GRUB's tools (grub2-common, grub-pc-bin,
   grub-efi-amd64-bin: update-grub runs in the guest when a kernel is
   installed), into a work directory; the recipe's packages are then
   installed with apt-get in a chroot (apt resolves virtual packages,
   debootstrap does not). debootstrap runs with --debian-installer, whose
   structured output gives its phases and counts to the progress.
2. configure the tree: no machine identity (empty /etc/machine-id, no ssh
   host keys: cloud-init writes per-instance ones), cloud-init limited to
   NoCloud, fstab by UUID, hostname, apt sources, /etc/default/grub, caches
   emptied (image_tree.py holds what the files say).
3. GRUB 2 as grub-install would leave it, but without a device: grub.cfg
   written by hand (search the root by UUID, `linux /boot/vmlinuz-<version>
   root=UUID=<uuid> rw console=ttyS0,115200 net.ifnames=0`), the modules in
   /boot/grub/{i386-pc,x86_64-efi}, and the tree's own grub-mkimage (in a
   chroot) making a BIOS core.img and a UEFI BOOTX64.EFI that find the root
   by UUID. virt-v2v and cloud import services recognise this layout.
4. the root filesystem: `mke2fs -t ext4 -d <tree>` into root.img, as small as
   the system comfortably fits in (see disk_size: each build's overlay is
   grown to its disk_size, and cloud-init's growpart grows the root at boot);
   at the same time a FAT ESP image (mkfs.fat, mtools) holding
   EFI/BOOT/BOOTX64.EFI.
5. the disk: an MBR written by sfdisk on the image file (1: the ESP, type ef,
   bootable; 2: the root, last, so growpart can grow it), the partitions
   copied in with dd, GRUB's boot.img in the first 440 bytes and core.img in
   the gap before the ESP, patched as grub-bios-setup patches them.
6. `qemu-img convert -O qcow2` into `<cache>/images/bootstrap-<hash>.qcow2`
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
import struct
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
from modules.platforms.qemu.image_tree import (POLICY_RC_D, Identity, clean_tree, configure_tree, grub_cfg,
                                               grub_early_cfg, inside, kernel_cmdline, kernel_files, preseed_tree,
                                               tree_bytes, write)

Progress = Callable[[str, int, "int | None"], None]
Log = Callable[[str], None]

# Bump when the image this module makes changes (packages, configuration, layout):
# the cached images of the previous recipe are then no longer used.
BOOTSTRAP_VERSION = 3

MIB = 1 << 20
GIB = 1 << 30
ESP_START = 1 * MIB
ESP_SIZE = 256 * MIB
ROOT_START = ESP_START + ESP_SIZE
SECTOR = 512
MBR_CODE = 440               # the MBR's boot code; the disk id and the partition table follow
SIZE_STEP = 256 * MIB        # a computed disk size is rounded up to this
HEADROOM = 512 * MIB         # free space left on a computed root filesystem, besides 20% of the system
DEFAULT_DISK_SIZE = "4G"     # a build's disk without disk_size (the size bootstrap images always had)
MIN_DISK_SIZE = 2 * GIB      # no Debian cloud system (kernel, systemd, cloud-init, GRUB) fits in less

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SCRIPTS = Path("/usr/share/debootstrap/scripts")
GRUB_LIB = "usr/lib/grub"                 # in the tree: grub-pc-bin and grub-efi-amd64-bin
GRUB_BIOS, GRUB_EFI = "i386-pc", "x86_64-efi"
# built into the core images: what finds and reads the root filesystem; the rest loads from /boot/grub
BIOS_MODULES = ("biosdisk", "part_msdos", "ext2", "search", "search_fs_uuid")
EFI_MODULES = ("part_msdos", "part_gpt", "ext2", "fat", "search", "search_fs_uuid", "normal", "linux", "gzio",
               "efi_gop", "serial", "terminal", "configfile", "echo", "test")
TOOLS = {"debootstrap": "debootstrap", "chroot": "coreutils", "mke2fs": "e2fsprogs", "sfdisk": "fdisk",
         "mkfs.fat": "dosfstools", "mcopy": "mtools", "dd": "coreutils", "qemu-img": "qemu-utils",
         "umount": "mount", "sh": "dash"}
FILES: dict[Path, str] = {}     # GRUB's tools and images come from the tree (the guest's own grub packages)
TERMINATE_GRACE = 10.0
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy")     # passed on to debootstrap and apt
TAIL_LINES = 25


# ---------------------------------------------------------------- names, identities, layout

def image_inputs(base: BootstrapBase) -> dict:
    """Everything the image depends on; its hash names the image (no size: computed from the system)."""
    return {"bootstrap_version": BOOTSTRAP_VERSION, "distro": base.distro, "suite": base.suite,
            "mirror": base.mirror.rstrip("/"), "packages": sorted(set(base.packages)),
            "size": -(-base.size_bytes // MIB) * MIB if base.size else None}


def image_key(base: BootstrapBase) -> str:
    return hashlib.sha256(json.dumps(image_inputs(base), sort_keys=True).encode()).hexdigest()


def image_path(base: BootstrapBase, cache_dir: Path) -> Path:
    return Path(cache_dir) / "images" / f"bootstrap-{image_key(base)[:16]}.qcow2"


def disk_size(base: BootstrapBase, system_bytes: int) -> int:
    """The disk size in bytes: the base's explicit size (rounded up to a MiB), or the smallest that holds a
    system of system_bytes with room to spare (20% and HEADROOM), rounded up to SIZE_STEP. Builds grow
    their overlay to disk_size, and growpart grows the root partition at boot."""
    if base.size:
        return -(-base.size_bytes // MIB) * MIB
    wanted = ROOT_START + int(system_bytes * 1.2) + HEADROOM
    return -(-wanted // SIZE_STEP) * SIZE_STEP


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

# What each stage of a bootstrap typically costs, in seconds on a 2-core host (bookworm from a mirror):
# the progress moves by these shares (debootstrap's own by its phases, below).
STAGES = {"debootstrap": 200.0, "packages": 25.0, "configure": 2.0, "grub": 4.0, "filesystems": 12.0,
          "disk": 4.0, "convert": 12.0}
PROGRESS_TOTAL = 1000
LOG_EVERY = 0.1         # a progress line per phase change and per tenth of a phase


class Steps:
    """Runs the commands of a bootstrap, streaming their output to log; a failure names its step.

    The progress goes from 0 to PROGRESS_TOTAL over the stages in `stages` (keys of STAGES), each
    taking its share; `stage` starts one, `within` moves inside it."""

    def __init__(self, log: Log | None, progress: Progress | None, stages: Sequence[str] = ("debootstrap",)):
        self.log_fn, self.progress = log, progress
        weights = [STAGES[name] for name in stages]
        total = sum(weights)
        self.starts, self.shares, start = {}, {}, 0.0
        for name, weight in zip(stages, weights):
            self.starts[name], self.shares[name] = start / total, weight / total
            start += weight
        self.current: str | None = None
        self.done = -1

    def log(self, message: str) -> None:
        if self.log_fn is not None:
            self.log_fn(message)

    def stage(self, name: str, what: str) -> None:
        self.current = name
        self.log(f"bootstrap: {what}")
        self.within(0.0)

    def within(self, fraction: float) -> None:
        """Report progress at `fraction` (0..1) of the current stage; never backwards."""
        assert self.current is not None
        fraction = min(max(fraction, 0.0), 1.0)
        done = int(PROGRESS_TOTAL * (self.starts[self.current] + self.shares[self.current] * fraction))
        if done > self.done or self.done < 0:
            self.done = max(done, self.done)
            if self.progress is not None:
                self.progress("bootstrap", self.done, PROGRESS_TOTAL)

    def finish(self) -> None:
        self.done = PROGRESS_TOTAL
        if self.progress is not None:
            self.progress("bootstrap", PROGRESS_TOTAL, PROGRESS_TOTAL)

    async def run(self, step: str, argv: Sequence[str | Path], *, input: str | None = None,
                  env: dict[str, str] | None = None, hint: str = "",
                  lines: Callable[[str], str | None] | None = None) -> list[str]:
        """Run argv, each output line to log (through `lines`, which may rewrite or drop it); the last
        lines are in the error if it fails."""
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
                line: str | None = raw.decode("utf-8", errors="replace").rstrip()
                if line and lines is not None:
                    line = lines(line)
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


# debootstrap's phases, as its --debian-installer progress names them: what the log calls each, and its
# typical share of debootstrap's time (measured: bookworm, 214 packages, 296 s on a 2-core host)
DEBOOTSTRAP_PHASES = {
    "DOWNREL": ("retrieving the package lists", 0.002), "DOWNRELSIG": ("retrieving the package lists", 0.001),
    "DOWNPKGS": ("retrieving the package lists", 0.064), "DOWNMAINPKGS": ("retrieving the package lists", 0.0),
    "SIZEDEBS": ("resolving packages", 0.005),
    "DOWNDEBS": ("retrieving {done}/{total} packages", 0.175),
    "EXTRACTPKGS": ("extracting {done}/{total} packages", 0.012),
    "INSTCORE": ("installing the core packages", 0.005),
    "UNPACKREQ": ("unpacking {done}/{total} required packages", 0.05),
    "CONFREQ": ("configuring {done}/{total} required packages", 0.176),
    "UNPACKBASE": ("unpacking {done}/{total} base packages", 0.125),
    "CONFBASE": ("configuring {done}/{total} base packages", 0.385),
}


class DebootstrapOutput:
    """debootstrap --debian-installer's output (its fd 3 made stdout) read as log lines and progress.

    In that mode debootstrap says what it does in structured lines: a message is `I: NAME`, its
    arguments `IA: value`, then its printf format `IF: Retrieving %s %s` (W: and E: alike); a progress
    is `P: now end [NAME]` then `PA:`/`PF:`. Messages come out as debootstrap prints them by hand
    ("I: Retrieving adduser 3.134"); progress lines become `within` calls on steps and, per phase
    and per tenth of one, a line like "bootstrap: retrieving 58/214 packages".
    """

    def __init__(self, steps: Steps, log_every: float = LOG_EVERY):
        self.steps, self.log_every = steps, log_every
        self.starts: dict[str, float] = {}
        start = 0.0
        for name, (_, share) in DEBOOTSTRAP_PHASES.items():
            self.starts[name] = start
            start += share
        self.span = start
        self.phase: str | None = None
        self.now, self.end = 0, 0
        self.packages = 0            # how many packages debootstrap resolved (SIZEDEBS' end)
        self.retrieved = 0
        self.kind, self.args = "", []
        self.logged: tuple[str, int] | None = None
        self.said = ""

    def __call__(self, line: str) -> str | None:
        tag, _, value = line.partition(": ")
        if line in ("IA:", "WA:", "EA:", "PA:"):       # an empty argument
            tag, value = line[:-1], ""
        if tag in ("I", "W", "E"):
            self.kind, self.args = tag, []
            return None
        if tag in ("IA", "WA", "EA"):
            self.args.append(value)
            return None
        if tag in ("IF", "WF", "EF"):
            text = f"{self.kind}: {printf(value, self.args)}"
            if self.kind == "I" and value.startswith("Retrieving %s") and self.phase == "DOWNDEBS":
                self.retrieved += 1
            return text
        if tag == "P":
            self.progress(value.split())
            return self.status()
        if tag in ("PA", "PF"):
            return None
        return line

    def progress(self, fields: list[str]) -> None:
        try:
            now, end = int(fields[0]), int(fields[1])
        except (IndexError, ValueError):
            return
        if len(fields) > 2 and fields[2] in DEBOOTSTRAP_PHASES:
            self.phase = fields[2]
        if self.phase is None:
            return
        self.now, self.end = now, end
        if self.phase == "SIZEDEBS" and end > 1:
            self.packages = end
        self.steps.within(self.fraction())

    def fraction(self) -> float:
        """How far debootstrap is, 0..1."""
        assert self.phase is not None
        share = DEBOOTSTRAP_PHASES[self.phase][1]
        inside = min(self.now / self.end, 1.0) if self.end > 0 else 0.0
        return (self.starts[self.phase] + share * inside) / self.span

    def counts(self) -> tuple[int, int]:
        if self.phase == "DOWNDEBS":      # its progress counts bytes; the packages are counted by message
            return min(self.retrieved, self.packages or self.retrieved), self.packages or self.retrieved
        return self.now, self.end

    def status(self) -> str | None:
        """A progress line when the phase changes or moves on by another tenth."""
        if self.phase is None:
            return None
        inside = min(self.now / self.end, 1.0) if self.end > 0 else 0.0
        label = DEBOOTSTRAP_PHASES[self.phase][0]
        key = (label, 0) if "{" not in label else (self.phase, int(inside / self.log_every))
        if self.logged is not None and key[0] == self.logged[0] and key[1] <= self.logged[1]:
            return None               # the same phase, and no further tenth (download estimates go back and forth)
        self.logged = key
        done, total = self.counts()
        text = "bootstrap: " + label.format(done=done, total=total)
        if text == self.said:             # the bytes moved on, the count of packages did not
            return None
        self.said = text
        return text


def printf(fmt: str, args: Sequence[str]) -> str:
    """debootstrap's printf formats with their arguments (%s and %%, which is all it uses)."""
    values = iter(args)
    return re.sub(r"%[-0-9.]*[sd]|%%", lambda m: "%" if m.group() == "%%" else next(values, ""), fmt)


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
    root = work / "root"
    stages = ["debootstrap", *(["packages"] if base.packages else []), "configure", "grub", "filesystems", "disk",
              "convert"]
    steps = Steps(log, progress, stages)

    steps.stage("debootstrap", f"debootstrap {distro.name} {base.suite} from {base.mirror} into {root}")
    await asyncio.to_thread(preseed_tree, root, identity)
    # --debian-installer: debootstrap says its phases and counts on fd 3 (here its stdout), see DebootstrapOutput
    await steps.run("debootstrap", [
        "sh", "-c", 'exec 3>&1; exec "$@"', "debootstrap",
        "debootstrap", "--debian-installer", "--variant=minbase", f"--keyring={distro.keyring}",
        f"--components={','.join(distro.components)}", "--include=" + ",".join(distro.packages),
        base.suite, root, base.mirror],
        hint=f"check the suite and the mirror ({base.mirror}); debootstrap's log was in the work directory",
        lines=DebootstrapOutput(steps))

    if base.packages:
        steps.stage("packages", f"installing {' '.join(base.packages)}")
        await install_packages(steps, root, base.packages)

    steps.stage("configure", "configuring the tree")
    await asyncio.to_thread(configure_tree, root, identity, distro.name, distro.sources(base.mirror, base.suite))
    await asyncio.to_thread(clean_tree, root)
    vmlinuz, initrd, version = kernel_files(root)

    steps.stage("grub", "installing GRUB (BIOS core.img, UEFI BOOTX64.EFI, /boot/grub/grub.cfg)")
    grub = await install_grub(steps, root, work, identity, version, title=f"{distro.name.capitalize()} {base.suite}")

    needed = await asyncio.to_thread(tree_bytes, root)
    layout = Layout(disk_size(base, needed))
    if needed * 1.15 + 128 * MIB > layout.root_size:
        raise BuildError(f"bootstrap: the system takes {needed >> 20} MiB, too much for a {base.size} disk",
                         hint=f"use size: {-(-int(needed * 1.3 + ROOT_START) // (1 << 30))}G or more, "
                              "or leave size out")

    steps.stage("filesystems", f"making the root filesystem ({layout.root_size >> 20} MiB) and the ESP")
    root_img, esp_img = work / "root.img", work / "esp.img"
    await asyncio.gather(make_root_fs(steps, root, root_img, layout, identity),
                         make_esp(steps, work, esp_img, grub.efi, identity))

    steps.stage("disk", f"writing the disk ({layout.size >> 20} MiB)")
    disk = work / "disk.raw"
    await assemble_disk(steps, disk, layout, identity, esp_img, root_img, grub)

    steps.stage("convert", f"converting to qcow2 as {final.name}")
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        await steps.run("qemu-img convert", ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", disk, temporary])
        manifest = {"image": final.name, "inputs": image_inputs(base), "kernel": version, "size": layout.size,
                    "system_bytes": needed, "root_uuid": identity.root_uuid, "kernel_cmdline": kernel_cmdline(identity),
                    "bootloader": "grub",
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
    steps.within(0.2)
    await steps.run("apt-get install", ["chroot", root, "apt-get", "-q", "-y", "--no-install-recommends",
                                        "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                                        "install", *packages], env=env, hint=hint)
    steps.within(0.95)
    await steps.run("apt-get clean", ["chroot", root, "apt-get", "clean"], env=env)
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)


@dataclass(frozen=True)
class Grub:
    """What install_grub made outside the tree: the BIOS boot code and core image, and the UEFI image."""

    boot_img: Path      # GRUB's MBR code (boot.img), 512 bytes
    core_img: Path      # diskboot.img + the kernel and modules, for the gap before the first partition
    efi: Path           # BOOTX64.EFI


async def install_grub(steps: Steps, root: Path, work: Path, identity: Identity, version: str,
                       title: str) -> Grub:
    """GRUB 2 as grub-install would leave it, without a device: the tree's own grub-mkimage (run in a
    chroot, so the images match the modules the guest has) makes a BIOS core.img and a UEFI image that
    find the root filesystem by UUID and read /boot/grub/grub.cfg there; the modules go to
    /boot/grub/<platform> as grub-install copies them."""
    for platform in (GRUB_BIOS, GRUB_EFI):
        if not (root / GRUB_LIB / platform / "moddep.lst").is_file():
            raise BuildError(f"bootstrap: the tree has no GRUB modules for {platform} in /{GRUB_LIB}/{platform}",
                             hint="a package of the recipe may have removed grub-pc-bin or grub-efi-amd64-bin")
    scratch = "tmp/recipe-grub"

    def prepare() -> None:
        write(root, "boot/grub/grub.cfg", grub_cfg(identity, version, title), 0o644)
        write(root, f"{scratch}/early.cfg", grub_early_cfg(identity))
        for platform in (GRUB_BIOS, GRUB_EFI):
            target = inside(root, f"boot/grub/{platform}")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(root / GRUB_LIB / platform, target, symlinks=True,
                            ignore=shutil.ignore_patterns("*.image", "*.module", "*.exec", "kernel.img", "*.sh"))

    await asyncio.to_thread(prepare)
    images = {GRUB_BIOS: "core.img", GRUB_EFI: "BOOTX64.EFI"}
    for platform, modules in ((GRUB_BIOS, BIOS_MODULES), (GRUB_EFI, EFI_MODULES)):
        await steps.run(f"grub-mkimage ({platform})", [
            "chroot", root, "grub-mkimage", "-O", platform, "-d", f"/{GRUB_LIB}/{platform}",
            "-c", f"/{scratch}/early.cfg", "-p", "/boot/grub", "-o", f"/{scratch}/{images[platform]}", *modules])
    grub = Grub(boot_img=work / "boot.img", core_img=work / "core.img", efi=work / "BOOTX64.EFI")

    def collect() -> None:
        shutil.copyfile(root / GRUB_LIB / GRUB_BIOS / "boot.img", grub.boot_img)
        shutil.move(root / scratch / "core.img", grub.core_img)
        shutil.move(root / scratch / "BOOTX64.EFI", grub.efi)
        shutil.rmtree(root / scratch)
        if grub.core_img.stat().st_size > ESP_START - 2 * SECTOR:
            raise BuildError(f"bootstrap: GRUB's core.img ({grub.core_img.stat().st_size} bytes) does not fit "
                             "before the first partition")

    await asyncio.to_thread(collect)
    return grub


def bios_boot_code(boot_img: bytes, core_img: bytes, core_sector: int = 1) -> tuple[bytes, bytes]:
    """GRUB's MBR code and core image patched as grub-bios-setup patches them when it embeds core.img
    in the gap after the MBR: boot.img loads the first sector of core.img (diskboot.img) from
    core_sector, and diskboot's block list loads the rest from the sectors after it.

    (boot.img: the core's LBA at 0x5c, the boot drive 0xff = the one the BIOS booted from at 0x64,
    and the jump at 0x66 that trusts a floppy drive number replaced by two NOPs, as for a hard disk.
    diskboot.img: one block list entry at the end of its sector, {u64 start, u16 sectors, u16 segment}.)"""
    if len(boot_img) != SECTOR or boot_img[510:512] != b"\x55\xaa":
        raise BuildError("bootstrap: GRUB's boot.img is not a 512-byte boot sector")
    boot = bytearray(boot_img[:MBR_CODE])
    struct.pack_into("<Q", boot, 0x5c, core_sector)
    if boot[0x66] == 0xEB:              # jmp short: the drive check is still there
        boot[0x66:0x68] = b"\x90\x90"
    core = bytearray(core_img)
    sectors = -(-len(core) // SECTOR)
    core.extend(bytes(sectors * SECTOR - len(core)))
    entry = SECTOR - 12
    _start, _length, segment = struct.unpack_from("<QHH", core, entry)
    if segment != 0x820:
        raise BuildError("bootstrap: GRUB's core.img does not start with diskboot.img (no block list)")
    struct.pack_into("<QHH", core, entry, core_sector + 1, sectors - 1, segment)
    return bytes(boot), bytes(core)


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


async def make_esp(steps: Steps, work: Path, image: Path, efi: Path, identity: Identity) -> None:
    """A FAT32 ESP holding GRUB's UEFI image as the removable-media path EFI/BOOT/BOOTX64.EFI (the firmware
    needs no boot entry), made without mounting; the kernel stays on the root filesystem."""
    stage = work / "esp"

    def stage_files() -> None:
        (stage / "EFI/BOOT").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(efi, stage / "EFI/BOOT/BOOTX64.EFI")

    await asyncio.to_thread(stage_files)
    mtools = {"MTOOLS_SKIP_CHECK": "1"}
    await steps.run("mkfs.fat", ["mkfs.fat", "-F", "32", "-n", "ESP", "-i", identity.esp_id,
                                 "-h", str(ESP_START // SECTOR), "-C", image, str(ESP_SIZE // 1024)])
    await steps.run("mcopy", ["mcopy", "-s", "-Q", "-i", image, *sorted(stage.iterdir()), "::/"], env=mtools)


async def assemble_disk(steps: Steps, disk: Path, layout: Layout, identity: Identity, esp: Path, root: Path,
                        grub: Grub) -> None:
    """The partition table (sfdisk on the file), the partitions (dd), GRUB's boot.img in the MBR's code
    area and its core.img in the gap before the ESP."""
    with open(disk, "wb") as stream:
        stream.truncate(layout.size)
    await steps.run("sfdisk", ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk],
                    input=layout.sfdisk_script(identity.disk_id))

    def copy_in(step: str, source: Path, offset: int):
        return steps.run(step, ["dd", f"if={source}", f"of={disk}", "bs=1M", f"seek={offset // MIB}",
                                "conv=notrunc,sparse", "status=none"])

    await asyncio.gather(copy_in("dd (boot partition)", esp, ESP_START), copy_in("dd (root partition)", root, ROOT_START))

    def write_boot_code() -> None:
        boot, core = bios_boot_code(grub.boot_img.read_bytes(), grub.core_img.read_bytes())
        with open(disk, "r+b") as stream:
            stream.write(boot)                    # the first 440 bytes: the disk id and partition table stay
            stream.seek(SECTOR)
            stream.write(core)

    await asyncio.to_thread(write_boot_code)

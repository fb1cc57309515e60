"""`base: {bootstrap: ...}`: a bootable cloud-style Debian disk built from nothing, without loop devices or mounts.

The recipe of the image, in the order it runs (mkosi and osbuild build disks
the same way, from files rather than from mounted devices):

1. debootstrap a minbase tree with a kernel, systemd, sshd, sudo, cloud-init,
   growpart and ifupdown, into a work directory; the recipe's packages are
   then installed with apt-get in a chroot (apt resolves virtual packages,
   debootstrap does not).
2. configure the tree: no machine identity (empty /etc/machine-id, no ssh
   host keys: cloud-init writes per-instance ones), cloud-init limited to
   NoCloud, fstab by UUID, hostname, apt sources, caches emptied.
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
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from engine.errors import BuildError
from engine.schema import did_you_mean
from modules.platforms.qemu.download import file_lock

if TYPE_CHECKING:   # pragma: no cover
    from modules.platforms.qemu.base import BootstrapBase

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


@dataclass(frozen=True)
class Distro:
    name: str
    suite: str                     # the default suite
    mirror: str                    # the default mirror
    keyring: str
    packages: tuple[str, ...]      # what makes the tree a bootable cloud-style system
    components: tuple[str, ...] = ("main",)

    def sources(self, mirror: str, suite: str) -> str:
        """/etc/apt/sources.list for the guest."""
        components = " ".join(self.components)
        lines = [f"deb {mirror} {suite} {components}"]
        if suite not in ("sid", "unstable", "experimental"):
            lines.append(f"deb {mirror} {suite}-updates {components}")
            if re.match(r"https?://deb\.debian\.org/debian$", mirror):
                security = mirror.rsplit("/", 1)[0] + "/debian-security"
                lines.append(f"deb {security} {suite}-security {components}")
        return "\n".join(lines) + "\n"


DISTROS = {
    "debian": Distro(
        name="debian", suite="bookworm", mirror="http://deb.debian.org/debian",
        keyring="/usr/share/keyrings/debian-archive-keyring.gpg",
        packages=("linux-image-amd64", "initramfs-tools", "systemd-sysv", "udev", "openssh-server", "sudo",
                  "cloud-init", "cloud-guest-utils", "ifupdown", "isc-dhcp-client", "ca-certificates",
                  "e2fsprogs",
                  # logind and hostnamectl/timedatectl need the system bus (debootstrap takes no Recommends)
                  "dbus", "libpam-systemd",
                  # debootstrap does not resolve virtual packages: python3-cryptography (cloud-init)
                  # needs python3-cffi-backend-api-*, which only this package provides
                  "python3-cffi-backend")),
}


# ---------------------------------------------------------------- names, identities, layout

def image_inputs(base: "BootstrapBase") -> dict:
    """Everything the image depends on; its hash names the image."""
    return {"bootstrap_version": BOOTSTRAP_VERSION, "distro": base.distro, "suite": base.suite,
            "mirror": base.mirror.rstrip("/"), "packages": sorted(set(base.packages)), "size": disk_size(base)}


def image_key(base: "BootstrapBase") -> str:
    return hashlib.sha256(json.dumps(image_inputs(base), sort_keys=True).encode()).hexdigest()


def image_path(base: "BootstrapBase", cache_dir: Path) -> Path:
    return Path(cache_dir) / "images" / f"bootstrap-{image_key(base)[:16]}.qcow2"


def disk_size(base: "BootstrapBase") -> int:
    """The disk size in bytes, rounded up to a MiB."""
    return -(-base.size_bytes // MIB) * MIB


@dataclass(frozen=True)
class Identity:
    """The ids written into the image, derived from its key so a rebuild makes the same ones."""

    root_uuid: str
    esp_id: str       # FAT volume id, 8 hex digits (fstab spells it XXXX-XXXX)
    disk_id: str      # the MBR disk signature

    @staticmethod
    def of(key: str) -> "Identity":
        digest = hashlib.sha256(f"recipe-bootstrap-ids:{key}".encode()).digest()
        return Identity(root_uuid=str(uuid.UUID(bytes=digest[:16], version=4)),
                        esp_id=digest[16:20].hex().upper(), disk_id="0x" + digest[20:24].hex())

    @property
    def esp_uuid(self) -> str:
        return f"{self.esp_id[:4]}-{self.esp_id[4:]}"


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


def kernel_cmdline(identity: Identity) -> str:
    return f"root=UUID={identity.root_uuid} rw console=ttyS0,115200 net.ifnames=0"


def syslinux_cfg(identity: Identity) -> str:
    return ("SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\n\n"
            "LABEL linux\n  LINUX /vmlinuz\n  INITRD /initrd.img\n"
            f"  APPEND {kernel_cmdline(identity)}\n")


def loader_conf(entry: str) -> str:
    return f"default {entry}.conf\ntimeout 0\neditor no\n"


def loader_entry(identity: Identity, title: str) -> str:
    return f"title {title}\nlinux /vmlinuz\ninitrd /initrd.img\noptions {kernel_cmdline(identity)}\n"


def fstab(identity: Identity) -> str:
    return ("# <file system> <mount point> <type> <options> <dump> <pass>\n"
            f"UUID={identity.root_uuid} / ext4 errors=remount-ro 0 1\n"
            f"UUID={identity.esp_uuid} /boot/efi vfat umask=0077,nofail 0 0\n")


CLOUD_CFG = """\
# written by recipe's bootstrap: a seed (NoCloud) or nothing, never a metadata service
datasource_list: [NoCloud, None]
manage_etc_hosts: true
# built in, so nothing is generated at boot (Debian's locale-gen ignores cloud-init's en_US.UTF-8)
locale: C.UTF-8
"""

# QEMU's pc machine has a floppy controller with no disk: probing it costs seconds of I/O errors
# (blkid looking for a NoCloud seed) at every boot
NO_FLOPPY = "# recipe: no floppy disk on a cloud VM\nblacklist floppy\n"

# the initramfs is made inside debootstrap, where the root device cannot be probed: say its type so
# fsck.ext4 goes in, and that there is no swap to resume from
INITRAMFS_CONF = "# recipe: the root is ext4 (see /etc/fstab); no hibernation\nFSTYPE=ext4\nRESUME=none\n"

HOSTS = """\
127.0.0.1 localhost
127.0.1.1 {hostname}
::1 localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
"""

# cloud-init writes per-instance host keys before sshd starts; without cloud-init (or after a
# sysprep) sshd would refuse to start with none, so make the missing ones first
SSH_HOST_KEYS_DROPIN = """\
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""

# the bootloaders load /vmlinuz and /initrd.img from the ESP: keep them on the newest kernel when
# a kernel or an initramfs is installed inside the guest
ESP_HOOK = """\
#!/bin/sh
# recipe: copy the newest kernel and initrd to the ESP, where syslinux and systemd-boot load them
set -e
esp=/boot/efi
mountpoint -q "$esp" || exit 0
version=$(linux-version list | linux-version sort | tail -n 1)
[ -n "$version" ] && [ -f "/boot/vmlinuz-$version" ] && [ -f "/boot/initrd.img-$version" ] || exit 0
cp "/boot/vmlinuz-$version" "$esp/vmlinuz.new" && mv "$esp/vmlinuz.new" "$esp/vmlinuz"
cp "/boot/initrd.img-$version" "$esp/initrd.img.new" && mv "$esp/initrd.img.new" "$esp/initrd.img"
"""

POLICY_RC_D = "#!/bin/sh\n# recipe: no daemon starts while the image is built\nexit 101\n"


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


# ---------------------------------------------------------------- the tree

def inside(root: Path, relative: str) -> Path:
    """root/relative, refusing a parent that resolves outside root (an absolute symlink in the tree)."""
    path = root / relative.lstrip("/")
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(path.parent)
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise BuildError(f"bootstrap: /{relative.lstrip('/')} resolves outside the image tree")
    return path


def write(root: Path, relative: str, text: str, mode: int = 0o644) -> None:
    inside(root, relative).parent.mkdir(parents=True, exist_ok=True)
    path = inside(root, relative)     # checked again, now that its parents exist
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_text(text)
    os.chmod(path, mode)


def remove(root: Path, pattern: str) -> None:
    """Every regular file or symlink matching pattern (relative to root); directories stay."""
    for path in root.glob(pattern.lstrip("/")):
        inside(root, str(path.relative_to(root)))      # never through a symlink out of the tree
        if path.is_symlink() or path.is_file():
            path.unlink()


def preseed_tree(root: Path, identity: Identity) -> None:
    """Files debootstrap keeps and the initramfs made during debootstrap reads; written into the
    empty target before debootstrap runs, so the initramfs need not be made twice."""
    write(root, "etc/fstab", fstab(identity))
    write(root, "etc/initramfs-tools/conf.d/recipe.conf", INITRAMFS_CONF)
    write(root, "etc/modprobe.d/recipe-no-floppy.conf", NO_FLOPPY)


def configure_tree(root: Path, base: "BootstrapBase", identity: Identity, distro: Distro) -> None:
    """What makes the tree a generic cloud image rather than this machine's copy."""
    write(root, "etc/machine-id", "", 0o444)
    if (root / "var/lib/dbus/machine-id").is_file() and not (root / "var/lib/dbus/machine-id").is_symlink():
        (root / "var/lib/dbus/machine-id").unlink()
    remove(root, "etc/ssh/ssh_host_*")
    write(root, "etc/systemd/system/ssh.service.d/recipe-host-keys.conf", SSH_HOST_KEYS_DROPIN)
    write(root, "etc/cloud/cloud.cfg.d/90_recipe.cfg", CLOUD_CFG)
    write(root, "etc/default/locale", "LANG=C.UTF-8\n")
    write(root, "etc/fstab", fstab(identity))
    inside(root, "boot/efi").mkdir(parents=True, exist_ok=True)
    write(root, "etc/hostname", f"{distro.name}\n")
    write(root, "etc/hosts", HOSTS.format(hostname=distro.name))
    write(root, "etc/apt/sources.list", distro.sources(base.mirror, base.suite))
    write(root, "etc/kernel/postinst.d/zz-recipe-esp", ESP_HOOK, 0o755)
    write(root, "etc/initramfs/post-update.d/zz-recipe-esp", ESP_HOOK, 0o755)


def clean_tree(root: Path) -> None:
    """Caches, logs and the build host's traces (resolv.conf) out of the image."""
    for pattern in ("etc/resolv.conf", "usr/sbin/policy-rc.d", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/lib/apt/lists/*_*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old",
                    "var/log/*.log", "var/log/apt/*", "root/.bash_history"):
        remove(root, pattern)
    for directory in ("tmp", "var/tmp"):
        if not inside(root, directory).is_dir() or inside(root, directory).is_symlink():
            continue
        for entry in inside(root, directory).iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def kernel_files(root: Path) -> tuple[Path, Path, str]:
    """(vmlinuz, initrd, version) of the newest kernel in the tree."""
    versions = [p.name[len("vmlinuz-"):] for p in (root / "boot").glob("vmlinuz-*")]
    versions = [v for v in versions if (root / "boot" / f"initrd.img-{v}").is_file()]
    if not versions:
        raise BuildError("bootstrap: the tree has no kernel with an initrd in /boot",
                         hint="a package of the recipe may have removed linux-image-amd64 or initramfs-tools")
    newest = max(versions, key=_version_key)
    return root / "boot" / f"vmlinuz-{newest}", root / "boot" / f"initrd.img-{newest}", newest


def _version_key(version: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.+~-]", version)]


def tree_bytes(root: Path) -> int:
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


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

def check_host(base: "BootstrapBase", distro: Distro) -> None:
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


async def build_image(base: "BootstrapBase", cache_dir: Path, progress: Progress | None = None,
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


async def _build(base: "BootstrapBase", distro: Distro, final: Path, work: Path,
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
    await asyncio.to_thread(configure_tree, root, base, identity, distro)
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

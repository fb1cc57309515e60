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
import contextlib
import datetime
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from engine.errors import BuildError
from engine.recipe.schema import did_you_mean
from modules.platforms.qemu.base_spec import BootstrapBase
from modules.platforms.qemu.bootstrap_steps import SYSTEM_PATH, TOOLS, Log, Progress, Status, Steps
from modules.platforms.qemu.debootstrap_output import DebootstrapOutput
from modules.platforms.qemu.distros import DISTROS, Distro
from engine.local_cache import file_lock
from modules.platforms.qemu.grub import SECTOR, Grub, bios_boot_code, install_grub
from modules.platforms.qemu.image_tree import (POLICY_RC_D, Identity, clean_tree, configure_tree, kernel_cmdline,
                                               kernel_files, preseed_tree, tree_bytes, write)
from modules.platforms.qemu.work_dirs import remove_work_dir, sweep_stale

# Bump when the image this module makes changes (packages, configuration, layout):
# the cached images of the previous recipe are then no longer used.
BOOTSTRAP_VERSION = 5

MIB = 1 << 20
GIB = 1 << 30
ESP_START = 1 * MIB
ESP_SIZE = 256 * MIB
ROOT_START = ESP_START + ESP_SIZE
SIZE_STEP = 256 * MIB        # a computed disk size is rounded up to this
HEADROOM = 512 * MIB         # free space left on a computed root filesystem, besides 20% of the system
DEFAULT_DISK_SIZE = "4G"     # a build's disk without disk_size (the size bootstrap images always had)
MIN_DISK_SIZE = 2 * GIB      # no Debian cloud system (kernel, systemd, cloud-init, GRUB) fits in less

SCRIPTS = Path("/usr/share/debootstrap/scripts")
FILES: dict[Path, str] = {}     # GRUB's tools and images come from the tree (the guest's own grub packages)


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
                      log: Log | None = None, status: Status | None = None) -> Path:
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
            await _build(base, distro, final, work, Steps(log, progress, stages_of(base), status))
        finally:
            await remove_work_dir(work, log)
    return final


def stages_of(base: BootstrapBase) -> list[str]:
    return ["debootstrap", *(["packages"] if base.packages else []), "configure", "grub", "filesystems", "disk",
            "convert"]


async def _build(base: BootstrapBase, distro: Distro, final: Path, work: Path, steps: Steps) -> None:
    started = time.monotonic()
    key = image_key(base)
    identity = Identity.of(key)
    root = work / "root"

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
    grub = await install_grub(steps, root, work, identity, version, title=f"{distro.name.capitalize()} {base.suite}",
                              gap_end=ESP_START)

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

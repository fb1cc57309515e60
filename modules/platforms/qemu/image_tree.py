"""What goes into a bootstrap's tree: the ids written into the image, the boot configuration, the files
that make it a generic cloud image rather than a copy of the build, and what is cleaned out of it.

Every write goes through `inside`, which refuses a path that resolves out of the tree (the tree is
made by debootstrap and packages: an absolute symlink in it must not send a write to the host).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.errors import BuildError


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


# ---------------------------------------------------------------- what the files say

# the kernel's arguments besides the root: the serial console cloud providers and QEMU log, and eth0
KERNEL_ARGS = "console=ttyS0,115200 net.ifnames=0"


def kernel_cmdline(identity: Identity) -> str:
    return f"root=UUID={identity.root_uuid} rw {KERNEL_ARGS}"


def grub_cfg(identity: Identity, version: str, title: str) -> str:
    """/boot/grub/grub.cfg as the build writes it (grub-mkconfig cannot probe the disk in a chroot);
    `update-grub` in the guest replaces it with one made from /etc/default/grub, which boots the same way."""
    return ("# written by recipe's bootstrap; update-grub rewrites it from /etc/default/grub and /etc/grub.d\n"
            "set default=0\nset timeout=0\n"
            "serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n"
            "insmod part_msdos\ninsmod ext2\n"
            f"search --no-floppy --fs-uuid --set=root {identity.root_uuid}\n\n"
            f"menuentry '{title}' --id recipe {{\n"
            "\tinsmod gzio\n"
            f"\tlinux /boot/vmlinuz-{version} {kernel_cmdline(identity)}\n"
            f"\tinitrd /boot/initrd.img-{version}\n"
            "}\n")


def grub_early_cfg(identity: Identity) -> str:
    """Built into the BIOS and UEFI core images: find the root filesystem, read /boot/grub/grub.cfg there
    (and the modules in /boot/grub/<platform>)."""
    return (f"search --no-floppy --fs-uuid --set=root {identity.root_uuid}\n"
            "set prefix=($root)/boot/grub\n")


# /etc/default/grub: what update-grub (grub-mkconfig) makes grub.cfg of in the guest, for a new kernel
DEFAULT_GRUB = f"""\
# written by recipe's bootstrap; update-grub reads it (see `info -f grub -n 'Simple configuration'`)
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="{KERNEL_ARGS}"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_RECOVERY=true
"""


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
# fsck.ext4 goes in, and that there is no swap to resume from. Only the listed drivers go in: Debian's
# MODULES=most packs every storage driver (a 37 MB initrd that GRUB reads at each boot), and rebuilding it
# took 18 minutes in a TCG guest, paid at every kernel update and every virt-v2v conversion; the list takes
# under 2 minutes and 8 MB.
INITRAMFS_CONF = ("# recipe: the root is ext4 (see /etc/fstab); no hibernation; the drivers: modules.d/recipe\n"
                  "FSTYPE=ext4\nRESUME=none\nMODULES=list\n")

# what the root disk hangs off, on each hypervisor and cloud an image of this base may boot on
INITRAMFS_MODULES = {
    "QEMU/KVM, OpenStack, GCE": ("virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod"),
    "VirtualBox, VMware, QEMU's SATA and IDE": ("ahci", "ata_piix", "ata_generic"),
    "VMware's SCSI": ("vmw_pvscsi", "mptspi", "mptsas"),
    "Hyper-V and Azure": ("hv_vmbus", "hv_storvsc"),
    "EC2 Nitro and NVMe everywhere": ("nvme",),
    "Xen and older EC2": ("xen_blkfront",),
    "the root's filesystem": ("ext4",),
}


def initramfs_modules() -> str:
    lines = ["# recipe: the drivers a root disk needs, on each platform an image of this base may boot on"]
    for where, names in INITRAMFS_MODULES.items():
        lines += [f"# {where}", *names]
    return "\n".join(lines) + "\n"


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

POLICY_RC_D = "#!/bin/sh\n# recipe: no daemon starts while the image is built\nexit 101\n"


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
    # not /etc/initramfs-tools/modules: a conffile of initramfs-tools, which dpkg would ask about
    write(root, "usr/share/initramfs-tools/modules.d/recipe", initramfs_modules())
    write(root, "etc/modprobe.d/recipe-no-floppy.conf", NO_FLOPPY)


def configure_tree(root: Path, identity: Identity, hostname: str, apt_sources: str) -> None:
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
    write(root, "etc/hostname", f"{hostname}\n")
    write(root, "etc/hosts", HOSTS.format(hostname=hostname))
    write(root, "etc/apt/sources.list", apt_sources)
    write(root, "etc/default/grub", DEFAULT_GRUB)


def clean_tree(root: Path) -> None:
    """Caches, logs and the build host's traces (resolv.conf) out of the image."""
    for pattern in ("etc/resolv.conf", "usr/sbin/policy-rc.d", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/lib/apt/lists/*_*", "var/lib/apt/periodic/update-success-stamp", "var/cache/debconf/*-old",
                    "var/lib/dpkg/*-old", "var/log/*.log", "var/log/apt/*", "root/.bash_history"):
        remove(root, pattern)
    # The package lists are gone: say they were never updated, or a role's `apt: update_cache=yes
    # cache_valid_time=86400` (which reads this directory's age, as Ansible's apt does) skips the update on a
    # base built today and then finds no package at all.
    lists = inside(root, "var/lib/apt/lists")
    if lists.is_dir() and not lists.is_symlink():
        os.utime(lists, (0, 0))
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

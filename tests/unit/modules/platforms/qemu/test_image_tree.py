"""What a bootstrap writes into its tree, on a fake tree: ids, boot configuration, identity removed,
caches cleaned, and writes and removals that never leave the tree."""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from engine.errors import BuildError
from modules.platforms.qemu import image_tree
from modules.platforms.qemu.base import BootstrapBase
from modules.platforms.qemu.bootstrap import DISTROS
from modules.platforms.qemu.image_tree import (DEFAULT_GRUB, KERNEL_ARGS, Identity, grub_cfg, grub_early_cfg,
                                               kernel_cmdline)

DEBIAN = DISTROS["debian"]


def test_identity_is_derived_from_the_key():
    identity = Identity.of("k1")
    assert identity == Identity.of("k1") and identity != Identity.of("k2")
    assert uuid.UUID(identity.root_uuid).version == 4
    assert len(identity.esp_id) == 8 and identity.esp_uuid == identity.esp_id[:4] + "-" + identity.esp_id[4:]
    assert identity.disk_id.startswith("0x") and len(identity.disk_id) == 10


def test_grub_boots_the_kernel_on_the_root_found_by_its_uuid():
    identity = Identity.of("k")
    line = kernel_cmdline(identity)
    assert line == f"root=UUID={identity.root_uuid} rw console=ttyS0,115200 net.ifnames=0"
    cfg = grub_cfg(identity, "6.1.0-10-amd64", "Debian bookworm")
    assert f"search --no-floppy --fs-uuid --set=root {identity.root_uuid}\n" in cfg
    assert f"\tlinux /boot/vmlinuz-6.1.0-10-amd64 {line}\n" in cfg
    assert "\tinitrd /boot/initrd.img-6.1.0-10-amd64\n" in cfg
    assert "set timeout=0\n" in cfg and "menuentry 'Debian bookworm'" in cfg and "serial --unit=0 --speed=115200" in cfg
    # the core images find the same root and read grub.cfg and the modules from its /boot/grub
    early = grub_early_cfg(identity)
    assert early == (f"search --no-floppy --fs-uuid --set=root {identity.root_uuid}\n"
                     "set prefix=($root)/boot/grub\n")


def test_update_grub_in_the_guest_keeps_the_kernel_line():
    """grub-mkconfig adds root=UUID=... itself; /etc/default/grub gives the rest of the line and the console."""
    assert f'GRUB_CMDLINE_LINUX="{KERNEL_ARGS}"\n' in DEFAULT_GRUB and KERNEL_ARGS in kernel_cmdline(Identity.of("k"))
    assert "GRUB_TIMEOUT=0\n" in DEFAULT_GRUB and 'GRUB_TERMINAL="console serial"' in DEFAULT_GRUB
    subprocess.run(["sh", "-n"], input=DEFAULT_GRUB, text=True, check=True)       # grub-mkconfig sources it


def fake_tree(root: Path) -> None:
    for name, text in {"etc/machine-id": "5bf43edc8d5e400594458c8fbfff957c\n",
                       "etc/ssh/ssh_host_ed25519_key": "secret", "etc/ssh/ssh_host_ed25519_key.pub": "public",
                       "etc/ssh/sshd_config": "# keep\n", "etc/resolv.conf": "nameserver 10.255.255.53\n",
                       "etc/hostname": "buildhost\n", "var/cache/apt/archives/x_1_amd64.deb": "deb",
                       "var/cache/apt/pkgcache.bin": "bin", "var/lib/apt/lists/deb.debian.org_x_Packages": "p",
                       "var/lib/apt/lists/lock": "", "var/log/dpkg.log": "log", "tmp/junk/file": "x",
                       "boot/vmlinuz-6.1.0-9-amd64": "k9", "boot/initrd.img-6.1.0-9-amd64": "i9",
                       "boot/vmlinuz-6.1.0-10-amd64": "k10", "boot/initrd.img-6.1.0-10-amd64": "i10",
                       "boot/vmlinuz-6.1.0-11-amd64": "k11 without an initrd"}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "var/lib/apt/lists/partial").mkdir()


def test_the_tree_loses_its_identity_and_gains_its_configuration(tmp_path):
    root = tmp_path / "root"
    fake_tree(root)
    identity = Identity.of("k")
    base = BootstrapBase()
    image_tree.preseed_tree(root, identity)
    image_tree.configure_tree(root, identity, DEBIAN.name, DEBIAN.sources(base.mirror, base.suite))
    image_tree.clean_tree(root)
    assert (root / "etc/machine-id").read_text() == ""
    assert sorted(p.name for p in (root / "etc/ssh").iterdir()) == ["sshd_config"]
    assert "ssh-keygen -A" in (root / "etc/systemd/system/ssh.service.d/recipe-host-keys.conf").read_text()
    assert "datasource_list: [NoCloud, None]" in (root / "etc/cloud/cloud.cfg.d/90_recipe.cfg").read_text()
    fstab = (root / "etc/fstab").read_text()
    assert f"UUID={identity.root_uuid} / ext4" in fstab and f"UUID={identity.esp_uuid} /boot/efi vfat" in fstab
    assert (root / "boot/efi").is_dir()
    assert (root / "etc/hostname").read_text() == "debian\n"
    assert "127.0.1.1 debian" in (root / "etc/hosts").read_text()
    assert (root / "etc/apt/sources.list").read_text() == DEBIAN.sources(base.mirror, base.suite)
    assert (root / "etc/default/grub").read_text() == DEFAULT_GRUB
    assert not (root / "etc/kernel/postinst.d/zz-recipe-esp").exists()     # the kernel stays on the root fs
    assert "blacklist floppy" in (root / "etc/modprobe.d/recipe-no-floppy.conf").read_text()
    assert "MODULES=list" in (root / "etc/initramfs-tools/conf.d/recipe.conf").read_text().splitlines()
    listed = (root / "usr/share/initramfs-tools/modules.d/recipe").read_text().splitlines()
    assert {"virtio_blk", "ahci", "nvme", "vmw_pvscsi", "hv_storvsc", "xen_blkfront", "ext4"} <= set(listed)
    assert not (root / "etc/resolv.conf").exists()                 # the build host's DNS stays out
    assert list((root / "var/cache/apt/archives").iterdir()) == []
    assert not (root / "var/cache/apt/pkgcache.bin").exists()
    # the lists are gone and their directory says so: cache_valid_time updates them on a base built today
    assert (root / "var/lib/apt/lists").stat().st_mtime == 0
    assert sorted(p.name for p in (root / "var/lib/apt/lists").iterdir()) == ["lock", "partial"]
    assert not (root / "var/log/dpkg.log").exists() and list((root / "tmp").iterdir()) == []
    vmlinuz, initrd, version = image_tree.kernel_files(root)
    assert version == "6.1.0-10-amd64" and vmlinuz.read_text() == "k10" and initrd.read_text() == "i10"


def test_writes_never_leave_the_tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "etc").symlink_to(outside)          # an absolute symlink would point at the build host
    with pytest.raises(BuildError, match="outside the image tree"):
        image_tree.write(root, "etc/hostname", "x\n")
    assert list(outside.iterdir()) == []
    (root / "usr/lib").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")       # a relative one inside the tree is fine
    image_tree.write(root, "lib/x.conf", "y\n")
    assert (root / "usr/lib/x.conf").read_text() == "y\n"


def test_removals_never_leave_the_tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "ssh_host_rsa_key").write_text("the build host's key")
    (root / "etc/ssh").symlink_to(outside)
    with pytest.raises(BuildError, match="outside the image tree"):
        image_tree.remove(root, "etc/ssh/ssh_host_*")
    assert (outside / "ssh_host_rsa_key").exists()


def test_a_tree_without_a_kernel_is_an_error(tmp_path):
    (tmp_path / "boot").mkdir()
    with pytest.raises(BuildError, match="no kernel"):
        image_tree.kernel_files(tmp_path)

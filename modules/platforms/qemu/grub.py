"""GRUB 2 for a bootstrap image, as grub-install would leave it but without a device: a BIOS core.img for
the gap after the MBR (with boot.img, patched as grub-bios-setup patches them) and a UEFI BOOTX64.EFI."""
from __future__ import annotations

import asyncio
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from engine.errors import BuildError
from modules.platforms.qemu.bootstrap_steps import Steps
from modules.platforms.qemu.image_tree import Identity, grub_cfg, grub_early_cfg, inside, write

GRUB_LIB = "usr/lib/grub"                 # in the tree: grub-pc-bin and grub-efi-amd64-bin
GRUB_BIOS, GRUB_EFI = "i386-pc", "x86_64-efi"
# built into the core images: what finds and reads the root filesystem; the rest loads from /boot/grub
BIOS_MODULES = ("biosdisk", "part_msdos", "ext2", "search", "search_fs_uuid")
EFI_MODULES = ("part_msdos", "part_gpt", "ext2", "fat", "search", "search_fs_uuid", "normal", "linux", "gzio",
               "efi_gop", "serial", "terminal", "configfile", "echo", "test")
SECTOR = 512
MBR_CODE = 440               # the MBR's boot code; the disk id and the partition table follow


@dataclass(frozen=True)
class Grub:
    """What install_grub made outside the tree: the BIOS boot code and core image, and the UEFI image."""

    boot_img: Path      # GRUB's MBR code (boot.img), 512 bytes
    core_img: Path      # diskboot.img + the kernel and modules, for the gap before the first partition
    efi: Path           # BOOTX64.EFI


async def install_grub(steps: Steps, root: Path, work: Path, identity: Identity, version: str,
                       title: str, gap_end: int) -> Grub:
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
        if grub.core_img.stat().st_size > gap_end - 2 * SECTOR:
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

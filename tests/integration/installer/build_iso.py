"""A small OS installer ISO made for the tests of recipe's installer bases (Packer-style: boot an ISO, type a
boot_command, serve an answer file over HTTP, wait for the installer to power off, boot the installed disk).

    installer = build_test_installer(Path.home() / ".cache/recipe", bootstrap_base.path)

What it builds, from recipe's bootstrap base (a Debian 12 qcow2 disk), into
<cache_dir>/test-installer-<hash>/:

- rootfs.tar.gz: the base's root filesystem (guestfish tar-out, numeric owners, no xattrs), the system the
  installer copies: a test serves it over HTTP next to the answer file.
- installer.iso: the base's kernel and an initrd of busybox (busybox-static), the few kernel modules the
  installer needs, the host's sfdisk and mke2fs (with their libraries) and init.sh as /init. Bootable:
  BIOS with isolinux (hybrid MBR too), UEFI with a standalone GRUB in an El Torito EFI image.
- vmlinuz and initrd.gz, the same as on the ISO, for a direct kernel boot.

Both boot menus wait forever on a `rescue` entry that installs nothing (it prints `rescue mode` and sleeps):
nothing is installed unless the boot_command types the answer file's URL. The boot_commands verified with
QEMU (q35, TCG, keys sent as QMP input-send-event to the PS/2 keyboard, `-display none -vga none`; PORT is
the test's HTTP server on the host, 10.0.2.2 under user networking):

- BIOS, at isolinux's `boot:` prompt (isolinux appends the typed words to the entry's kernel command line):
      install url=http://10.0.2.2:PORT/answers.cfg<enter>
- UEFI, at GRUB's menu (`c` opens its command line; the embedded grub.cfg already set root to the ISO):
      c<wait>linux /boot/vmlinuz console=ttyS0,115200 mode=install url=http://10.0.2.2:PORT/answers.cfg<enter>initrd /boot/initrd.gz<enter>boot<enter>

isolinux shows its banner and `boot: ` on ttyS0, GRUB its menu (`Rescue (installs nothing)`): what a test
waits for before typing. The installer then logs `installer: <step>` on ttyS0 and ends with
`installer: done` or `installer: FAILED: <step> (status N)`, powering off either way. The installed disk
boots with BIOS only (GRUB i386-pc in its MBR, one ext4 partition), whichever firmware ran the installer.

The answer file's variables are in answers.cfg (an example), the installer's steps in init.sh. The result is
cached under a hash of the base image's name, size and mtime and of init.sh and this file: a second call
returns at once. A build goes into a temporary directory next to the final one, renamed when whole, under a
lock, so concurrent test workers build it once.
"""
from __future__ import annotations

import fcntl
import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

HERE = Path(__file__).resolve().parent
INIT_SCRIPT = HERE / "init.sh"
ANSWERS = HERE / "answers.cfg"       # an example answer file: what a test serves (with its own values)

ISOLINUX = Path("/usr/lib/ISOLINUX")
SYSLINUX_BIOS = Path("/usr/lib/syslinux/modules/bios")
BUSYBOX = Path("/bin/busybox")       # busybox-static: no libraries to copy
HOST_TOOLS = ("sfdisk", "mke2fs")    # busybox's mke2fs makes no ext4, and busybox has no sfdisk
HOST_FILES = ("/etc/mke2fs.conf",)   # mke2fs's defaults for ext4 (without it, its built-in ones)
SBIN_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"

# the modules the installer loads (the rest of what they need comes from modules.dep); absent ones
# (built in, or not in this kernel) are skipped
MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "crc32c_generic", "crc32c_intel", "ext4")

# libguestfs runs its appliance with KVM when /dev/kvm exists, which aborts where KVM is broken
LIBGUESTFS_TCG = {"LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}

ISOLINUX_CFG = """\
SERIAL 0 115200
CONSOLE 1
PROMPT 1
TIMEOUT 0
DEFAULT rescue
LABEL rescue
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd.gz
  APPEND console=ttyS0,115200 mode=rescue
LABEL install
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd.gz
  APPEND console=ttyS0,115200 mode=install
"""

# embedded in the standalone GRUB as (memdisk)/boot/grub/grub.cfg: the image has no prefix on the ISO,
# so it finds the ISO's files by searching for the kernel. The terminal is UEFI's console alone: OVMF
# already mirrors it to the serial port and reads keys from there too, and GRUB's own serial terminal on top
# printed every character twice on ttyS0 (`lliinnuuxx`), which a test matching the console cannot read.
GRUB_CFG = """\
search --no-floppy --file --set=root /boot/vmlinuz
terminal_input console
terminal_output console
set timeout=-1
set default=rescue
menuentry "Rescue (installs nothing)" --id rescue {
  linux /boot/vmlinuz console=ttyS0,115200 mode=rescue
  initrd /boot/initrd.gz
}
menuentry "Install (needs url=, type c and boot it by hand)" --id install {
  linux /boot/vmlinuz console=ttyS0,115200 mode=install
  initrd /boot/initrd.gz
}
"""

# what the standalone GRUB may load from its memdisk (all of them make a 2.5 times larger image)
GRUB_MODULES = ("linux boot normal configfile echo test ls cat search search_fs_file iso9660 part_msdos "
                "part_gpt fat serial terminal gzio all_video efi_gop efi_uga halt reboot")

# udhcpc's event script: configures eth0 from the lease udhcpc puts in the environment
UDHCPC_SCRIPT = """\
#!/bin/sh
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for gateway in $router; do
		ip route add default via "$gateway" dev "$interface"
		break
	done
	for server in $dns; do echo "nameserver $server"; done >/etc/resolv.conf
	echo "installer: $interface $ip/${mask:-24} gateway $router"
	;;
esac
exit 0
"""


@dataclass(frozen=True)
class TestInstaller:
    __test__ = False   # not a test class, whatever pytest thinks of its name

    iso: Path          # the ISO, BIOS (isolinux) and UEFI (GRUB EFI) bootable
    rootfs: Path       # rootfs.tar.gz: the system the installer copies, served by the test over HTTP


def build_test_installer(cache_dir: Path, base_image: Path) -> TestInstaller:
    """The test installer made from base_image, built once into cache_dir/test-installer-<hash>/ (about
    90 s, most of it libguestfs exporting the root filesystem under TCG)."""
    final = cache_dir / f"test-installer-{inputs_hash(base_image)}"
    if not final.is_dir():
        with locked(final.with_name(final.name + ".lock")):
            if not final.is_dir():       # another worker may have built it while this one waited
                build_into(final, base_image)
    return TestInstaller(iso=final / "installer.iso", rootfs=final / "rootfs.tar.gz")


def inputs_hash(base_image: Path) -> str:
    """What the build depends on: the base (by name, size and mtime: hashing 800 MB would take longer than
    the rest of the check) and the installer's code."""
    stat = base_image.stat()
    digest = hashlib.sha256(f"{base_image.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    for source in (INIT_SCRIPT, Path(__file__).resolve()):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def build_into(final: Path, base_image: Path) -> None:
    """Build in a temporary directory beside final and rename it when whole: final never holds half a build."""
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(work, base_image)
        work.chmod(0o755)            # mkdtemp's 0700 would keep a test's unprivileged HTTP server out
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def build(out: Path, base_image: Path) -> None:
    # every timestamp the build writes is the base's: the same base and code give (nearly) the same bytes
    epoch = int(base_image.stat().st_mtime)
    scratch = out / "scratch"
    scratch.mkdir()
    export_rootfs(base_image, out / "rootfs.tar.gz")
    kernel, modules = extract_kernel(out / "rootfs.tar.gz", scratch / "base")
    shutil.copy(kernel, out / "vmlinuz")
    make_initrd(scratch / "initrd", modules, out / "initrd.gz", epoch)
    make_iso(scratch / "iso", out / "vmlinuz", out / "initrd.gz", out / "installer.iso", epoch)
    shutil.rmtree(scratch)


def run(argv: Sequence[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """Run a tool; a failure raises with the tool's own words."""
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":" + SBIN_PATH, **kwargs.pop("env", {})}
    result = subprocess.run([str(arg) for arg in argv], env=env, stdout=kwargs.pop("stdout", subprocess.PIPE),
                            stderr=subprocess.PIPE, **kwargs)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace") if isinstance(result.stderr, bytes) else result.stderr
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {stderr[-3000:]}")
    return result


# -- rootfs.tar.gz and the kernel --------------------------------------------------------------------------

def export_rootfs(base_image: Path, tarball: Path) -> None:
    """The base's root filesystem as a tarball, read by libguestfs (no mount, no root needed).

    guestfish writes the plain tar to a pipe and the host's gzip compresses it: compress:gzip would gzip
    inside the TCG appliance, twice as slow. -i mounts the base as its fstab does, the ESP on /boot/efi
    too: its files come along, harmless on the installed ext4 root."""
    with open(tarball, "wb") as sink:
        gzip = subprocess.Popen(["gzip", "-n", "-6"], stdin=subprocess.PIPE, stdout=sink)
        try:
            run(["guestfish", "--ro", "-a", base_image, "-i", "tar-out", "/", "-", "numericowner:true"],
                stdout=gzip.stdin, env=LIBGUESTFS_TCG)
        finally:
            assert gzip.stdin is not None
            gzip.stdin.close()
            if gzip.wait() != 0:
                raise RuntimeError(f"gzip failed ({gzip.returncode}) compressing {tarball}")


def extract_kernel(rootfs: Path, into: Path) -> tuple[Path, Path]:
    """(the newest /boot/vmlinuz-<release>, /lib/modules/<release>) unpacked from the tarball: cheaper than
    a second libguestfs appliance. The base is merged-/usr (/lib -> usr/lib)."""
    into.mkdir(parents=True)
    run(["tar", "-xzf", rootfs, "-C", into, "--wildcards", "./boot/vmlinuz-*", "./usr/lib/modules"])
    kernels = sorted((into / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise RuntimeError(f"no /boot/vmlinuz-* in {rootfs}")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    modules = into / "usr/lib/modules" / release
    if not (modules / "modules.dep").is_file():
        raise RuntimeError(f"no /lib/modules/{release}/modules.dep in {rootfs}")
    return kernels[-1], modules


# -- the initrd --------------------------------------------------------------------------------------------

def make_initrd(stage: Path, modules: Path, initrd: Path, epoch: int) -> None:
    stage.mkdir(parents=True)
    for folder in ("dev", "proc", "sys", "tmp", "target", "etc"):
        (stage / folder).mkdir()
    stage_busybox(stage)
    stage_host_tools(stage)
    stage_modules(stage, modules)
    write_executable(stage / "init", INIT_SCRIPT.read_text())
    write_executable(stage / "etc/udhcpc.script", UDHCPC_SCRIPT)
    # libext2fs looks at /etc/mtab for mounted filesystems before it formats one
    (stage / "etc/mtab").symlink_to("/proc/self/mounts")
    set_mtimes(stage, epoch)
    write_cpio(stage, initrd)


def write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def stage_busybox(stage: Path) -> None:
    """Busybox and a link for each of its applets, where its own list puts them."""
    target = stage / "bin/busybox"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, target)
    applets = run([BUSYBOX, "--list-full"], text=True).stdout.split()
    for applet in applets:
        link = stage / applet
        if applet in ("bin/busybox", "linuxrc") or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")


def stage_host_tools(stage: Path) -> None:
    """The host's tools (Debian 12, as the base) in /sbin, replacing busybox's applet of the same name,
    with the shared libraries and the loader ldd lists, at the paths ldd gives."""
    for name in HOST_TOOLS:
        tool = shutil.which(name, path=SBIN_PATH)
        if tool is None:
            raise RuntimeError(f"{name} is not installed on this host")
        copy_into(stage, Path(tool), stage / "sbin" / name)
        for library in shared_libraries(Path(tool)):
            copy_into(stage, library, stage / library.relative_to("/"))
    for name in HOST_FILES:
        copy_into(stage, Path(name), stage / name.lstrip("/"))


def shared_libraries(binary: Path) -> list[Path]:
    """What ldd says binary loads: `libx.so.1 => /lib/.../libx.so.1 (0x...)` and the loader's own line."""
    output = run(["ldd", binary], text=True).stdout
    return [Path(path) for path in re.findall(r"(?:=> )?(/\S+) \(0x", output)]


def copy_into(stage: Path, source: Path, target: Path) -> None:
    # a symlink (the libraries' soname links, merged-/usr) is followed: the initrd holds the file itself
    if target.is_symlink():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def stage_modules(stage: Path, modules: Path) -> None:
    """MODULES and what modules.dep says they need, and a modules.dep of their own (depmod) for busybox's
    modprobe, at /lib/modules/<release>."""
    release = modules.name
    target = stage / "lib/modules" / release
    for relative in module_closure(modules, MODULES):
        copy_into(stage, modules / relative, target / relative)
    for name in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (modules / name).is_file():
            copy_into(stage, modules / name, target / name)
    run(["depmod", "-b", stage, release])


def module_closure(modules: Path, names: Sequence[str]) -> list[str]:
    """The paths (relative to modules) of names' modules and of the modules they depend on."""
    depends: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        path, _, deps = line.partition(":")
        depends[path] = deps.split()
        by_name[module_name(path)] = path
    wanted = [by_name[name] for name in names if name in by_name]
    closure: set[str] = set()
    while wanted:
        path = wanted.pop()
        if path not in closure:
            closure.add(path)
            wanted.extend(depends[path])
    return sorted(closure)


def module_name(path: str) -> str:
    """kernel/arch/x86/crypto/crc32c-intel.ko(.xz) -> crc32c_intel, the name modprobe takes."""
    return Path(path).name.split(".ko")[0].replace("-", "_")


def set_mtimes(folder: Path, epoch: int) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def write_cpio(stage: Path, initrd: Path) -> None:
    """A newc cpio, gzipped, as the kernel unpacks it: sorted names, owned by root, no host inode numbers."""
    names = sorted(str(path.relative_to(stage)) for path in stage.rglob("*"))
    with open(initrd, "wb") as sink:
        archive = subprocess.Popen(["cpio", "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"],
                                   cwd=stage, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        gzip = subprocess.Popen(["gzip", "-n", "-9"], stdin=archive.stdout, stdout=sink)
        assert archive.stdout is not None
        archive.stdout.close()       # gzip holds the pipe now: cpio sees it close if gzip dies
        _, errors = archive.communicate("\n".join(names).encode() + b"\n")
        if archive.returncode != 0 or gzip.wait() != 0:
            raise RuntimeError(f"cpio or gzip failed making {initrd}: {errors.decode(errors='replace')}")


# -- the ISO -----------------------------------------------------------------------------------------------

def make_iso(stage: Path, kernel: Path, initrd: Path, iso: Path, epoch: int) -> None:
    """An ISO 9660 image booting isolinux under BIOS (also as a hybrid MBR disk) and a standalone GRUB
    under UEFI (El Torito EFI image), both from /boot/vmlinuz and /boot/initrd.gz."""
    for folder in ("boot", "isolinux"):
        (stage / folder).mkdir(parents=True)
    shutil.copy(kernel, stage / "boot/vmlinuz")
    shutil.copy(initrd, stage / "boot/initrd.gz")
    shutil.copy(ISOLINUX / "isolinux.bin", stage / "isolinux/isolinux.bin")
    shutil.copy(SYSLINUX_BIOS / "ldlinux.c32", stage / "isolinux/ldlinux.c32")   # isolinux.bin's second stage
    (stage / "isolinux/isolinux.cfg").write_text(ISOLINUX_CFG)
    make_efi_image(stage.parent / "efi", stage / "boot/efi.img", epoch)
    set_mtimes(stage, epoch)
    run(["xorriso", "-as", "mkisofs", "-quiet", "-o", iso, "-volid", "RECIPE_INSTALLER", "-rational-rock",
         "-joliet", "-isohybrid-mbr", ISOLINUX / "isohdpfx.bin",
         "-eltorito-boot", "isolinux/isolinux.bin", "-eltorito-catalog", "isolinux/boot.cat",
         "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
         "-eltorito-alt-boot", "-e", "boot/efi.img", "-no-emul-boot", "-isohybrid-gpt-basdat", stage],
        env={"SOURCE_DATE_EPOCH": str(epoch)})


def make_efi_image(work: Path, image: Path, epoch: int) -> None:
    """A FAT image holding EFI/BOOT/BOOTX64.EFI: a standalone GRUB with GRUB_CFG in its memdisk.

    The one part of the ISO that differs between two builds: grub-mkstandalone dates its memdisk's files
    with the time of the build (the initrd and the rest of the ISO are the same bytes)."""
    work.mkdir(parents=True)
    (work / "grub.cfg").write_text(GRUB_CFG)
    efi = work / "BOOTX64.EFI"
    run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", efi, "--locales=", "--fonts=", "--themes=",
         f"--install-modules={GRUB_MODULES}", "--modules=part_msdos part_gpt iso9660 search_fs_file",
         f"boot/grub/grub.cfg={work / 'grub.cfg'}"])
    os.utime(efi, (epoch, epoch))
    # room for the file, FAT's tables and directories; mkfs.fat takes its size in KiB
    size_kib = math.ceil(efi.stat().st_size / 1024) + 512
    # mkfs.fat and mtools date what they make (the volume, the directories) SOURCE_DATE_EPOCH, not now
    same_dates = {"SOURCE_DATE_EPOCH": str(epoch)}
    run(["mkfs.fat", "-C", "--invariant", "-n", "EFIBOOT", image, str(size_kib)], env=same_dates)
    run(["mmd", "-i", image, "::/EFI", "::/EFI/BOOT"], env=same_dates)
    run(["mcopy", "-m", "-i", image, efi, "::/EFI/BOOT/BOOTX64.EFI"], env=same_dates)

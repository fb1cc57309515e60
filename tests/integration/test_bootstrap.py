"""The bootstrap base, for real: built by debootstrap (once, cached), then booted under BIOS and under UEFI.

Each boot runs on a throwaway qcow2 overlay of the cached image (never the
image itself), grown to 6G, with a NoCloud seed whose runcmd writes one line
of facts to the serial console: that proves GRUB booted it (BIOS: core.img
from the MBR gap; UEFI: EFI/BOOT/BOOTX64.EFI), cloud-init found its seed,
growpart grew the last partition of the small base to the disk, eth0 got a
DHCP address, the ESP is mounted, update-grub works in the guest (a new
kernel gets a grub.cfg that still boots) and the machine got its own identity.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from engine.local_cache import default_cache_dir
from modules.platforms.qemu.base import BootstrapBase, resolve_base
from modules.platforms.qemu.bootstrap import ESP_START, MIN_DISK_SIZE, ROOT_START, SIZE_STEP, image_path
from modules.platforms.qemu.grub import GRUB_BIOS, GRUB_EFI
from modules.platforms.qemu.image_tree import INITRAMFS_MODULES

BOOT_TIMEOUT = 420     # two guests booting at once, on a loaded 2-core machine
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS.fd")

USER_DATA = """\
#cloud-config
runcmd:
  - >-
    echo "RECIPE-CHECK root_bytes=$(findmnt -bno SIZE /)
    eth0=$(ip -4 -o addr show dev eth0 | awk '{print $4}')
    esp=$(findmnt -no FSTYPE /boot/efi)
    machine_id=$(cat /etc/machine-id)
    host_keys=$(ls /etc/ssh/ssh_host_*_key | wc -l)
    hostname=$(hostname)
    update_grub=$(update-grub >/dev/null 2>&1 && grep -c "linux.*/boot/vmlinuz-$(uname -r) root=UUID=$(findmnt -no UUID /) .*console=ttyS0,115200 net.ifnames=0" /boot/grub/grub.cfg || echo failed)
    END" > /dev/ttyS0
"""

pytestmark = [
    pytest.mark.timeout(1800),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 is not installed"),
]


def qemu_img(*args) -> str:
    return subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True, text=True).stdout


def make_seed(directory: Path, hostname: str) -> Path:
    """A NoCloud seed as a FAT image labelled CIDATA (mkfs.fat + mtools, no mount)."""
    (directory / "user-data").write_text(USER_DATA)
    (directory / "meta-data").write_text(f"instance-id: {hostname}\nlocal-hostname: {hostname}\n")
    seed = directory / "seed.img"
    subprocess.run(["mkfs.fat", "-n", "CIDATA", "-C", seed, "2048"], check=True, capture_output=True)
    subprocess.run(["mcopy", "-i", seed, directory / "user-data", directory / "meta-data", "::/"], check=True,
                   capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return seed


def processes_using(path: Path) -> list[int]:
    """Pids whose command line mentions path (a qemu left running would)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def boot(base: Path, firmware: str, work: Path) -> tuple[str, float, float]:
    """Boot an overlay of base; (console text, seconds to `login:`, seconds to the check line)."""
    overlay = work / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay, "6G")
    console = work / "console.log"
    seed = make_seed(work, f"recipe-{firmware}")
    # one vCPU: both firmwares boot at once, one guest per core (a TCG boot gains little from a second vCPU)
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "1", "-nographic",
            "-serial", f"file:{console}", "-drive", f"file={overlay},if=virtio",
            "-drive", f"file={seed},if=virtio,format=raw,readonly=on", "-nic", "user,model=virtio-net-pci"]
    if firmware == "uefi":
        variables = work / "OVMF_VARS.fd"
        shutil.copyfile(OVMF_VARS, variables)
        argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,file={variables}"]
    started = time.monotonic()
    login_at = check_at = None
    text = ""
    with open(work / "qemu.log", "wb") as qemu_log:
        qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT)
    try:
        while time.monotonic() - started < BOOT_TIMEOUT:
            text = console.read_text(errors="replace") if console.exists() else ""
            now = time.monotonic() - started
            if login_at is None and re.search(r"login: ", text):
                login_at = now
            if check_at is None and re.search(r"RECIPE-CHECK .* END", text):
                check_at = now
            if login_at is not None and check_at is not None:
                break
            if "Kernel panic" in text or qemu.poll() is not None:
                break
            time.sleep(1)
    finally:
        qemu.kill()
        qemu.wait(30)
    assert processes_using(overlay) == [], "a qemu process is still running"
    assert qemu.returncode is not None
    tail = text[-3000:] + "\n" + (work / "qemu.log").read_text(errors="replace")[-1000:]
    assert login_at is not None, f"no login prompt within {BOOT_TIMEOUT} s under {firmware}:\n{tail}"
    assert check_at is not None, f"cloud-init's runcmd did not report within {BOOT_TIMEOUT} s:\n{tail}"
    return text, login_at, check_at


def test_the_bootstrap_image_is_cached_whole(bootstrap_base):
    assert bootstrap_base.format == "qcow2"
    assert bootstrap_base.path == image_path(BootstrapBase(), default_cache_dir())
    info = json.loads(qemu_img("info", "--output=json", "--force-share", bootstrap_base.path))
    manifest = json.loads(bootstrap_base.path.with_suffix(".json").read_text())
    assert manifest["inputs"]["suite"] == "bookworm" and manifest["kernel"] and manifest["bootloader"] == "grub"
    # as small as the system allows (builds grow their overlay to disk_size), and no larger than the floor
    assert info["virtual-size"] == manifest["size"] and info["virtual-size"] % SIZE_STEP == 0
    assert manifest["system_bytes"] < info["virtual-size"] <= MIN_DISK_SIZE and "backing-filename" not in info
    qemu_img("check", "--force-share", bootstrap_base.path)
    assert not list(bootstrap_base.path.parent.glob(".bootstrap-*.tmp"))
    started = time.monotonic()
    again = asyncio.run(resolve_base(BootstrapBase(), default_cache_dir()))
    assert again == bootstrap_base and time.monotonic() - started < 5      # reused, not rebuilt


def test_a_cancelled_bootstrap_kills_debootstrap_and_leaves_nothing(tmp_path):
    """Cancelled while dpkg runs inside the new tree: every process goes, and the work directory."""
    if os.geteuid() != 0 or shutil.which("debootstrap", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        pytest.skip("needs root and debootstrap")
    base = BootstrapBase(packages=("jq",))       # not the cached image: this one is never finished
    lines: list[str] = []

    async def cancel_during_debootstrap():
        task = asyncio.ensure_future(resolve_base(base, tmp_path, log=lines.append))
        deadline = time.monotonic() + 300
        while not any(line.startswith(("I: Installing core packages", "I: Unpacking")) for line in lines):
            assert time.monotonic() < deadline and not task.done(), "debootstrap did not get far:\n" + "\n".join(lines)
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)                   # dpkg is running in the chroot, /proc may be mounted there
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_during_debootstrap())
    assert processes_using(tmp_path) == [], "a debootstrap process outlived the cancellation"
    assert list((tmp_path / "tmp").iterdir()) == [], "the work directory was left behind"
    assert [p.name for p in (tmp_path / "images").iterdir() if not p.name.endswith(".lock")] == []
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


def test_the_bootstrap_image_carries_grub_for_bios_and_uefi(bootstrap_base, tmp_path):
    """The layout grub-install would leave, read off the image: boot.img in the MBR pointing at core.img in
    the gap, core.img's block list, GRUB's EFI image on the ESP, grub.cfg and the modules on the root."""
    raw = tmp_path / "disk.raw"
    qemu_img("convert", "--force-share", "-O", "raw", bootstrap_base.path, raw)
    manifest = json.loads(bootstrap_base.path.with_suffix(".json").read_text())
    with raw.open("rb") as disk:
        mbr, diskboot = disk.read(512), disk.read(512)
    assert mbr[510:512] == b"\x55\xaa" and b"GRUB " in mbr[:440]                 # GRUB's boot.img ("GRUB Geom...")
    assert int.from_bytes(mbr[0x5c:0x64], "little") == 1                          # core.img at sector 1
    start, sectors, segment = (int.from_bytes(diskboot[500:508], "little"), int.from_bytes(diskboot[508:510], "little"),
                               int.from_bytes(diskboot[510:512], "little"))
    assert (start, segment) == (2, 0x820) and 20 < sectors < ESP_START // 512 - 2
    mtools = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    efi = subprocess.run(["mtype", "-i", f"{raw}@@{ESP_START}", "::/EFI/BOOT/BOOTX64.EFI"], capture_output=True,
                         check=True, env=mtools).stdout
    assert efi[:2] == b"MZ" and b"GRUB" in efi and manifest["root_uuid"].encode() in efi  # GRUB, finding the root

    def cat(path: str) -> bytes:
        return subprocess.run(["debugfs", "-R", f"cat {path}", f"{raw}?offset={ROOT_START}"], capture_output=True,
                              check=True).stdout

    grub_cfg = cat("/boot/grub/grub.cfg").decode()
    assert f"search --no-floppy --fs-uuid --set=root {manifest['root_uuid']}" in grub_cfg
    assert f"linux /boot/vmlinuz-{manifest['kernel']} {manifest['kernel_cmdline']}" in grub_cfg
    assert f"initrd /boot/initrd.img-{manifest['kernel']}" in grub_cfg
    for platform in (GRUB_BIOS, GRUB_EFI):
        assert cat(f"/boot/grub/{platform}/normal.mod")[:4] == b"\x7fELF"
    assert b"GRUB_CMDLINE_LINUX=" in cat("/etc/default/grub")
    assert cat("/usr/sbin/update-grub")[:2] == b"#!"

    # the initramfs holds the root disk's driver for every platform, and little else
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(cat(f"/boot/initrd.img-{manifest['kernel']}"))
    listed = subprocess.run(["lsinitramfs", str(initrd)], capture_output=True, text=True, check=True).stdout
    drivers = {Path(line).name.split(".ko")[0].replace("-", "_") for line in listed.splitlines() if ".ko" in line}
    wanted = {name for names in INITRAMFS_MODULES.values() for name in names}
    assert wanted <= drivers, sorted(wanted - drivers)
    assert initrd.stat().st_size < 16 << 20 and len(drivers) < 100, (initrd.stat().st_size, len(drivers))


FIRMWARES = ("bios", "uefi")


@pytest.fixture(scope="module")
def boots(bootstrap_base, tmp_path_factory) -> dict[str, tuple[str, float, float] | BaseException]:
    """Both firmwares' boots, run side by side: per firmware, boot()'s result or what it raised."""
    before = bootstrap_base.path.stat().st_mtime_ns
    results: dict[str, tuple[str, float, float] | BaseException] = {}

    def run(firmware: str) -> None:
        try:
            results[firmware] = boot(bootstrap_base.path, firmware, tmp_path_factory.mktemp(f"boot-{firmware}"))
        except BaseException as exc:           # re-raised by the firmware's own test
            results[firmware] = exc

    threads = [threading.Thread(target=run, args=(firmware,)) for firmware in FIRMWARES
               if firmware != "uefi" or (OVMF_CODE.is_file() and OVMF_VARS.is_file())]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bootstrap_base.path.stat().st_mtime_ns == before        # the cached base was not written
    return results


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_the_bootstrap_image_boots(boots, firmware, capsys):
    if firmware not in boots:
        pytest.skip("ovmf is not installed")
    if isinstance(boots[firmware], BaseException):
        raise boots[firmware]
    text, login_at, check_at = boots[firmware]
    with capsys.disabled():
        print(f"\n{firmware}: login prompt after {login_at:.0f} s, cloud-init runcmd after {check_at:.0f} s")

    check = dict(re.findall(r"(\w+)=(\S*)", re.search(r"RECIPE-CHECK (.*?) END", text, re.S).group(1)))
    assert int(check["root_bytes"]) > 5 << 30, "growpart did not grow the root partition of the small base to 6G"
    assert check["eth0"].startswith("10.0.2.15/"), "eth0 has no DHCP address"
    assert check["esp"] == "vfat", "the ESP is not mounted on /boot/efi"
    assert re.fullmatch(r"[0-9a-f]{32}", check["machine_id"]), "no machine-id was generated at boot"
    assert int(check["host_keys"]) >= 2, "cloud-init wrote no ssh host keys"
    assert check["hostname"] == f"recipe-{firmware}"
    assert check["update_grub"].isdigit() and int(check["update_grub"]) >= 1, \
        "update-grub in the guest did not make a grub.cfg that boots this kernel on this root"
    assert "Kernel panic" not in text and "SYSLINUX" not in text and "systemd-boot" not in text
    # GRUB's linux command puts the image it loaded first on the kernel's command line
    assert re.search(r"Command line: BOOT_IMAGE=/boot/vmlinuz-\S+ root=UUID=", text), "GRUB did not boot the kernel"

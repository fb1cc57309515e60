"""The pieces of a bootstrap image that need no debootstrap: names, layout, steps, cleanup (what goes into
the tree is in test_image_tree.py).

The whole build (debootstrap, both bootloaders, a real boot) is in tests/integration/test_bootstrap.py.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from engine.errors import BuildError
from modules.platforms.qemu import bootstrap
from modules.platforms.qemu.base_spec import BootstrapBase
from modules.platforms.qemu import work_dirs
from modules.platforms.qemu.bootstrap import MIB, ROOT_START, SIZE_STEP, Layout, disk_size, image_key, image_path
from modules.platforms.qemu.bootstrap_steps import Steps
from modules.platforms.qemu.debootstrap_output import DebootstrapOutput
from modules.platforms.qemu.distros import DISTROS
from modules.platforms.qemu.grub import Grub, bios_boot_code
from modules.platforms.qemu.image_tree import Identity
from engine.local_cache import file_lock

DEBIAN = DISTROS["debian"]


# ---------------------------------------------------------------- names

def test_the_image_key_covers_every_input():
    base = BootstrapBase()
    keys = {image_key(base)}
    for changed in (BootstrapBase(suite="trixie"), BootstrapBase(mirror="http://m.example/debian"),
                    BootstrapBase(packages=("curl",)), BootstrapBase(size="5G")):
        keys.add(image_key(changed))
    assert len(keys) == 5
    assert image_key(BootstrapBase(packages=("b", "a", "b"))) == image_key(BootstrapBase(packages=("a", "b")))
    assert image_key(BootstrapBase(size="4096M")) == image_key(BootstrapBase(size="4G"))
    assert image_key(BootstrapBase(mirror="http://deb.debian.org/debian/")) == image_key(base)


def test_the_recipe_version_is_part_of_the_key(monkeypatch):
    before = image_key(BootstrapBase())
    monkeypatch.setattr(bootstrap, "BOOTSTRAP_VERSION", bootstrap.BOOTSTRAP_VERSION + 1)
    assert image_key(BootstrapBase()) != before


def test_image_path(tmp_path):
    path = image_path(BootstrapBase(), tmp_path)
    assert path.parent == tmp_path / "images"
    assert path.name == f"bootstrap-{image_key(BootstrapBase())[:16]}.qcow2"


# ---------------------------------------------------------------- the disk

def test_a_base_is_as_small_as_its_system_unless_sized():
    system = 900 * MIB
    size = disk_size(BootstrapBase(), system)
    assert size % SIZE_STEP == 0 and size - ROOT_START >= system * 1.2 + 512 * MIB
    assert size <= 2 << 30                         # a minimal Debian fits in the 2G floor of disk_size
    assert disk_size(BootstrapBase(), 2 * system) > size
    assert disk_size(BootstrapBase(size="5G"), system) == 5 << 30
    assert disk_size(BootstrapBase(size="4000M"), 10 * system) == 4000 * MIB


def grub_images() -> tuple[bytes, bytes]:
    """A boot.img and a core.img shaped like GRUB's: a boot sector whose drive check is a short jump, and
    a diskboot sector ending in a block list entry for segment 0x820, then the compressed kernel."""
    boot = bytearray(512)
    boot[0:2] = b"\xeb\x63"
    boot[0x64] = 0xFF
    boot[0x66:0x68] = b"\xeb\x05"
    boot[510:512] = b"\x55\xaa"
    core = bytearray(512 + 3 * 512 + 100)
    core[512 - 12:512] = (0).to_bytes(8, "little") + (4).to_bytes(2, "little") + (0x820).to_bytes(2, "little")
    return bytes(boot), bytes(core)


def test_grubs_boot_code_is_patched_as_grub_bios_setup_patches_it():
    boot_img, core_img = grub_images()
    boot, core = bios_boot_code(boot_img, core_img, core_sector=1)
    assert len(boot) == 440                                          # the disk id and partition table stay
    assert int.from_bytes(boot[0x5c:0x64], "little") == 1            # boot.img loads diskboot from sector 1
    assert boot[0x64] == 0xFF and boot[0x66:0x68] == b"\x90\x90"     # the BIOS's drive, no floppy check
    assert len(core) % 512 == 0 and len(core) == 5 * 512
    start, sectors, segment = (int.from_bytes(core[500:508], "little"), int.from_bytes(core[508:510], "little"),
                               int.from_bytes(core[510:512], "little"))
    assert (start, sectors, segment) == (2, 4, 0x820)                # the rest of core.img, right after it
    with pytest.raises(BuildError):
        bios_boot_code(boot_img[:200], core_img)
    with pytest.raises(BuildError):
        bios_boot_code(boot_img, bytes(1024))                        # no diskboot.img block list


GRUB_LIB = Path("/usr/lib/grub/i386-pc")


@pytest.mark.skipif(not (GRUB_LIB / "boot.img").is_file() or not shutil.which("grub-mkimage"),
                    reason="grub-pc-bin is not installed")
def test_the_patched_boot_code_of_real_grub_images(tmp_path):
    subprocess.run(["grub-mkimage", "-O", "i386-pc", "-d", GRUB_LIB, "-p", "/boot/grub", "-o", tmp_path / "core.img",
                    "biosdisk", "part_msdos", "ext2", "search", "search_fs_uuid"], check=True)
    core_img = (tmp_path / "core.img").read_bytes()
    boot, core = bios_boot_code((GRUB_LIB / "boot.img").read_bytes(), core_img)
    assert boot[0x66:0x68] == b"\x90\x90" and boot[:0x5c] == (GRUB_LIB / "boot.img").read_bytes()[:0x5c]
    assert core[512:len(core_img)] == core_img[512:]
    assert int.from_bytes(core[508:510], "little") == -(-len(core_img) // 512) - 1


@pytest.mark.skipif(not all(shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin") for t in ("mkfs.fat", "mcopy", "sfdisk")),
                    reason="needs dosfstools, mtools and fdisk")
def test_the_disk_carries_grub_in_the_mbr_the_gap_and_the_esp(tmp_path):
    """The ESP and the disk as a bootstrap makes them (fake GRUB images, a fake root filesystem)."""
    boot_img, core_img = grub_images()
    grub = Grub(boot_img=tmp_path / "boot.img", core_img=tmp_path / "core.img", efi=tmp_path / "grub.efi")
    grub.boot_img.write_bytes(boot_img)
    grub.core_img.write_bytes(core_img)
    grub.efi.write_bytes(b"MZ fake GRUB EFI image")
    identity = Identity.of("k")
    layout = Layout(ROOT_START + 8 * MIB)
    root_img, esp_img, disk = tmp_path / "root.img", tmp_path / "esp.img", tmp_path / "disk.raw"
    root_img.write_bytes(b"ROOT" * 1024)
    steps = Steps(None, None)

    async def build():
        await bootstrap.make_esp(steps, tmp_path, esp_img, grub.efi, identity)
        await bootstrap.assemble_disk(steps, disk, layout, identity, esp_img, root_img, grub)

    asyncio.run(build())
    data = disk.read_bytes()
    boot, core = bios_boot_code(boot_img, core_img)
    assert data[:440] == boot and data[510:512] == b"\x55\xaa"                 # GRUB's boot.img in the MBR
    assert data[440:444] == int(identity.disk_id, 16).to_bytes(4, "little")      # the disk id kept
    assert data[512:512 + len(core)] == core                                     # core.img in the gap
    assert data[ROOT_START:ROOT_START + 4096] == root_img.read_bytes()
    table = json.loads(subprocess.run(["sfdisk", "--json", disk], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]["partitions"]
    assert [p["type"] for p in table] == ["ef", "83"] and table[0]["start"] * 512 > 512 + len(core)
    listing = subprocess.run(["mdir", "-b", "-i", f"{disk}@@{bootstrap.ESP_START}", "-/", "::/"], capture_output=True,
                             text=True, check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout.split()
    assert listing == ["::/EFI/", "::/EFI/BOOT/", "::/EFI/BOOT/BOOTX64.EFI"]      # only GRUB, at the fallback path
    efi = subprocess.run(["mtype", "-i", f"{disk}@@{bootstrap.ESP_START}", "::/EFI/BOOT/BOOTX64.EFI"],
                         capture_output=True, check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout
    assert efi == b"MZ fake GRUB EFI image"


# a bootstrap's debootstrap output, as it came (trimmed: fewer packages, fewer byte counts)
DEBOOTSTRAP_LINES = """\
I: RETRIEVING
IA: InRelease
IA:
IF: Retrieving %s %s
P: 0 100 DOWNREL
PF: Downloading Release file
P: 100 100 DOWNREL
PF: Downloading Release file
P: 0 50060337 DOWNPKGS
PF: Downloading Packages files
P: 25030168 50060337
P: 50060337 50060337 DOWNPKGS
P: 0 1 SIZEDEBS
PF: Finding package sizes
P: 4 4 SIZEDEBS
PF: Finding package sizes
P: 0 1000 DOWNDEBS
PF: Downloading packages
I: RETRIEVING
IA: adduser
IA: 3.134
IF: Retrieving %s %s
P: 100 1000
I: VALIDATING
IA: adduser
IA: 3.134
IF: Validating %s %s
P: 250 1000 DOWNDEBS
I: RETRIEVING
IA: apt
IA: 2.6.1
IF: Retrieving %s %s
P: 310 1000
I: RETRIEVING
IA: apt-utils
IA: 2.6.1
IF: Retrieving %s %s
P: 290 1000 DOWNDEBS
P: 320 1000
I: RETRIEVING
IA: base-files
IA: 2.6.1
IF: Retrieving %s %s
P: 600 1000 DOWNDEBS
P: 800 1000 DOWNDEBS
P: 1000 1000 DOWNDEBS
P: 1 2 EXTRACTPKGS
PF: Extracting packages
I: EXTRACTING
IA: adduser
IF: Extracting %s...
P: 1 7 INSTCORE
PF: Installing core packages
P: 1 2 UNPACKREQ
PF: Unpacking required packages
dpkg: warning: parsing file '/var/lib/dpkg/status' near line 5 package 'dpkg':
P: 1 88 CONFREQ
PF: Configuring required packages
I: CONFIGURING
IA: libxxhash0:amd64
IF: Configuring %s...
P: 44 88 CONFREQ
P: 88 88 CONFREQ
P: 5 126 UNPACKBASE
P: 126 126 CONFBASE
I: BASESUCCESS
IF: Base system installed successfully.
"""


def test_debootstraps_phases_move_the_progress_and_say_what_they_do():
    reported: list[tuple[str, int, int]] = []
    lines: list[str] = []
    steps = Steps(lines.append, lambda what, done, total: reported.append((what, done, total)),
                  stages=("debootstrap", "filesystems"))
    steps.stage("debootstrap", "debootstrap debian bookworm")
    read = DebootstrapOutput(steps)
    for line in DEBOOTSTRAP_LINES.splitlines():
        shown = read(line)
        if shown:
            lines.append(shown)
    # messages as debootstrap prints them without --debian-installer; no raw P:/IA: lines
    assert "I: Retrieving InRelease " in lines and "I: Retrieving adduser 3.134" in lines
    assert "I: Configuring libxxhash0:amd64..." in lines and "I: Base system installed successfully." in lines
    assert "dpkg: warning: parsing file '/var/lib/dpkg/status' near line 5 package 'dpkg':" in lines
    assert not [line for line in lines if line.startswith(("P:", "PA:", "PF:", "IA:", "IF:", "I: RETRIEVING"))]
    # one line per phase and per tenth of one, with counts of the packages debootstrap resolved
    status = [line for line in lines if line.startswith("bootstrap: ")]
    assert status[:4] == ["bootstrap: debootstrap debian bookworm", "bootstrap: retrieving the package lists",
                          "bootstrap: resolving packages", "bootstrap: retrieving 0/4 packages"]
    # per tenth of the bytes, and not again when the download's estimate goes back and forth over a tenth
    assert [line for line in status if line.startswith("bootstrap: retrieving ") and "/" in line] == [
        "bootstrap: retrieving 0/4 packages", "bootstrap: retrieving 1/4 packages",
        "bootstrap: retrieving 2/4 packages", "bootstrap: retrieving 4/4 packages"]
    assert "bootstrap: configuring 44/88 required packages" in status
    assert status[-1] == "bootstrap: configuring 126/126 base packages"
    assert len(status) == len(set(status)) < 25
    # the progress moves with the work: steadily, never back, and debootstrap is its first share only
    done = [d for _, d, _ in reported]
    assert done == sorted(done) and len(set(done)) > 10
    assert all(what == "bootstrap" and total == 1000 for what, _, total in reported)
    share = steps.shares["debootstrap"] * 1000
    assert done[-1] == int(share) and done[0] == 0
    assert any(0.3 * share < d < 0.7 * share for d in done)            # half-way while packages come in


def test_debootstraps_phases_are_the_builds_status():
    """The phases go to the status callback too (PrepareBase makes them step.status events, which the live
    view shows on the build's line and plain mode prints, at most every 5 s)."""
    said: list[str] = []
    steps = Steps(None, None, stages=("debootstrap", "filesystems"), status=said.append)
    steps.stage("debootstrap", "debootstrap debian bookworm")
    read = DebootstrapOutput(steps)
    shown = [line for line in map(read, DEBOOTSTRAP_LINES.splitlines()) if line and line.startswith("bootstrap: ")]
    assert said[0] == "bootstrap: debootstrap debian bookworm"
    assert said[1:] == shown and "bootstrap: retrieving 2/4 packages" in said
    assert said[-1] == "bootstrap: configuring 126/126 base packages"


def test_debootstrap_errors_are_printed_whole():
    steps = Steps(None, None)
    steps.stage("debootstrap", "x")
    read = DebootstrapOutput(steps)
    out = [read(line) for line in ["E: COULDNTDL", "EA: base-files", "EF: Couldn't download package %s",
                                   "W: RETRYING", "WA: a", "WF: Retrying failed download of %s"]]
    assert [line for line in out if line] == ["E: Couldn't download package base-files",
                                              "W: Retrying failed download of a"]


def test_the_stages_share_the_progress():
    reported: list[int] = []
    steps = Steps(None, lambda what, done, total: reported.append(done), stages=("debootstrap", "convert"))
    steps.stage("debootstrap", "a")
    steps.within(0.5)
    steps.within(0.4)                   # never backwards
    steps.stage("convert", "b")
    steps.finish()
    assert reported[0] == 0 and reported[-1] == 1000 and reported == sorted(reported)
    assert reported[1] == int(500 * steps.shares["debootstrap"]) and len(reported) == 4


def test_the_partition_table_sfdisk_writes_on_a_file(tmp_path):
    layout = Layout(4 << 30)
    disk = tmp_path / "disk.raw"
    with open(disk, "wb") as stream:
        stream.truncate(layout.size)
    subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk],
                   input=layout.sfdisk_script("0x12345678"), text=True, check=True)
    table = json.loads(subprocess.run(["sfdisk", "--json", disk], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    assert table["label"] == "dos" and table["id"] == "0x12345678"
    esp, root = table["partitions"]
    assert (esp["start"], esp["size"], esp["type"], esp.get("bootable")) == (2048, 256 * 2048, "ef", True)
    assert root["start"] == esp["start"] + esp["size"] and root["type"] == "83"
    assert root["start"] + root["size"] == layout.size // 512       # the root is last and fills the disk


def test_apt_sources():
    assert DEBIAN.sources("http://deb.debian.org/debian", "bookworm") == (
        "deb http://deb.debian.org/debian bookworm main\n"
        "deb http://deb.debian.org/debian bookworm-updates main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n")
    assert DEBIAN.sources("http://deb.debian.org/debian", "sid") == "deb http://deb.debian.org/debian sid main\n"
    assert "security" not in DEBIAN.sources("http://mirror.example/debian", "bookworm")


def test_steps_pass_proxy_settings_on(monkeypatch):
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("SECRET_TOKEN", "not passed")
    lines = []
    asyncio.run(Steps(lines.append, None).run("env", ["sh", "-c", "echo $http_proxy; echo x$SECRET_TOKEN"]))
    assert lines == ["http://proxy.example:3128", "x"]


# ---------------------------------------------------------------- steps

def test_a_failing_step_is_named_and_quoted():
    lines = []
    steps = Steps(lines.append, None)
    script = "for i in $(seq 1 40); do echo line $i; done; echo oops >&2; exit 3"
    with pytest.raises(BuildError) as error:
        asyncio.run(steps.run("frobnicate", ["sh", "-c", script]))
    message = error.value.message
    assert message.startswith("bootstrap step 'frobnicate' failed (exit status 3)")
    assert "  | oops" in message and "  | line 40" in message and "line 1\n" not in message
    assert lines[0] == "line 1" and lines[-1] == "oops"


def test_a_missing_tool_names_its_package():
    with pytest.raises(BuildError) as error:
        asyncio.run(Steps(None, None).run("x", ["no-such-tool-here"]))
    assert "no-such-tool-here is not installed" in error.value.message


def test_step_input_and_environment():
    lines = []
    asyncio.run(Steps(lines.append, None).run("cat", ["sh", "-c", "cat; echo $LC_ALL $X"], input="hello\n",
                                                  env={"X": "y"}))
    assert lines == ["hello", "C y"]


def test_cancelling_a_step_kills_its_whole_process_group(tmp_path):
    pid_file = tmp_path / "child.pid"

    async def cancel():
        steps = Steps(None, None)
        task = asyncio.ensure_future(steps.run("slow", ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"]))
        while not (pid_file.exists() and pid_file.read_text().strip()):
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel())
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and work_dirs._pid_alive(child):
        time.sleep(0.05)
    assert not work_dirs._pid_alive(child)


# ---------------------------------------------------------------- cleanup and locking

def test_stale_work_is_swept_and_live_work_kept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / "tmp" / f"bootstrap-{dead.pid}-abc"
    live = tmp_path / "tmp" / f"bootstrap-{os.getpid()}-def"
    stale_image = tmp_path / "images" / f".bootstrap-0123.qcow2.{dead.pid}.tmp"
    for directory in (stale / "root/etc", live):
        directory.mkdir(parents=True)
    stale_image.parent.mkdir()
    stale_image.write_text("half")
    asyncio.run(work_dirs.sweep_stale(tmp_path))
    assert not stale.exists() and not stale_image.exists() and live.exists()


def test_remove_work_dir(tmp_path):
    work = tmp_path / "w"
    (work / "root/dev").mkdir(parents=True)
    (work / "root/etc").mkdir()
    (work / "root/etc/x").write_text("x")
    assert work_dirs.mounts_under(work) == []
    asyncio.run(work_dirs.remove_work_dir(work))
    assert not work.exists()


def test_a_second_build_waits_for_the_first_and_reuses_its_image(tmp_path, monkeypatch):
    base = BootstrapBase(packages=("jq",))
    final = image_path(base, tmp_path)
    final.parent.mkdir(parents=True)
    monkeypatch.setattr(bootstrap, "check_host", lambda *a: None)

    async def never(*args):
        raise AssertionError("the image was built twice")

    monkeypatch.setattr(bootstrap, "_build", never)
    logs = []

    async def race():
        async with file_lock(final.with_suffix(".lock"), "test"):
            waiting = asyncio.ensure_future(bootstrap.build_image(base, tmp_path, log=logs.append))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            final.write_bytes(b"image")      # the first build finishes
        return await waiting

    assert asyncio.run(race()) == final
    assert any("waiting for another build" in line for line in logs)


def test_the_host_check_explains_what_is_missing(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(BuildError) as error:
        bootstrap.check_host(BootstrapBase(), DEBIAN)
    assert "as root" in error.value.message and "url" in error.value.hint
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(bootstrap, "SCRIPTS", Path("/usr/share/debootstrap/scripts"))
    if not bootstrap.SCRIPTS.is_dir():
        pytest.skip("debootstrap is not installed")
    with pytest.raises(BuildError) as error:
        bootstrap.check_host(BootstrapBase(suite="bookwrom"), DEBIAN)
    assert error.value.hint == "did you mean 'bookworm'?"

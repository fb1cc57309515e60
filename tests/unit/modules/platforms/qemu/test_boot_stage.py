"""The boot stage read from a guest's serial console: a Debian 12 boot under SeaBIOS and GRUB, as QEMU's
chardev file keeps it (CRLF, colours, GRUB's cursor moves), fed whole, in pieces, and tailed from a file."""
from __future__ import annotations

import asyncio

import pytest

from modules.platforms.qemu.boot_stage import BootStage, BootStages, follow_console, stage_of

ESC = "\x1b"
OK = f"[{ESC}[0;32m  OK  {ESC}[0m]"
# (console line, the stage after it: None when the line marks none); in the order a real boot prints them
DEBIAN_12 = [
    (f"{ESC}c{ESC}[?7l{ESC}[2J{ESC}[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)",
     "firmware (SeaBIOS 1.16.2-debian-1.16.2-1)"),
    ("iPXE (http://ipxe.org) 00:02.0 CA00 PCI2.10 PnP PMM+3EFD0D40+3EF30D40 CA00", None),
    ("Booting from Hard Disk...", "bootloader (from Hard Disk)"),
    (f"{ESC}[0m{ESC}[30m{ESC}[40m{ESC}[2J{ESC}[01;01HWelcome to GRUB!", "GRUB"),
    (f"{ESC}[01;01H{ESC}[0m{ESC}[37m{ESC}[40m  Booting `Debian GNU/Linux'", "GRUB booting Debian GNU/Linux"),
    ("Loading Linux 6.1.0-27-amd64 ...", "GRUB loading Linux 6.1.0-27-amd64"),
    ("Loading initial ramdisk ...", None),
    ("[    0.000000] Linux version 6.1.0-27-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
     "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)",
     "kernel 6.1.0-27-amd64"),
    ("[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-amd64 root=UUID=0d1c console=ttyS0,115200", None),
    ("[    3.918277] Run /init as init process", "initramfs"),
    ("Loading, please wait...", "initramfs"),
    ("Begin: Loading essential drivers ... done.", None),
    ("Begin: Mounting root file system ... Begin: Running /scripts/local-top ... done.", "initramfs: mounting root"),
    ("[   11.482201] EXT4-fs (vda1): mounted filesystem with ordered data mode. Quota mode: none.", None),
    ("[   14.126750] systemd[1]: systemd 252.30-1~deb12u2 running in system mode (+PAM +AUDIT +SELINUX)",
     "systemd started"),
    (f"Welcome to {ESC}[1mDebian GNU/Linux 12 (bookworm){ESC}[0m!", "systemd started"),
    ("[   15.200000] systemd[1]: Reached target cryptsetup.target - Local Encrypted Volumes.",
     "systemd reached Local Encrypted Volumes"),
    (f"{OK} Reached target {ESC}[0;1;39mlocal-fs.target{ESC}[0m - Local File Systems.",
     "systemd reached Local File Systems"),
    ("[   20.532110] virtio_net virtio1 eth0: renamed from enp0s2", None),     # kernel lines go on
    (f"{OK} Started {ESC}[0;1;39msystemd-udevd.service{ESC}[0m - Rule-based Manager for Device Events.", None),
    (f"{OK} Reached target {ESC}[0;1;39mbasic.target{ESC}[0m - Basic System.", "systemd reached Basic System"),
    ("[   31.004511] cloud-init[301]: Cloud-init v. 22.4.2 running 'init-local' at Fri, 27 Nov 2026 14:20:03 "
     "+0000. Up 30.12 seconds.", "cloud-init init-local"),
    ("[   42.100000] cloud-init[402]: Cloud-init v. 22.4.2 running 'init' at Fri, 27 Nov 2026 14:20:14 +0000. "
     "Up 41.50 seconds.", "cloud-init init"),
    ("[   42.300000] cloud-init[402]: ci-info: +++++++++++++++++++Net device info++++++++++++++++++++", None),
    (f"{OK} Reached target {ESC}[0;1;39mnetwork-online.target{ESC}[0m - Network is Online.",
     "systemd reached Network is Online"),
    ("[   60.700000] cloud-init[512]: Cloud-init v. 22.4.2 running 'modules:config' at Fri, 27 Nov 2026 "
     "14:20:33 +0000. Up 60.20 seconds.", "cloud-init modules:config"),
    ("[   70.100000] cloud-init[530]: Cloud-init v. 22.4.2 running 'modules:final' at Fri, 27 Nov 2026 "
     "14:20:42 +0000. Up 69.80 seconds.", "cloud-init modules:final"),
    ("[   71.000000] cloud-init[530]: Cloud-init v. 22.4.2 finished at Fri, 27 Nov 2026 14:20:43 +0000. "
     "Datasource DataSourceNoCloud [seed=/dev/vdb][dsmode=net].  Up 70.90 seconds", "cloud-init finished"),
    ("", None),
    ("Debian GNU/Linux 12 vmtest ttyS0", None),
    ("", None),
    ("vmtest login: ", "login prompt"),
]

# verbatim from a console-build.log of the bootstrap base (systemd 252 cuts unit names to 80 columns)
RECORDED = [
    (f"{ESC}[H{ESC}[J{ESC}[1;1H{ESC}[H{ESC}[J{ESC}[1;1H  Booting `Debian bookworm'", "GRUB booting Debian bookworm"),
    ("[   39.838748] systemd[1]: Reached target cryptsetup.target - Local Encrypted Volumes.",
     "systemd reached Local Encrypted Volumes"),
    (f"[{ESC}[0;32m  OK  {ESC}[0m] Reached target {ESC}[0;1;39mcryptsetup.\u2026get{ESC}[0m - Local Encrypted Volumes.",
     "systemd reached Local Encrypted Volumes"),
    (f"[{ESC}[0;32m  OK  {ESC}[0m] Reached target {ESC}[0;1;39mveritysetup\u2026 - Local Verity Protected Volumes.",
     "systemd reached Local Verity Protected Volumes"),
    (f"[{ESC}[0;32m  OK  {ESC}[0m] Reached target {ESC}[0;1;39mintegrityse\u2026Local Integrity Protected Volumes.",
     None),                                                          # cut into the description: not shown
    (f"[{ESC}[0;32m  OK  {ESC}[0m] Reached target {ESC}[0;1;39mlocal-fs-pr\u2026reparation for Local File Systems.",
     None),
    (f"[{ESC}[0m{ESC}[0;31m*     {ESC}[0m] Job networking.service/start running (45s / 5min 42s)",
     "systemd waiting for networking.service"),
    (f"{ESC}[K[ {ESC}[0;31m*{ESC}[0;1;31m*{ESC}[0m{ESC}[0;31m*  {ESC}[0m] Job networking.service/start running "
     "(46s / 5min 42s)", "systemd waiting for networking.service"),
    ("         A start job is running for Raise network interfaces (12s / 5min 3s)",      # older systemd
     "systemd waiting for Raise network interfaces"),
    (f"{ESC}[K[{ESC}[0;32m  OK  {ESC}[0m] Reached target {ESC}[0;1;39mnetwork.target{ESC}[0m - Network.",
     "systemd reached Network"),
    # getty's prompt, then cloud-init's banner on the same line: the later one tells
    ("vmtest login: [  148.582880] cloud-init[497]: Cloud-init v. 22.4.2 running 'modules:config' at Fri, 27 Nov "
     "2026 14:23:01 +0000. Up 146.20 seconds.", "cloud-init modules:config"),
]


@pytest.mark.parametrize("line,expected", RECORDED, ids=[f"{n:02d}" for n in range(len(RECORDED))])
def test_recorded_lines_of_a_bookworm_console(line, expected):
    found = stage_of(line)
    assert (found.text if found else None) == expected


def console_bytes() -> bytes:
    return "\r\n".join(line for line, _ in DEBIAN_12).encode()      # no newline after the prompt, as a guest has it


@pytest.mark.parametrize("line,expected", DEBIAN_12, ids=[f"{n:02d}" for n in range(len(DEBIAN_12))])
def test_each_marker_line_gives_its_stage_and_the_others_none(line, expected):
    found = stage_of(line)
    assert (found.text if found else None) == expected


def test_the_stage_after_each_line_of_a_boot_follows_it_step_by_step():
    stages, seen = BootStages(), []
    for line, expected in DEBIAN_12:
        current = stages.feed((line + "\r\n").encode())
        seen.append(current.text if current else None)
        if expected:
            assert seen[-1] == expected
    assert seen[1] == seen[0]             # an unmarked line keeps the stage before it
    assert seen[19] == "systemd reached Local File Systems"     # a kernel line after systemd started does not
    assert seen.count("kernel 6.1.0-27-amd64") == 2


def test_the_phases_are_named_for_machines_too():
    stages = BootStages()
    assert stages.feed(console_bytes()) == BootStage("login", "login prompt")
    assert stage_of(DEBIAN_12[21][0]) == BootStage("cloud-init", "cloud-init init-local")
    assert stage_of(DEBIAN_12[16][0]).phase == "systemd"


@pytest.mark.parametrize("size", [1, 7, 64])
def test_chunks_that_split_lines_escapes_and_characters_read_the_same(size):
    data = console_bytes().replace(b"Basic System", "Basic System \u2014 \u00e9t\u00e9".encode())
    stages, seen = BootStages(), []
    for start in range(0, len(data), size):
        current = stages.feed(data[start:start + size])
        if current and (not seen or seen[-1] != current.text):
            seen.append(current.text)
    assert "systemd reached Basic System \u2014 \u00e9t\u00e9" in seen
    assert "cloud-init modules:config" in seen and seen[-1] == "login prompt"
    assert not any(ESC in text or "\ufffd" in text for text in seen)
    assert not any("[0;" in text or "39m" in text for text in seen)    # no escape was cut in two and kept


def test_the_prompt_counts_while_its_line_is_still_open_and_other_partial_lines_wait():
    stages = BootStages()
    stages.feed(b"[  OK  ] Reached target basic.target - Basic System.\r\n[   31.0] cloud-init[301]: Cloud-init v. 2")
    assert stages.current() == BootStage("systemd", "systemd reached Basic System")
    stages.feed(b"2.4.2 running 'init-local' at Fri, 27 Nov 2026.\r\n\r\nvmtest login: ")
    assert stages.current() == BootStage("login", "login prompt")


def test_a_guest_without_markers_shows_its_last_line_with_words():
    stages = BootStages()
    assert stages.feed(b"\x1b[2J\r\n....\r\n") is None
    stages.feed(b"[    1.0] Starting the Frobnicator appliance, please stand by " + b"x" * 80 + b"\r\n"
                + b"[    2.0] 0x0000ffff\r\n")
    current = stages.current()
    assert current and current.phase == "console"
    assert current.text.startswith("Starting the Frobnicator appliance") and current.text.endswith("…")
    assert len(current.text) <= 71


def test_follow_console_reports_each_change_once_as_the_file_grows(tmp_path):
    console = tmp_path / "console.log"          # not there yet: QEMU has not opened it
    reported: list[BootStage] = []

    async def scenario() -> None:
        follower = asyncio.ensure_future(follow_console(console, reported.append, every=0.01))
        await asyncio.sleep(0.05)
        with open(console, "ab") as out:
            for line, _ in DEBIAN_12[:8]:
                out.write((line + "\r\n").encode())
            out.flush()
            await asyncio.sleep(0.05)
            out.write(b"[    5.0] random: crng init done\r\n")       # no change: nothing reported
            out.flush()
            await asyncio.sleep(0.05)
            out.write(b"[  OK  ] Reached target basic.target - Basic System.\r\n")
            out.flush()
            await asyncio.sleep(0.05)
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower

    asyncio.run(scenario())
    assert [stage.text for stage in reported] == ["kernel 6.1.0-27-amd64", "systemd reached Basic System"]

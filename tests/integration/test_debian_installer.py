"""The real Debian installer (Debian's package debian-installer-12-netboot-amd64), driven by recipe's installer
code as far as it can go here.

This machine's Debian mirror lacks most installer components (apt-mirror-setup_*.udeb answers 404), so no
Debian install can finish here: d-i stops at "Download installer components". What can be shown is everything
up to there that is recipe's part: the installer PXE-booted through QEMU's TFTP, its boot menu answered by the
boot_command (typed over QMP), the preseed file requested from recipe's HTTP server, and the same with the
kernel booted directly. The preseed's early_command powers the machine off, which ends the installer.
The whole install, end to end, is test_installer.py's, with an installer made for the tests.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modules.platforms.qemu.base_spec import InstallerBase, Netboot
from modules.platforms.qemu.install_http import HTTP_PORT
from modules.platforms.qemu.installer import InstallVm, run_installer

pytestmark = pytest.mark.guest

TFTP = Path("/usr/lib/debian-installer/images/12/amd64/text")
KERNEL_DIR = TFTP / "debian-installer" / "amd64"
PRESEED = (("/preseed.cfg", "d-i preseed/early_command string poweroff -f\n"),)
URL = f"url=http://10.0.2.2:{HTTP_PORT}/preseed.cfg"


@pytest.fixture(autouse=True)
def netboot_package():
    if not (TFTP / "pxelinux.0").is_file():
        pytest.fail(f"{TFTP}/pxelinux.0 is missing: `make test` installs debian-installer-12-netboot-amd64",
                    pytrace=False)


def install(base: InstallerBase, folder: Path) -> tuple[list[tuple[str, int]], str]:
    requests = asyncio.run(run_installer(base, folder / "cache", folder / "disk.qcow2", folder / "work",
                                         InstallVm(), lambda line: None))
    return requests, (folder / "work" / "console-install.log").read_text(errors="replace")


def test_pxe_booted_its_menu_answered_and_the_preseed_fetched(tmp_path):
    # The menu is drawn on the (absent) screen only; its keys still work. vga=normal: the menu's vga=788 asks
    # for a VESA mode a machine without a display has not, which costs the kernel 30 s.
    base = InstallerBase(netboot=Netboot(TFTP, "pxelinux.0"), boot_wait=10.0, http_content=PRESEED,
                         boot_command=(f"<esc><wait>auto {URL} vga=normal console=ttyS0,115200<enter>",),
                         install_timeout=900.0, size="1G")
    requests, console = install(base, tmp_path)
    assert requests == [("/preseed.cfg", 200)], console[-2000:]
    assert "Power down" in console, console[-2000:]          # the preseed's early_command ran


def test_the_installer_kernel_booted_directly_fetches_the_preseed(tmp_path):
    base = InstallerBase(kernel=KERNEL_DIR / "linux", initrd=KERNEL_DIR / "initrd.gz", http_content=PRESEED,
                         append=f"auto=true priority=critical {URL} console=ttyS0,115200",
                         install_timeout=900.0, size="1G")
    requests, console = install(base, tmp_path)
    assert requests == [("/preseed.cfg", 200)], console[-2000:]
    assert "Power down" in console, console[-2000:]

"""Installer bases, end to end, with the test installer (tests/integration/installer): `recipe run` downloads
its ISO over HTTP and checks it, boots it under BIOS, types the boot_command at isolinux's prompt, serves the
answer file and the system to copy, waits for the installer to end (it reboots, as Debian's does at the end of
a preseeded install: QEMU's -no-reboot makes that an exit), logs in to the installed system with
the password the answer file set (trusting its host key on first use), runs tasks, and exports. A second build
starts from the cached installed base. Then the same ISO boots under UEFI, where the boot_command is typed at
GRUB's menu.

The install happens once per test run: the recipe runs get a cache folder of their own (RECIPE_CACHE_DIR), so
a run never finds an installed base an earlier run left.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import http.server
import json
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from modules.platforms.qemu.base_spec import InstallerBase, PathBase
from modules.platforms.qemu.installer import InstallVm, run_installer

from .conftest import RECIPE
from .installer.build_iso import TestInstaller, build_test_installer
from .test_cache import read_image
from .test_qemu_platform import events_of

PASSWORD = "correct-horse-battery"

RECIPE_TEXT = """\
name: installed
vars:
  iso_url: "{iso_url}"
  iso_sum: "sha256:{iso_sum}"
  password: "{password}"
secrets: [password]
sources:
  local:
    platform: qemu
    memory: 1024
    base:
      installer:
        iso: {{url: "{{{{ iso_url }}}}", checksum: "{{{{ iso_sum }}}}"}}
        boot_wait: 15s
        boot_command:
          - "install url=http://{{{{ http_ip }}}}:{{{{ http_port }}}}/answers.cfg<enter>"
        http:
          directory: "{http_dir}"
          content:
            /answers.cfg: |
              INSTALL_HOSTNAME=fresh
              INSTALL_USER=builder
              INSTALL_PASSWORD='{{{{ password }}}}'
              INSTALL_ROOTFS=rootfs.tar.gz
              INSTALL_AFTER=reboot
        install_timeout: 40m
        size: 4G
    ssh: {{user: builder, password: "{{{{ password }}}}"}}
tasks:
  - name: write a file
    become: true
    copy: {{dest: /etc/installed-by, content: "recipe {marker}\\n"}}
  - name: the installer's user logs in with recipe's key
    command: grep -c recipe-build- /home/builder/.ssh/authorized_keys
exports:
  - qcow2: {{}}
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:     # noqa: A002 - http.server's signature
        pass


class Served:
    """A folder on 127.0.0.1, as the ISO's download site."""

    def __init__(self, folder: Path):
        handler = functools.partial(_Quiet, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def test_installer(bootstrap_base) -> TestInstaller:
    return build_test_installer(Path.home() / ".cache" / "recipe", bootstrap_base.path)


@pytest.fixture(scope="module")
def installed(test_installer, tmp_path_factory):
    """The first build: installs, then builds on the installed base."""
    folder = tmp_path_factory.mktemp("installed")
    site = folder / "site"
    site.mkdir()
    (site / "installer.iso").symlink_to(test_installer.iso)
    http_dir = folder / "http"
    http_dir.mkdir()
    (http_dir / "rootfs.tar.gz").symlink_to(test_installer.rootfs)
    served = Served(site)
    iso_sum = hashlib.sha256(test_installer.iso.read_bytes()).hexdigest()
    env = {**os.environ, "RECIPE_CACHE_DIR": str(folder / "cache"), "TMPDIR": str(_tmp(folder))}

    def run(name: str, marker: str) -> tuple[subprocess.CompletedProcess, list[dict], Path]:
        recipe = folder / f"{name}.yml"
        recipe.write_text(RECIPE_TEXT.format(iso_url=f"{served.url}/installer.iso", iso_sum=iso_sum,
                                             password=PASSWORD, http_dir=http_dir, marker=marker))
        events = folder / f"{name}.jsonl"
        result = subprocess.run([RECIPE, "run", str(recipe), "--output-dir", str(folder / name),
                                 "--json", str(events)], capture_output=True, text=True, env=env, timeout=3600)
        return result, events_of(events), folder / name

    try:
        yield run, folder, run("first", "first")
    finally:
        served.stop()


def _tmp(folder: Path) -> Path:
    (folder / "tmp").mkdir(exist_ok=True)
    return folder / "tmp"


def _logs(events: list[dict]) -> list[str]:
    return [e.get("line", "") for e in events if e.get("event") == "log"]


def test_an_iso_installs_and_the_installed_system_is_built_on(installed):
    run, folder, (result, events, out) = installed
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    logs = _logs(events)
    assert any("downloading http://127.0.0.1" in line for line in logs), logs
    assert any(re.fullmatch(r"installer: typing 'install url=http://10\.0\.2\.2:\d+/answers\.cfg<enter>'", line)
               for line in logs), logs
    requests = [line for line in logs if "installer: http: GET" in line]
    assert requests[0].startswith("installer: http: GET /answers.cfg 200"), requests
    assert any("GET /rootfs.tar.gz 200" in line for line in requests), requests
    trusted = [line for line in logs if "trusted the host key" in line]
    assert trusted and "SHA256:" in trusted[0] and "first use" in trusted[0], logs
    cached = sorted((folder / "cache" / "images").glob("installed-*.qcow2"))
    assert len(cached) == 1 and cached[0].with_suffix(".login").stat().st_mode & 0o077 == 0
    record = json.loads(cached[0].with_suffix(".json").read_text())
    assert record["host_key"].startswith("ssh-") and trusted[0].endswith("every build verifies it"), record
    tasks = [e for e in events if e.get("event") == "task.end"]
    assert [t["status"] for t in tasks] == ["changed", "changed"], tasks
    image = out / "installed-local" / "installed-local.qcow2"
    if not image.exists():
        image = next(out.rglob("*.qcow2"))
    # the installer's console is kept beside the artifacts, as the build's own is
    assert "installer: done" in (out / "installed-local" / "console-install.log").read_text(errors="replace")
    files = read_image(image, ("/etc/installed-by", "/etc/hostname"))
    assert files["/etc/installed-by"] == "recipe first"
    assert files["/etc/hostname"] == "installed"       # the build named the machine (the installer: fresh)
    # the password is a secret: in no log, event or output
    everything = result.stdout + result.stderr + "".join(json.dumps(e) for e in events)
    everything += "".join(p.read_text(errors="replace") for p in out.rglob("*.log"))
    assert PASSWORD not in everything


def test_a_second_build_starts_from_the_installed_base(installed):
    run, folder, (first, _, _) = installed
    assert first.returncode == 0
    result, events, out = run("second", "second")
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    logs = _logs(events)
    assert not [line for line in logs if "installer:" in line], logs       # no install, no first login
    assert len(list((folder / "cache" / "images").glob("installed-*.qcow2"))) == 1
    image = next(out.rglob("*.qcow2"))
    assert read_image(image, ("/etc/installed-by",))["/etc/installed-by"] == "recipe second"


def test_the_iso_boots_under_uefi_and_grub_takes_the_boot_command(test_installer, tmp_path):
    """The install itself is tested under BIOS above; here the answer file only says it was fetched and
    powers the machine off, which ends the installer."""
    base = InstallerBase(
        iso=PathBase(test_installer.iso), boot_wait=20.0, install_timeout=900.0, size="1G",
        boot_command=("c<wait>linux /boot/vmlinuz console=ttyS0,115200 mode=install "
                      "url=http://10.0.2.2:\ue000http_port\ue000/answers.cfg<enter>"
                      "initrd /boot/initrd.gz<enter>boot<enter>",),
        http_content=(("/answers.cfg", "echo 'installer: uefi answers read'; poweroff -f\n"),))
    lines: list[str] = []
    requests = asyncio.run(run_installer(base, tmp_path / "cache", tmp_path / "disk.qcow2", tmp_path / "work",
                                         InstallVm(firmware="uefi"), lines.append))
    assert requests == [("/answers.cfg", 200)], lines
    console = (tmp_path / "work" / "console-install.log").read_text(errors="replace")
    assert "installer: uefi answers read" in console, console[-2000:]

"""The pieces of a bootstrap image that need no debootstrap: names, ids, layout, configuration, steps, cleanup.

The whole build (debootstrap, both bootloaders, a real boot) is in tests/integration/test_bootstrap.py.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from engine.errors import BuildError
from modules.platforms.qemu import bootstrap
from modules.platforms.qemu.base import BootstrapBase
from modules.platforms.qemu.bootstrap import (DISTROS, ESP_HOOK, Identity, Layout, Steps, image_key, image_path,
                                              kernel_cmdline, loader_entry, syslinux_cfg)
from modules.platforms.qemu.download import file_lock

DEBIAN = DISTROS["debian"]


# ---------------------------------------------------------------- names and ids

def test_the_image_key_covers_every_input():
    base = BootstrapBase()
    keys = {image_key(base)}
    for changed in (BootstrapBase(suite="trixie"), BootstrapBase(mirror="http://m.example/debian"),
                    BootstrapBase(packages=("curl",)), BootstrapBase(size="5G")):
        keys.add(image_key(changed))
    assert len(keys) == 5
    assert image_key(BootstrapBase(packages=("b", "a", "b"))) == image_key(BootstrapBase(packages=("a", "b")))
    assert image_key(BootstrapBase(size="4096M")) == image_key(base)
    assert image_key(BootstrapBase(mirror="http://deb.debian.org/debian/")) == image_key(base)


def test_the_recipe_version_is_part_of_the_key(monkeypatch):
    before = image_key(BootstrapBase())
    monkeypatch.setattr(bootstrap, "BOOTSTRAP_VERSION", bootstrap.BOOTSTRAP_VERSION + 1)
    assert image_key(BootstrapBase()) != before


def test_image_path(tmp_path):
    path = image_path(BootstrapBase(), tmp_path)
    assert path.parent == tmp_path / "images"
    assert path.name == f"bootstrap-{image_key(BootstrapBase())[:16]}.qcow2"


def test_identity_is_derived_from_the_key():
    identity = Identity.of("k1")
    assert identity == Identity.of("k1") and identity != Identity.of("k2")
    assert uuid.UUID(identity.root_uuid).version == 4
    assert len(identity.esp_id) == 8 and identity.esp_uuid == identity.esp_id[:4] + "-" + identity.esp_id[4:]
    assert identity.disk_id.startswith("0x") and len(identity.disk_id) == 10


# ---------------------------------------------------------------- the disk

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


def test_both_bootloaders_boot_the_same_kernel_line():
    identity = Identity.of("k")
    line = kernel_cmdline(identity)
    assert line == f"root=UUID={identity.root_uuid} rw console=ttyS0,115200 net.ifnames=0"
    assert f"APPEND {line}\n" in syslinux_cfg(identity)
    assert "LINUX /vmlinuz" in syslinux_cfg(identity) and "INITRD /initrd.img" in syslinux_cfg(identity)
    entry = loader_entry(identity, "Debian bookworm")
    assert f"options {line}\n" in entry and "linux /vmlinuz\n" in entry and "initrd /initrd.img\n" in entry


def test_apt_sources():
    assert DEBIAN.sources("http://deb.debian.org/debian", "bookworm") == (
        "deb http://deb.debian.org/debian bookworm main\n"
        "deb http://deb.debian.org/debian bookworm-updates main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n")
    assert DEBIAN.sources("http://deb.debian.org/debian", "sid") == "deb http://deb.debian.org/debian sid main\n"
    assert "security" not in DEBIAN.sources("http://mirror.example/debian", "bookworm")


def test_the_esp_hook_is_valid_sh():
    subprocess.run(["sh", "-n"], input=ESP_HOOK, text=True, check=True)


# ---------------------------------------------------------------- the tree

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
    bootstrap.preseed_tree(root, identity)
    bootstrap.configure_tree(root, base, identity, DEBIAN)
    bootstrap.clean_tree(root)
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
    assert os.access(root / "etc/kernel/postinst.d/zz-recipe-esp", os.X_OK)
    assert os.access(root / "etc/initramfs/post-update.d/zz-recipe-esp", os.X_OK)
    assert "blacklist floppy" in (root / "etc/modprobe.d/recipe-no-floppy.conf").read_text()
    assert not (root / "etc/resolv.conf").exists()                 # the build host's DNS stays out
    assert list((root / "var/cache/apt/archives").iterdir()) == []
    assert not (root / "var/cache/apt/pkgcache.bin").exists()
    assert sorted(p.name for p in (root / "var/lib/apt/lists").iterdir()) == ["lock", "partial"]
    assert not (root / "var/log/dpkg.log").exists() and list((root / "tmp").iterdir()) == []
    vmlinuz, initrd, version = bootstrap.kernel_files(root)
    assert version == "6.1.0-10-amd64" and vmlinuz.read_text() == "k10" and initrd.read_text() == "i10"


def test_writes_never_leave_the_tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "etc").symlink_to(outside)          # an absolute symlink would point at the build host
    with pytest.raises(BuildError, match="outside the image tree"):
        bootstrap.write(root, "etc/hostname", "x\n")
    assert list(outside.iterdir()) == []
    (root / "usr/lib").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")       # a relative one inside the tree is fine
    bootstrap.write(root, "lib/x.conf", "y\n")
    assert (root / "usr/lib/x.conf").read_text() == "y\n"


def test_removals_never_leave_the_tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "ssh_host_rsa_key").write_text("the build host's key")
    (root / "etc/ssh").symlink_to(outside)
    with pytest.raises(BuildError, match="outside the image tree"):
        bootstrap.remove(root, "etc/ssh/ssh_host_*")
    assert (outside / "ssh_host_rsa_key").exists()


def test_steps_pass_proxy_settings_on(monkeypatch):
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("SECRET_TOKEN", "not passed")
    lines = []
    asyncio.run(Steps(lines.append, None, 1).run("env", ["sh", "-c", "echo $http_proxy; echo x$SECRET_TOKEN"]))
    assert lines == ["http://proxy.example:3128", "x"]


def test_a_tree_without_a_kernel_is_an_error(tmp_path):
    (tmp_path / "boot").mkdir()
    with pytest.raises(BuildError, match="no kernel"):
        bootstrap.kernel_files(tmp_path)


# ---------------------------------------------------------------- steps

def test_a_failing_step_is_named_and_quoted():
    lines = []
    steps = Steps(lines.append, None, total=1)
    script = "for i in $(seq 1 40); do echo line $i; done; echo oops >&2; exit 3"
    with pytest.raises(BuildError) as error:
        asyncio.run(steps.run("frobnicate", ["sh", "-c", script]))
    message = error.value.message
    assert message.startswith("bootstrap step 'frobnicate' failed (exit status 3)")
    assert "  | oops" in message and "  | line 40" in message and "line 1\n" not in message
    assert lines[0] == "line 1" and lines[-1] == "oops"


def test_a_missing_tool_names_its_package():
    with pytest.raises(BuildError) as error:
        asyncio.run(Steps(None, None, 1).run("x", ["no-such-tool-here"]))
    assert "no-such-tool-here is not installed" in error.value.message


def test_step_input_and_environment():
    lines = []
    asyncio.run(Steps(lines.append, None, 1).run("cat", ["sh", "-c", "cat; echo $LC_ALL $X"], input="hello\n",
                                                  env={"X": "y"}))
    assert lines == ["hello", "C y"]


def test_cancelling_a_step_kills_its_whole_process_group(tmp_path):
    pid_file = tmp_path / "child.pid"

    async def cancel():
        steps = Steps(None, None, 1)
        task = asyncio.ensure_future(steps.run("slow", ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"]))
        while not (pid_file.exists() and pid_file.read_text().strip()):
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel())
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and bootstrap._pid_alive(child):
        time.sleep(0.05)
    assert not bootstrap._pid_alive(child)


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
    asyncio.run(bootstrap.sweep_stale(tmp_path))
    assert not stale.exists() and not stale_image.exists() and live.exists()


def test_remove_work_dir(tmp_path):
    work = tmp_path / "w"
    (work / "root/dev").mkdir(parents=True)
    (work / "root/etc").mkdir()
    (work / "root/etc/x").write_text("x")
    assert bootstrap.mounts_under(work) == []
    asyncio.run(bootstrap.remove_work_dir(work))
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

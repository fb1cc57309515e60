"""The pieces of a bootstrap image that need no debootstrap: names, layout, steps, cleanup (what goes into
the tree is in test_image_tree.py).

The whole build (debootstrap, both bootloaders, a real boot) is in tests/integration/test_bootstrap.py.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from engine.errors import BuildError
from modules.platforms.qemu import bootstrap
from modules.platforms.qemu.base import BootstrapBase
from modules.platforms.qemu.bootstrap import DISTROS, Layout, Steps, image_key, image_path
from modules.platforms.qemu.download import file_lock

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
    asyncio.run(Steps(lines.append, None, 1).run("env", ["sh", "-c", "echo $http_proxy; echo x$SECRET_TOKEN"]))
    assert lines == ["http://proxy.example:3128", "x"]


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

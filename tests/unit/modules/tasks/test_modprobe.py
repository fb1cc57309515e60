"""modprobe against /proc/modules, modules.builtin and the two configuration directories in tmp_path (the module's
attributes moved there) and a stand-in modprobe on PATH: no kernel module of this machine is loaded or unloaded."""
import os

import pytest

from modules.tasks._conffile import TextFile
from modules.tasks.modprobe import Modprobe, Patterns, commented


@pytest.fixture
def kernel(target, tmp_path, monkeypatch):
    """A stand-in modprobe that 'loads' a module by adding it to tmp_path's /proc/modules."""
    proc, log, bin_dir = target / "modules", tmp_path / "calls", tmp_path / "bin"
    proc.write_text("ext4 1 0 - Live 0x0\n")
    release = os.uname().release
    (target / "lib" / release).mkdir(parents=True)
    (target / "lib" / release / "modules.builtin").write_text("kernel/fs/vfat.ko\n")
    bin_dir.mkdir()
    (bin_dir / "modprobe").write_text(
        f'#!/bin/sh\necho "modprobe $*" >> {log}\n'
        'case "$*" in *-n*) exit 0;; esac\n'
        f'case "$1" in -r) grep -v "^$2 " {proc} > {proc}.new; mv {proc}.new {proc};; '
        f'nosuch) echo "modprobe: FATAL: Module nosuch not found" >&2; exit 1;; '
        f'*) echo "$1 1 0 - Live 0x0" | tr - _ >> {proc};; esac\n')
    (bin_dir / "modprobe").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(Modprobe, "proc_modules", str(proc))
    monkeypatch.setattr(Modprobe, "lib_modules", str(target / "lib"))
    monkeypatch.setattr(Modprobe, "modules_load_dir", str(target / "modules-load.d"))
    monkeypatch.setattr(Modprobe, "modprobe_dir", str(target / "modprobe.d"))
    return log


def test_load_persist_second_run_and_unload(h, target, kernel):
    args = {"name": "dummy", "params": "numdummies=2", "persistent": "present"}
    checked = h.run("modprobe", args, check=True)
    assert checked.changed and kernel.read_text() == "modprobe -n dummy numdummies=2\n"
    assert not (target / "modules-load.d").exists()
    result = h.run("modprobe", args)
    assert result.changed and result.data == {"name": "dummy", "params": "numdummies=2", "state": "present"}
    assert (target / "modules-load.d/dummy.conf").read_text() == "dummy\n"
    assert (target / "modprobe.d/dummy.conf").read_text() == "options dummy numdummies=2\n"
    assert h.run("modprobe", args).status == "ok"
    changed = h.run("modprobe", {**args, "params": "numdummies=3"})
    assert changed.changed and (target / "modprobe.d/dummy.conf").read_text() == "options dummy numdummies=3\n"
    gone = h.run("modprobe", {"name": "dummy", "state": "absent", "persistent": "absent"})
    assert gone.changed and "dummy " not in (target / "modules").read_text()
    assert (target / "modules-load.d/dummy.conf").read_text() == "#dummy\n"
    assert (target / "modprobe.d/dummy.conf").read_text() == "#options dummy numdummies=3\n"
    assert h.run("modprobe", {"name": "dummy", "state": "absent", "persistent": "absent"}).status == "ok"


def test_loaded_and_builtin_modules_are_left_alone(h, kernel):
    assert h.run("modprobe", {"name": "ext4"}).status == "ok"
    assert h.run("modprobe", {"name": "vfat"}).status == "ok" and not kernel.exists()


def test_a_failed_modprobe_says_why(h, kernel):
    result = h.run("modprobe", {"name": "nosuch"})
    assert result.failed and result.msg.startswith("modprobe: FATAL: Module nosuch not found") and result.rc == 1


def test_options_elsewhere_are_commented_as_ansible_writes_them(h, target, kernel):
    (target / "modprobe.d").mkdir()
    (target / "modprobe.d/local.conf").write_text("options dummy numdummies=1\nblacklist pcspkr\n")
    assert h.run("modprobe", {"name": "dummy", "params": "numdummies=2", "persistent": "present"}).changed
    assert (target / "modprobe.d/local.conf").read_text() == "#options dummy numdummies=1\n\nblacklist pcspkr\n"


def test_patterns():
    pattern = Patterns.of("br_netfilter")
    assert pattern.module.match("br_netfilter # for k8s\n") and not pattern.module.match("br_netfilterx\n")
    assert pattern.option.match("options br_netfilter a=1\n").group(1) == "a=1"
    assert commented(TextFile("f", None, 0o22, "x\n"), pattern.module) is None

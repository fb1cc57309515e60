"""disk_size on a bootstrap base: what `recipe validate` can know (at the disk_size line), and the overlay
CreateDisk grows to it (the base is as small as its system; 4G without a disk_size, as before)."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from engine.cli.main import main
from modules.platforms.qemu.base_spec import BootstrapBase, PathBase
from modules.platforms.qemu.steps import CreateDisk, VmRun

RECIPE = """\
name: web
sources:
  vm:
    platform: qemu
    base: {base}
    disk_size: {disk_size}
    ssh: {{user: debian}}
tasks: []
"""


def validate(tmp_path, capsys, base: str, disk_size: str) -> tuple[int, str]:
    path = tmp_path / "web.yml"
    path.write_text(RECIPE.format(base=base, disk_size=disk_size))
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("base, disk_size, words", [
    ("{bootstrap: {}}", "1G", "too small for a Debian system"),
    ("{bootstrap: {distro: debian}}", "1536M", "too small for a Debian system"),
    ("{bootstrap: {size: 8G}}", "6G", "smaller than the bootstrap base's size 8G"),
])
def test_validate_rejects_a_disk_size_too_small_for_the_bootstrap_base_at_its_line(tmp_path, capsys, base,
                                                                                    disk_size, words):
    code, output = validate(tmp_path, capsys, base, disk_size)
    assert code == 2, output
    assert f"web.yml:6:16: sources.vm.disk_size: disk_size {disk_size} " in output and words in output
    assert "Traceback" not in output


@pytest.mark.parametrize("base, disk_size", [("{bootstrap: {}}", "3G"), ("{bootstrap: {}}", "2G"),
                                             ("{bootstrap: {size: 3G}}", "3G"), ("{bootstrap: {}}", "6G"),
                                             ("{path: /srv/small.qcow2}", "1G")])   # a path's size is known at run time
def test_validate_accepts_a_disk_size_that_fits(tmp_path, capsys, base, disk_size):
    code, output = validate(tmp_path, capsys, base, disk_size)
    assert code == 0, output


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-utils is not installed")
@pytest.mark.parametrize("base, disk_size, expected", [
    (BootstrapBase(), None, 4 << 30),            # no disk_size: the 4G bootstrap disks always had
    (BootstrapBase(), "3G", 3 << 30),
    (BootstrapBase(), "6G", 6 << 30),
    (BootstrapBase(size="5G"), None, None),      # a base already larger than 4G keeps its size
    (PathBase(path="x"), None, None),            # other bases keep theirs
])
def test_the_overlay_is_grown_to_disk_size(tmp_path, base, disk_size, expected):
    backing = tmp_path / "base.qcow2"
    base_size = (5 << 30) if base == BootstrapBase(size="5G") else 2 << 30
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", backing, str(base_size)], check=True)
    vm = VmRun(build=None, config=SimpleNamespace(base=base, disk_size=disk_size), base=backing,
               base_format="qcow2", base_size=base_size)
    state = SimpleNamespace(work_dir=tmp_path, disk=None, disk_format=None)
    asyncio.run(CreateDisk(vm).run(state, cleanup=None))
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", state.disk], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["virtual-size"] == (expected or base_size) and info["backing-filename"] == str(backing)

"""qcow2 and raw exports with the real qemu-img, and the atomic naming every export relies on."""
import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from engine.artifacts.export import ExportContext
from engine.console.events import EventBus
from engine.process import atomic_path
from modules.exports.qcow2 import Qcow2, Qcow2Config
from modules.exports.raw import Raw, RawConfig


@pytest.fixture
def disk(tmp_path) -> Path:
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0xab 1M 2M", str(path)], check=True, capture_output=True)
    return path


def context(tmp_path, disk):
    return ExportContext(build_name="r-s", disk=disk, disk_format="qcow2", output_dir=tmp_path / "out",
                         events=EventBus().bind(build="r-s"))


def info(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_qcow2_is_standalone_and_keeps_the_data(tmp_path, disk):
    (artifact,) = asyncio.run(Qcow2().run(Qcow2Config(compress=True), context(tmp_path, disk)))
    assert artifact.path == tmp_path / "out" / "r-s.qcow2"
    assert info(artifact.path)["format"] == "qcow2" and info(artifact.path)["virtual-size"] == 64 * 2 ** 20
    same = subprocess.run(["qemu-img", "compare", str(disk), str(artifact.path)], capture_output=True)
    assert same.returncode == 0
    assert list((tmp_path / "out").iterdir()) == [artifact.path]


def test_raw_is_sparse(tmp_path, disk):
    (artifact,) = asyncio.run(Raw().run(RawConfig(), context(tmp_path, disk)))
    assert artifact.path.stat().st_size == 64 * 2 ** 20
    assert artifact.path.stat().st_blocks * 512 < 8 * 2 ** 20
    data = artifact.path.read_bytes()
    assert data[2 ** 20:3 * 2 ** 20] == b"\xab" * 2 * 2 ** 20


def test_atomic_path_leaves_no_final_name_on_failure(tmp_path):
    final = tmp_path / "image.qcow2"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(final) as temporary:
        temporary.write_bytes(b"whole")
    assert final.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [final]

"""A small real disk and an export context around it, for the export tests (real qemu-img)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.artifacts.export import ExportContext, MachineShape
from engine.console.events import EventBus

XSD = Path(__file__).parents[3] / "data" / "ovf-xsd" / "dsp8023_1.1.1.xsd"


@pytest.fixture
def disk(tmp_path) -> Path:
    """64 MiB qcow2 with 2 MiB of a pattern at 1 MiB and 1 MiB of random data at 40 MiB."""
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0xab 1M 2M", str(path)], check=True, capture_output=True)
    noise = tmp_path / "noise"
    noise.write_bytes(__import__("os").urandom(2 ** 20))
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -s {noise} 40M 1M", str(path)], check=True,
                   capture_output=True)
    return path


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def named(self, name: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == name]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_context(tmp_path, disk, recorder):
    def make(out: str = "out", **changes) -> ExportContext:
        bus = EventBus(sinks=[recorder])
        values = dict(build_name="web-local", disk=disk, disk_format="qcow2", output_dir=tmp_path / out / "web-local",
                      events=bus.bind(build="web-local"), work_dir=tmp_path / f"work-{out}", epoch=1_700_000_000,
                      machine=MachineShape(name="web-local", cpus=2, memory_mib=768, firmware="bios",
                                           os_id="debian", os_version="12", os_name="Debian GNU/Linux 12 (bookworm)"))
        values.update(changes)
        return ExportContext(**values)
    return make


def qemu_compare(a: Path, b: Path) -> bool:
    return subprocess.run(["qemu-img", "compare", str(a), str(b)], capture_output=True).returncode == 0

"""Each export against the bare `qemu-img convert` it is built on, in the same run.

A 2 GiB qcow2 disk with 1 GiB used (half random bytes, half a repeating
pattern, like binaries and text) is exported by each export module, in
process, as `recipe run` does after shutdown. The baseline of each is what it
cannot avoid: the conversion to its disk format with qemu-img alone, plus, for
the archives (OVA, boxes), one sequential write of that converted disk (a
plain copy of the file). Overhead = export time / baseline; the target for OVA
and boxes is 1.2x at most.

    .venv/bin/python bench/export.py [--used-mib 1024] [--size 2G] [--rounds 1]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.artifacts.export import ExportContext, MachineShape  # noqa: E402
from engine.console.events import EventBus  # noqa: E402
from modules.exports.ovf import Ova, OvfConfig  # noqa: E402
from modules.exports.qcow2 import Qcow2, Qcow2Config  # noqa: E402
from modules.exports.vagrant import Vagrant, VagrantConfig  # noqa: E402
from modules.exports.vmdk import Vmdk, VmdkConfig  # noqa: E402

CHUNK_MIB = 64


def make_disk(path: Path, size: str, used_mib: int) -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    noise = path.with_name("noise.bin")
    noise.write_bytes(os.urandom(CHUNK_MIB * 2 ** 20))
    commands = []
    for index in range(used_mib // CHUNK_MIB):
        offset = f"{index * CHUNK_MIB * 2}M"          # every other 64 MiB: the data is spread over the disk
        if index % 2:
            commands += ["-c", f"write -P {index % 251} {offset} {CHUNK_MIB}M"]
        else:
            commands += ["-c", f"write -s {noise} {offset} {CHUNK_MIB}M"]
    subprocess.run(["qemu-io", "-f", "qcow2", *commands, str(path)], check=True, capture_output=True)
    noise.unlink()


def timed(run: Callable[[], object]) -> float:
    os.sync()     # no write-back of an earlier step runs during this one
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def fsync_all(*paths: Path) -> None:
    for path in paths:
        with path.open("rb+") as written:
            os.fsync(written.fileno())


def convert(disk: Path, target: Path, *options: str) -> float:
    def run() -> None:
        subprocess.run(["qemu-img", "convert", *options, "-f", "qcow2", str(disk), str(target)], check=True)
        fsync_all(target)
    return timed(run)


def copy(source: Path, target: Path) -> float:
    def run() -> None:
        shutil.copyfile(source, target)
        fsync_all(target)
    return timed(run)


def export(exporter: object, config: object, context: ExportContext) -> float:
    run: Callable[[], Awaitable[object]] = lambda: exporter.run(config, context)  # type: ignore[attr-defined]

    def run_and_sync() -> None:
        asyncio.run(run())
        fsync_all(*context.output_dir.iterdir())      # on disk, as the baselines are
    return timed(run_and_sync)


def bare(disk: Path, work: Path, archive: bool, *options: str) -> float:
    """The baseline: qemu-img convert alone, plus one sequential write of its output for archives."""
    converted, copied = work / "bare.img", work / "bare-copy.img"
    took = convert(disk, converted, *options) + (copy(converted, copied) if archive else 0.0)
    for path in (converted, copied):
        path.unlink(missing_ok=True)
    return took


QCOW2 = ("-O", "qcow2")
VMDK = ("-O", "vmdk", "-o", "subformat=streamOptimized")


def one_round(disk: Path, work: Path, number: int) -> dict[str, tuple[float, float]]:
    """Each export beside its baseline; odd rounds measure the baseline first, even rounds the export."""
    def context(name: str) -> ExportContext:
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        return ExportContext(build_name="bench", disk=disk, disk_format="qcow2", output_dir=out,
                             events=EventBus().bind(build="bench"), work_dir=work / "scratch", epoch=0,
                             machine=MachineShape(name="bench", cpus=2, memory_mib=1024, os_id="debian"))

    cases = {
        "qcow2": (Qcow2(), Qcow2Config(), False, QCOW2),
        "vmdk (streamOptimized)": (Vmdk(), VmdkConfig(), False, VMDK),
        "ova": (Ova(), OvfConfig(), True, VMDK),
        "vagrant libvirt box": (Vagrant(), VagrantConfig(provider=("libvirt",)), True, QCOW2),
        "vagrant virtualbox box": (Vagrant(), VagrantConfig(provider=("virtualbox",)), True, VMDK),
    }
    results = {}
    for index, (name, (exporter, config, archive, options)) in enumerate(cases.items()):
        folder = f"out-{index}"
        if number % 2:
            baseline = bare(disk, work, archive, *options)
            took = export(exporter, config, context(folder))
        else:
            took = export(exporter, config, context(folder))
            baseline = bare(disk, work, archive, *options)
        size = sum(p.stat().st_size for p in (work / folder).iterdir())
        shutil.rmtree(work / folder)
        results[name] = (took, baseline)
        print(f"  {name}: {took:.2f} s against {baseline:.2f} s, {size / 2 ** 20:.0f} MiB")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G")
    parser.add_argument("--used-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recipe-bench-export-", dir="/var/tmp") as folder:
        work = Path(folder)
        disk = work / "disk.qcow2"
        make_disk(disk, args.size, args.used_mib)
        print(f"disk: {args.size} qcow2, {args.used_mib} MiB used (half random, half patterned)")
        rounds = []
        for number in range(args.rounds):
            print(f"round {number + 1}")
            rounds.append(one_round(disk, work, number + 1))
        print(f"\n{'export':<26}{'export s':>10}{'baseline s':>12}{'overhead':>10}   baseline")
        for name in rounds[0]:
            took = statistics.median(r[name][0] for r in rounds)
            base = statistics.median(r[name][1] for r in rounds)
            what = "convert" if name in ("qcow2", "vmdk (streamOptimized)") else "convert + one sequential write"
            print(f"{name:<26}{took:>10.2f}{base:>12.2f}{took / base:>9.2f}x   {what}")


if __name__ == "__main__":
    main()

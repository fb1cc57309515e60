"""1, 2 and 4 qemu builds of one recipe at once on this machine: wall time per build and in total, and the
speed-up against running them one after another.

Each build is a whole `recipe run` of one recipe with N qemu sources (the
cached debootstrap base, 1 vCPU and 768 MiB each, five shell tasks, a qcow2
export). "One after another" is N times the single build's wall time,
measured in the same run, so the figures compare like with like:

    speed-up(N) = N x T(1) / T(N)

Under TCG a guest is one busy host thread per vCPU, so on 2 cores the speed-up
is bounded by 2; what parallel builds buy beyond that is overlapping each
build's waits (boot, SSH, qemu-img) with the others' work.

    .venv/bin/python bench/parallel.py [--counts 1,2,4] [--cpus 1] [--memory 768]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.local_cache import default_cache_dir  # noqa: E402
from modules.platforms.qemu.base import BootstrapBase, resolve_base  # noqa: E402

RECIPE = Path(sys.executable).parent / "recipe"
TASKS = "".join(f"  - name: step {i}\n    shell: echo {i} > /tmp/bench-{i} && sync\n" for i in range(5))


def recipe_text(count: int, base: Path, cpus: int, memory: int) -> str:
    sources = "".join(f"  vm{i}:\n    platform: qemu\n    base: {{path: \"{base}\"}}\n    cpus: {cpus}\n"
                      f"    memory: {memory}\n    ssh: {{user: debian}}\n" for i in range(count))
    return f"name: par{count}\nsources:\n{sources}become: true\ntasks:\n{TASKS}exports:\n  - qcow2: {{}}\n"


def run_builds(count: int, base: Path, cpus: int, memory: int, work: Path) -> tuple[float, dict[str, float]]:
    recipe = work / f"par{count}.yml"
    recipe.write_text(recipe_text(count, base, cpus, memory))
    events = work / f"par{count}.jsonl"
    started = time.monotonic()
    result = subprocess.run([str(RECIPE), "run", str(recipe), "--output-dir", str(work / "out"), "--json",
                             str(events)], capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"the {count}-build run failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    per_build = {e["build"]: e["duration"] for e in map(json.loads, events.read_text().splitlines())
                 if e.get("event") == "build.end"}
    return wall, per_build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,2,4")
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--memory", type=int, default=768)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    base = asyncio.run(resolve_base(BootstrapBase(), default_cache_dir())).path
    subprocess.run(["cat", str(base)], stdout=subprocess.DEVNULL)     # a warm page cache for every run
    print(f"builds of one recipe at once: qemu under TCG, {args.cpus} vCPU and {args.memory} MiB each, "
          f"5 tasks and a qcow2 export")
    print(f"{'builds':>6}  {'wall':>8}  {'per build (median)':>18}  {'one after another':>17}  {'speed-up':>8}")
    single = None
    with tempfile.TemporaryDirectory(prefix="recipe-bench-parallel-", dir="/var/tmp") as folder:
        for count in counts:
            wall, per_build = run_builds(count, base, args.cpus, args.memory, Path(folder))
            if count == 1:
                single = wall
            durations = sorted(per_build.values())
            median = durations[len(durations) // 2]
            serial = f"{single * count:15.1f} s" if single else f"{'n/a':>17}"
            speed_up = f"{single * count / wall:7.2f}x" if single else f"{'n/a':>8}"
            print(f"{count:>6}  {wall:6.1f} s  {median:16.1f} s  {serial}  {speed_up}")


if __name__ == "__main__":
    main()

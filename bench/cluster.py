"""Builds on a cluster, on this machine: 8 ssh-platform builds of 50 tasks each through 1 worker and through
2 workers (one run, side by side), and the fixed cost a build pays for going through the cluster.

A real redis-server, real `recipe worker` processes (2 slots each) and a throwaway sshd, all on 127.0.0.1.
Each build's 50 tasks write files and run short commands on the sshd, as configuration tasks do.

- speed-up = T(8 builds, 1 worker) / T(8 builds, 2 workers). Both workers share these 2 cores and one sshd,
  so the speed-up says how well the cluster spreads builds, not what a second machine would add.
- overhead per build = T(cluster, 1 build) - T(local `recipe run`, same build): the bundle, the queue, the
  worker's compile, the event stream and the fetch of its folder (median of --rounds).

    .venv/bin/python bench/cluster.py [--builds 8] [--tasks 50] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cluster import RECIPE, Worker, ssh_recipe  # noqa: E402
from tests.redis_server import redis_server  # noqa: E402
from tests.sshd import start_sshd  # noqa: E402


def tasks_text(count: int, target: Path, name: str) -> str:
    lines = []
    for i in range(count):
        if i % 2:
            lines.append(f"  - name: command {i}\n    command: echo {i}\n")
        else:
            lines.append(f"  - name: file {i}\n    copy:\n      dest: {target}/{name}-{i}\n"
                         f"      content: \"{name} {i}\\n\"\n")
    return "".join(lines)


def write_recipes(folder: Path, sshd, builds: int, tasks: int, target: Path) -> None:
    folder.mkdir(parents=True)
    for number in range(builds):
        name = f"b{number}"
        (folder / f"{name}.yml").write_text(ssh_recipe(name, sshd, tasks_text(tasks, target, name)))


def timed(command: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    took = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recipe-bench-cluster-") as text:
        work = Path(text)
        target = work / "target"
        target.mkdir()
        sshd = start_sshd(work / "sshd", max_sessions=128)
        recipes = work / "recipes"
        write_recipes(recipes, sshd, args.builds, args.tasks, target)
        single = work / "single"
        write_recipes(single, sshd, 1, args.tasks, target)
        try:
            with redis_server() as server:
                workers = [Worker(f"bench{n}", "ssh,x86_64", work / f"store{n}", work / f"w{n}.log", server.url,
                                  extra=("--slots", "2")) for n in range(2)]
                run = [str(RECIPE), "run", "--cluster", server.url, "--output-dir"]
                try:
                    workers[0].start()
                    one = timed([*run, str(work / "out1"), str(recipes)])
                    workers[1].start()
                    two = timed([*run, str(work / "out2"), str(recipes)])
                    cluster = [timed([*run, str(work / f"c{r}"), str(single)]) for r in range(args.rounds)]
                finally:
                    for worker in workers:
                        worker.stop()
            local = [timed([str(RECIPE), "run", "--output-dir", str(work / f"l{r}"), str(single)])
                     for r in range(args.rounds)]
        finally:
            sshd.stop()
    print(f"{args.builds} ssh builds of {args.tasks} tasks, 2 slots per worker:")
    print(f"  1 worker:  {one:6.1f} s")
    print(f"  2 workers: {two:6.1f} s   speed-up {one / two:.2f}")
    print(f"one build, median of {args.rounds}: local {statistics.median(local):.2f} s, "
          f"cluster {statistics.median(cluster):.2f} s, overhead per build "
          f"{statistics.median(cluster) - statistics.median(local):+.2f} s")


if __name__ == "__main__":
    main()

"""What the cache layers save, measured side by side in one run on the same cached bootstrap base:

    .venv/bin/python bench/cache.py [--steps 20]

1. a clean build of a recipe of `--steps` tasks (each writes a file and takes a second), with an empty layer
   folder: it boots, and keeps its layers; and the same build with the cache off (RECIPE_CACHE_MAX_SIZE=0),
   twice each, alternating: what keeping the layers costs (the goal: at most 1.05);
2. the same recipe with its last task edited: the rebuild against the clean build (the goal: at most 0.15);
3. another recipe on the same base and VM, sharing no task: the time from `recipe run` to its first task,
   resumed (a warm boot) against the clean build's, which booted (the goal: at most 0.2).

Each build is a whole `recipe run`, as a user waits for it; the layers live in a temporary folder
(RECIPE_LAYERS_DIR), so nothing kept before changes the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.local_cache import default_cache_dir  # noqa: E402
from modules.platforms.qemu.bootstrap import image_path  # noqa: E402
from modules.platforms.qemu.base_spec import BootstrapBase  # noqa: E402

RECIPE = str(Path(sys.executable).parent / "recipe")


def recipe_text(name: str, base: Path, steps: int, last: str) -> str:
    tasks = "".join(f"  - name: step {index}\n    become: true\n"
                    f"    shell: sleep 1; echo {name}-{index} > /etc/step-{index}\n" for index in range(1, steps))
    tasks += f"  - name: last\n    become: true\n    shell: echo {last} > /etc/last\n"
    return (f"name: {name}\nsources:\n  vm:\n    platform: qemu\n    base: {{path: \"{base}\"}}\n"
            f"    ssh: {{user: debian}}\ntasks:\n{tasks}exports:\n  - qcow2: {{}}\n")


def run(folder: Path, name: str, text: str, env: dict) -> tuple[float, float, list[dict]]:
    """(whole run, from the start to the first task, events)."""
    recipe, events = folder / f"{name}.yml", folder / f"{name}.jsonl"
    recipe.write_text(text)
    started = time.time()
    result = subprocess.run([RECIPE, "run", str(recipe), "--json", str(events), "--output-dir", str(folder / "out")],
                            capture_output=True, text=True, env=env)
    took = time.time() - started
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    first = next(e["time"] for e in lines if e["event"] in ("task.start", "task.cached"))
    return took, first - started, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    base = image_path(BootstrapBase(), default_cache_dir())
    if not base.is_file():
        sys.exit(f"no bootstrap base at {base}: build one first (`make demo`, or any qemu build of a bootstrap base)")
    with tempfile.TemporaryDirectory(prefix="recipe-bench-cache-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "RECIPE_LAYERS_DIR": str(folder / "layers")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)       # an installed recipe has its bytecode compiled
        first = recipe_text("bench-a", base, args.steps, "v1")
        off = [run(folder, "bench-a", first, {**env, "RECIPE_CACHE_MAX_SIZE": "0"})[0]]
        clean, clean_boot, _ = run(folder, "bench-a", first, env)
        off.append(run(folder, "bench-a", first, {**env, "RECIPE_CACHE_MAX_SIZE": "0"})[0])
        again = run(folder, "bench-a", first, {**env, "RECIPE_LAYERS_DIR": str(folder / "layers-again")})[0]
        rebuild, _, events = run(folder, "bench-a", recipe_text("bench-a", base, args.steps, "v2"), env)
        cached = sum(1 for e in events if e["event"] == "task.cached")
        other, other_boot, _ = run(folder, "bench-b", recipe_text("bench-b", base, 3, "b"), env)
    print(f"clean build of {args.steps} steps: {clean:.1f} s and {again:.1f} s (boot to the first task "
          f"{clean_boot:.1f} s); with the cache off: {off[0]:.1f} s and {off[1]:.1f} s: "
          f"ratio {(clean + again) / sum(off):.2f} (goal <= 1.05)")
    print(f"rebuild after editing the last step: {rebuild:.1f} s, {cached} steps cached: "
          f"ratio {rebuild / clean:.2f} (goal <= 0.15)")
    print(f"another recipe, same base: first task {other_boot:.1f} s after `recipe run` (whole run {other:.1f} s): "
          f"ratio {other_boot / clean_boot:.2f} to the booted build's (goal <= 0.2)")


if __name__ == "__main__":
    main()

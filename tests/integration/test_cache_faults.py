"""Cache layers under faults and sharing, with real TCG guests: a build killed while it keeps a layer leaves
nothing that looks like one; a failed build, once fixed, resumes at the task that failed; two builds share
layers at once; `recipe cache prune` by age and by size on real layers, never one a build is using.

Each test has a layer cache and a TMPDIR of its own: its first build boots, and what it kills is its own."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from engine.cache.layer_store import LayerStore

from .conftest import RECIPE
from .test_cache import read_image
from .test_qemu_platform import events_of

LAYERED = """\
name: {name}
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    memory: 768
    ssh: {{user: debian}}
tasks:
{tasks}exports:
  - qcow2: {{}}
"""


def task(name: str, command: str, *keywords: str) -> str:
    return f"  - name: {name}\n    become: true\n    shell: {json.dumps(command)}\n" + \
        "".join(f"    {keyword}\n" for keyword in keywords)


class Builds:
    """`recipe` commands with this test's own layer cache and TMPDIR."""

    def __init__(self, folder: Path, base: Path):
        self.folder, self.base = folder, base
        self.layers = folder / "layers"
        (folder / "tmp").mkdir()
        self.env = {**os.environ, "TMPDIR": str(folder / "tmp"), "RECIPE_LAYERS_DIR": str(self.layers)}
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, tasks: list[str]) -> tuple[subprocess.Popen, Path]:
        recipe = self.folder / f"{name}.yml"
        recipe.write_text(LAYERED.format(name=name, base=self.base, tasks="".join(tasks)))
        events = self.folder / f"{name}.jsonl"
        events.unlink(missing_ok=True)
        process = subprocess.Popen([RECIPE, "run", str(recipe), "--json", str(events),
                                    "--output-dir", str(self.folder / "out")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        self.started.append(process)
        return process, events

    def finish(self, process: subprocess.Popen, events: Path, code: int = 0) -> list[dict]:
        out, err = process.communicate(timeout=900)
        assert process.returncode == code, out[-3000:] + err[-2000:]
        return events_of(events)

    def run(self, name: str, tasks: list[str], code: int = 0) -> list[dict]:
        return self.finish(*self.start(name, tasks), code=code)

    def command(self, *args: str) -> str:
        result = subprocess.run([RECIPE, *args], capture_output=True, text=True, env=self.env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def image(self, name: str, *paths: str) -> dict[str, str]:
        return read_image(self.folder / "out" / f"{name}-vm" / f"{name}-vm.qcow2", paths)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.communicate()
        subprocess.run([RECIPE, "sweep", "--local"], capture_output=True, env=self.env, timeout=300)


@pytest.fixture
def builds(bootstrap_base, tmp_path):
    made = Builds(tmp_path, bootstrap_base.path)
    yield made
    made.stop_all()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 600, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


def statuses(events: list[dict]) -> dict[str, str]:
    found = {e["task"]: e["status"] for e in events if e["event"] == "task.end"}
    found.update({e["task"]: "cached" for e in events if e["event"] == "task.cached"})
    return found


def booted_cold(events: list[dict]) -> bool:
    return [e["resumed"] for e in events if e["event"] == "booted"] == [False]


def recorded(layers: Path) -> list[Path]:
    return sorted(folder for folder in layers.iterdir() if (folder / "layer.json").exists()) \
        if layers.is_dir() else []


def folders(layers: Path) -> list[Path]:
    return [entry for entry in layers.iterdir() if entry.is_dir()] if layers.is_dir() else []


def whole(layer: Path) -> bool:
    """A recorded layer's disk is a sound qcow2 whose backing chain is all there (and its state, if it has one,
    is there)."""
    record = json.loads((layer / "layer.json").read_text())
    check = subprocess.run(["qemu-img", "check", "-U", str(layer / "disk.qcow2")], capture_output=True)
    chain = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", str(layer / "disk.qcow2")],
                           capture_output=True)
    state_ok = not record["has_state"] or (layer / "state").stat().st_size > 1 << 20
    return check.returncode == 0 and chain.returncode == 0 and state_ok


def unused_for_2h(layer: Path) -> None:
    """As if no build had used the layer for two hours (its `used` file's time says when one last did)."""
    hours_ago = time.time() - 7200
    (layer / "used").touch()
    os.utime(layer / "used", (hours_ago, hours_ago))


PREPARE = task("prepare", "sleep 8; echo one > /etc/one")
SECOND = task("second", "echo two > /etc/two")


def third(code: int) -> str:
    return task("third", f"echo three > /etc/three; exit {code}")


# three cold boots' worth of work: 4 minutes alone on 2 cores
@pytest.mark.timeout(1200)
def test_a_kill_while_a_layer_is_kept_leaves_none_and_a_fixed_build_resumes_at_its_failure(builds):
    # SIGKILL while the booted machine's memory is saved, inside its checkpoint: nothing of it is a layer
    process, _ = builds.start("resumable", [PREPARE, SECOND, third(0)])
    wait_for(lambda: any((folder / "state").exists() for folder in folders(builds.layers)), "a memory save")
    process.kill()
    process.communicate()
    assert recorded(builds.layers) == [] and folders(builds.layers)
    assert "no layers" in builds.command("cache", "list")
    swept = builds.command("sweep", "--local")
    assert "unfinished cache layer" in swept and "QEMU" in swept
    assert folders(builds.layers) == []

    # a build that fails at its third task keeps the layers before it ...
    failed = builds.run("resumable", [PREPARE, SECOND, third(3)], code=1)
    assert booted_cold(failed)
    assert statuses(failed) == {"prepare": "changed", "second": "changed", "third": "failed"}
    assert len(recorded(builds.layers)) == 3 and all(whole(layer) for layer in recorded(builds.layers))

    # ... and, fixed, resumes right there: the machine as it was before the third task, with its memory
    fixed = builds.run("resumable", [PREPARE, SECOND, third(0)])
    (plan,) = [e for e in fixed if e["event"] == "cache"]
    assert plan["resumes"] == 2 and plan["warm"], plan
    assert statuses(fixed) == {"prepare": "cached", "second": "cached", "third": "changed"}
    image = builds.image("resumable", "/etc/one", "/etc/two", "/etc/three")
    assert image == {"/etc/one": "one", "/etc/two": "two", "/etc/three": "three"}

    # cache: false: that task and every one after it run each time; those before it stay cached
    stamped = [PREPARE, SECOND, third(0), task("stamp", "date +%s%N > /etc/stamp", "cache: false")]
    for _ in range(2):
        events = builds.run("resumable", stamped)
        assert statuses(events)["stamp"] == "changed" and statuses(events)["prepare"] == "cached"
        (plan,) = [e for e in events if e["event"] == "cache"]
        assert plan["not_cached"] == "'stamp' on: it says cache: false"


SHARED = [task("shared one", "sleep 6; echo shared > /etc/shared"), task("shared two", "echo two > /etc/two")]
# long enough that beta, resumed beside it, reaches its own task first even when the other lane boots guests too
ALPHA = task("alpha", "sleep 45; echo alpha > /etc/own")


@pytest.mark.timeout(1200)
def test_builds_share_layers_at_once_and_prune_spares_what_they_use(builds):
    # SIGKILL in a checkpoint that keeps no memory: the layer after the first task frozen, the next one begun
    process, _ = builds.start("alpha", [*SHARED, ALPHA])
    wait_for(lambda: len(folders(builds.layers)) >= 3, "the second checkpoint")
    process.kill()
    process.communicate()
    assert all(whole(layer) for layer in recorded(builds.layers))    # what is recorded is whole ...
    assert len(recorded(builds.layers)) < len(folders(builds.layers))   # ... and what was begun is not recorded
    builds.command("sweep", "--local")

    # alpha again, and beta while alpha runs its own last task: beta resumes from the layers alpha made
    alpha, alpha_events = builds.start("alpha", [*SHARED, ALPHA])
    wait_for(lambda: any(e["event"] == "task.start" and e["task"] == "alpha" for e in events_of(alpha_events)),
             "alpha's own task", poll=0.2)
    beta, beta_events = builds.start("beta", [*SHARED, task("beta", "echo beta > /etc/own")])
    wait_for(lambda: any(e["event"] == "task.start" and e["task"] == "beta" for e in events_of(beta_events)),
             "beta's own task", poll=0.2)
    assert alpha.poll() is None                         # both machines run on the same layers now
    pruned = builds.command("cache", "prune")           # every layer not in use: none of theirs
    assert pruned.startswith("0 layer(s) removed"), pruned
    beta_done = builds.finish(beta, beta_events)
    assert statuses(beta_done) == {"shared one": "cached", "shared two": "cached", "beta": "changed"}
    builds.finish(alpha, alpha_events)
    image = builds.image("beta", "/etc/shared", "/etc/two", "/etc/own")
    assert image == {"/etc/shared": "shared", "/etc/two": "two", "/etc/own": "beta"}

    # by age, then by size, on real layers: the least recently used first, leaves before what they rest on
    store = LayerStore(builds.layers)
    own = {layer.record.recipe: layer for layer in store.layers() if layer.record.step in ("alpha", "beta")}
    unused_for_2h(own["beta"].path)
    assert builds.command("cache", "prune", "--older-than", "1h").startswith("removed ")
    assert store.find(own["beta"].record.key) is None and store.find(own["alpha"].record.key) is not None
    unused_for_2h(own["alpha"].path)
    total = sum(layer.size for layer in store.layers())
    builds.command("cache", "prune", "--max-size", str(total - 1))
    left = store.layers()
    assert store.find(own["alpha"].record.key) is None and len(left) == 3
    assert sum(layer.size for layer in left) < total

    # what is left still resumes: beta again runs its own task only
    again = builds.run("beta", [*SHARED, task("beta", "echo beta > /etc/own")])
    assert statuses(again) == {"shared one": "cached", "shared two": "cached", "beta": "changed"}

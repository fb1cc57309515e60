"""Faults at each step of a real qemu build: SIGINT leaves nothing; after SIGKILL the QEMU process, work
dir and half-written artifacts stay until `recipe sweep --local` or the next `recipe run` removes them;
and a second run writing the same output folder refuses while the first runs.

Each test's runs get a TMPDIR of their own (claims and work dirs live there), as two users' runs on one host
would: `make test` runs another guest test beside these, and its `recipe run` sweeps every dead run it can see."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.leftovers.claims import claim_path

from .conftest import RECIPE
from .test_qemu_platform import events_of, qemu_processes

FAULTY = """\
name: fault
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    ssh: {{user: debian}}
tasks:
  - name: Long task
    shell: sleep {sleep}
exports:
  - qcow2: {{compress: true}}
"""


def private_tmp(output: Path) -> Path:
    """The TMPDIR of the runs writing output (made by start_build beside it)."""
    return output.parent / "tmp"


def recipe(output: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(private_tmp(output))}
    return subprocess.run([RECIPE, *args], check=False, capture_output=True, text=True, env=env, **kwargs)


def started(events: Path, step: str):
    """The predicate for 'the build is inside step': a step's start, or an export's."""
    def reached() -> bool:
        for event in events_of(events):
            if step == "export" and event["event"] == "export.start":
                return True
            if event["event"] == "step.start" and event["step"] == step:
                return True
        return False
    return reached


@pytest.fixture
def start_build(bootstrap_base, tmp_path):
    """Start the faulty build; whatever a failed test leaves is killed and swept, not left to the next test."""
    started: list[subprocess.Popen] = []

    def start(sleep: int) -> tuple[subprocess.Popen, Path, Path]:
        recipe = tmp_path / "fault.yml"
        recipe.write_text(FAULTY.format(base=bootstrap_base.path, sleep=sleep))
        events, output = tmp_path / "events.jsonl", tmp_path / "output"
        private_tmp(output).mkdir(exist_ok=True)
        process = subprocess.Popen([RECIPE, "run", str(recipe), "--json", str(events), "--output-dir", str(output)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "TMPDIR": str(private_tmp(output))})
        started.append(process)
        return process, events, output

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()
    recipe(tmp_path / "output", "sweep", "--local")


def wait_for(process: subprocess.Popen, reached, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not reached():
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()
    assert reached(), "the build never reached the step"


def leftovers(output: Path) -> dict[str, list]:
    build = output / "fault-vm"
    claim = private_tmp(output) / "recipe-runs" / claim_path(build).name
    return {"qemu": qemu_processes("recipe-fault-vm"),
            "work dirs": list(private_tmp(output).glob("recipe-fault-vm-*")),
            "partial or final artifacts": sorted(p.name for p in build.glob("*.qcow2"))
            + sorted(p.name for p in build.glob(".*part*")),
            "claim": [claim] if claim.exists() else []}


@pytest.mark.parametrize("step", ["boot", "connect", "shutdown", "export"])
def test_sigint_at_a_step_leaves_nothing(step, start_build):
    """SIGINT mid-task is test_qemu_platform.test_sigint_mid_provisioning_leaves_nothing."""
    process, events, output = start_build(sleep=1)
    wait_for(process, started(events, step))
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 130, out[-3000:] + err[-2000:]
    assert "Traceback" not in out + err
    assert not any(leftovers(output).values()), leftovers(output)


# connect: a live QEMU is left (booting or booted, the sweep kills it alike: a kill mid-task adds nothing but a
# full boot); export: the guest is down and a half-written artifact is left
@pytest.mark.parametrize("step", ["connect", "export"])
def test_after_sigkill_sweep_local_removes_the_dead_runs_leftovers(step, start_build):
    process, events, output = start_build(sleep=1 if step == "export" else 600)
    wait_for(process, started(events, step))
    if step == "export":
        time.sleep(1)                    # qemu-img is writing the .part file
    process.kill()
    process.communicate()
    left = leftovers(output)
    assert left["work dirs"] and left["claim"], left       # SIGKILL runs no cleanup
    if step == "export":                   # the guest is down; qemu-img was writing the .part file
        assert any(".part-" in name for name in left["partial or final artifacts"]), left
        expected = "would remove partial artifact"
    else:
        assert left["qemu"], left
        expected = "would remove QEMU process"

    listed = recipe(output, "sweep", "--local", "--dry-run")
    assert listed.returncode == 0 and expected in listed.stdout, listed.stdout + listed.stderr
    assert leftovers(output)["work dirs"] == left["work dirs"], "a dry run removes nothing"
    swept = recipe(output, "sweep", "--local")
    assert swept.returncode == 0, swept.stdout + swept.stderr
    deadline = time.monotonic() + 10
    while any(leftovers(output).values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(leftovers(output).values()), leftovers(output)


def test_the_next_run_removes_a_killed_runs_leftovers_and_a_second_run_refuses_the_same_output(
        start_build, tmp_path):
    process, events, output = start_build(sleep=600)
    wait_for(process, started(events, "connect"))

    second = recipe(output, "run", str(tmp_path / "fault.yml"), "--output-dir", str(output), timeout=120)
    assert second.returncode == 1
    assert f"{output / 'fault-vm'} is being written by another recipe run (pid {process.pid}" in second.stdout
    assert leftovers(output)["qemu"], "the refused run must not touch the live one"

    process.kill()
    process.communicate()
    assert leftovers(output)["qemu"]
    other = tmp_path / "other.yml"          # any run sweeps first; this one fails fast on its own
    other.write_text("name: other\nsources:\n  box:\n    platform: ssh\n"
                     "    ssh: {host: 127.0.0.1, port: 1, connect_timeout: 1}\ntasks:\n  - shell: 'true'\n")
    result = recipe(output, "run", str(other), "--output-dir", str(tmp_path / "o2"), timeout=120)
    assert "a dead run's QEMU process" in result.stdout and "removed" in result.stdout, result.stdout
    assert not any(leftovers(output).values()), leftovers(output)

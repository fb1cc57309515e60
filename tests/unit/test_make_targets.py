"""What the Makefile's targets install and run, read from `make -n` (which prints the commands, runs none):
`make demo` installs only what the demo uses, `make test` what the suite uses, `make bench` what the
benches compare against, and runs every bench."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def dry_run(target: str) -> str:
    assert shutil.which("make"), "make is not installed"
    # -B: as on a fresh clone, where no venv stamp exists yet
    return subprocess.run(["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout


def debian_packages(commands: str) -> set[str]:
    match = re.search(r"for p in ([^;]*); do", commands)
    assert match, commands
    return set(match.group(1).split())


def pip_installs(commands: str) -> list[str]:
    return re.findall(r"pip install -q -e (\S+)", commands)


def test_make_demo_installs_only_what_the_demo_uses():
    commands = dry_run("demo")
    packages = debian_packages(commands)
    assert {"qemu-system-x86", "qemu-utils", "debootstrap", "python3-venv"} <= packages
    assert not packages & {"vagrant", "vagrant-libvirt", "libvirt-daemon-system", "virt-v2v", "packer",
                           "openssh-server"}
    assert pip_installs(commands) == ["."]          # no test or bench extras (pytest, moto, hypothesis, ansible)
    assert "recipe run playbooks/examples/web.yml" in commands


def test_make_test_installs_what_the_suite_uses():
    commands = dry_run("test")
    assert {"virt-v2v", "nbdkit", "libnbd-bin", "vagrant-libvirt", "openssh-server"} <= debian_packages(commands)
    assert pip_installs(commands) == ["'.[test]'"]
    # every test, in two runs: what boots no guest in two workers, then the guests one at a time
    assert re.search(r'python -m pytest -n 2 .*-m "not guest" tests/unit tests/integration$', commands, re.M)
    assert re.search(r"python -m pytest .*-m guest tests/integration$", commands, re.M)
    assert {path.relative_to(REPO / "tests").parts[0] for path in (REPO / "tests").rglob("test_*.py")} == \
        {"unit", "integration"}


@pytest.mark.parametrize("bench", sorted(p.name for p in (REPO / "bench").glob("*.py")))
def test_make_bench_runs_every_bench_with_what_it_compares_against(bench):
    commands = dry_run("bench")
    assert "packer" in debian_packages(commands)
    assert pip_installs(commands) == ["'.[bench]'"]
    assert f"bench/{bench}" in commands

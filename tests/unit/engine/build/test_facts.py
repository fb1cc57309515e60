"""recipe's own facts: the documented keys stay as they were now that the probe also feeds Ansible's facts."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from engine.build.ansible_facts import ansible_facts
from engine.build.facts import GATHER, PROBE_KEY, RECIPE_PROBE, parse_facts

DOCUMENTED = {"os_id", "os_version", "os_family", "os_codename", "os_name", "arch", "kernel", "hostname", "user",
              "home", "cpus", "memory_mb", "init", "pkg_mgr"}


def run_probe(script: str = GATHER, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)


def test_recipe_facts_come_from_the_lines_before_the_sections_only():
    text = "os_id=debian\nos_like=\ncpus=2\nmemory_mb=512\npkg_mgr=apt-get\n\n@@env\nexport os_id='evil'\n" \
           "\n@@files\n/etc/os-release:ID=ubuntu\n"
    facts = parse_facts(text)
    assert facts["os_id"] == "debian" and facts["os_family"] == "debian" and facts["pkg_mgr"] == "apt"
    assert facts["cpus"] == 2 and facts["memory_mb"] == 512
    assert facts[PROBE_KEY] == {"env": "export os_id='evil'", "files": "/etc/os-release:ID=ubuntu"}


def test_the_probe_keeps_recipe_facts_as_the_recipe_only_probe_gives_them():
    full, alone = run_probe(), run_probe(RECIPE_PROBE)
    assert full.returncode == 0, full.stderr
    facts, before = parse_facts(full.stdout), parse_facts(alone.stdout)
    assert DOCUMENTED <= set(facts)
    assert {k: facts[k] for k in DOCUMENTED} == {k: before[k] for k in DOCUMENTED}
    assert facts["os_family"] == "debian" and facts["pkg_mgr"] == "apt" and facts["cpus"] >= 1
    assert full.stderr == "", "the probe must not complain on a plain Debian"


def test_the_probe_is_one_fast_command():
    times = []
    for _ in range(3):
        start = time.perf_counter()
        assert run_probe().returncode == 0
        times.append(time.perf_counter() - start)
    assert min(times) < 1.5, f"the probe runs on every build; it took {min(times):.2f}s"


def test_a_minimal_guest_without_iproute2_getent_or_util_linux_still_answers(tmp_path: Path):
    """Only the tools a busybox-like guest has on PATH: the probe still succeeds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cat", "grep", "date", "uname", "ls", "stat", "awk", "sed", "tr", "id", "getconf", "readlink",
                 "cut", "nproc", "hostname"):
        for where in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
            if os.path.exists(f"{where}/{tool}"):
                (bin_dir / tool).symlink_to(f"{where}/{tool}")
                break
    result = run_probe(env={"PATH": str(bin_dir), "HOME": "/root", "LOGNAME": "root"})
    assert result.returncode == 0, result.stderr
    facts = parse_facts(result.stdout)
    assert facts["os_id"] == "debian" and facts["pkg_mgr"] == ""
    assert "getent" not in facts[PROBE_KEY]["bins"] and "route4" not in facts[PROBE_KEY]


@pytest.mark.skipif(not shutil.which("busybox"), reason="needs busybox")
def test_the_probe_runs_under_busybox_alone(tmp_path: Path):
    """A busybox guest: ash, and busybox's ls, ip, date, stat... only."""
    busybox = shutil.which("busybox")
    for tool in subprocess.run([busybox, "--list"], capture_output=True, text=True).stdout.split():
        (tmp_path / tool).symlink_to(busybox)
    result = subprocess.run([str(tmp_path / "sh"), "-c", GATHER], capture_output=True, text=True, timeout=60,
                            env={"PATH": str(tmp_path), "HOME": "/root", "LOGNAME": "root"})
    assert result.returncode == 0, result.stderr
    facts = ansible_facts(parse_facts(result.stdout))
    assert facts["distribution"] == "Debian" and facts["user_uid"] == 0 and facts["interfaces"]
    assert facts["date_time"]["iso8601_micro"].endswith(".000000Z"), "busybox date has no %N"

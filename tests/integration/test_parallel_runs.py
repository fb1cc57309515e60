"""Several builds and recipes in one `recipe run`, against a real sshd: concurrency, --parallel,
--only/--except, a directory of recipes, --fail-fast, and the exit code."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .conftest import RECIPE


def ssh_source(sshd, name: str) -> str:
    ssh = {"host": sshd.host, "port": sshd.port, "user": sshd.user, "private_key_file": str(sshd.client_key),
           "host_key": sshd.host_public_key}
    return f"  {name}:\n    platform: ssh\n    ssh: {json.dumps(ssh)}\n"


def write(folder: Path, name: str, sshd, sources: list[str], tasks: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recipe = folder / f"{name}.yml"
    recipe.write_text(f"name: {name}\nsources:\n" + "".join(ssh_source(sshd, s) for s in sources) + "tasks:\n" + tasks)
    return recipe


def recipe_run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([RECIPE, "run", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def spans(log: Path) -> dict[str, tuple[float, float]]:
    """build name -> (start, end) of its sleep, as the host's clock wrote them."""
    found: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        name, stamp = line.split()
        found.setdefault(name, []).append(float(stamp))
    return {name: (min(t), max(t)) for name, t in found.items()}


def timed_task(log: Path) -> str:
    return (f"  - shell: echo \"{{{{ build.name }}}} $(date +%s.%N)\" >> {log}; sleep 1.5; "
            f"echo \"{{{{ build.name }}}} $(date +%s.%N)\" >> {log}\n")


def overlapping(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_sources_and_recipes_of_a_directory_build_concurrently(tmp_path, sshd):
    log = tmp_path / "spans.log"
    folder = tmp_path / "gitops"
    write(folder, "web", sshd, ["a", "b"], timed_task(log))
    write(folder, "db", sshd, ["c"], timed_task(log))
    (folder / "roles").mkdir()                         # subfolders are not recipes
    result = recipe_run(folder, "--output-dir", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    found = spans(log)
    assert set(found) == {"web-a", "web-b", "db-c"}
    assert overlapping(found["web-a"], found["web-b"]) and overlapping(found["web-a"], found["db-c"])


def test_parallel_1_builds_one_after_another(tmp_path, sshd):
    log = tmp_path / "spans.log"
    recipe = write(tmp_path, "web", sshd, ["a", "b", "c"], timed_task(log))
    result = recipe_run(recipe, "--parallel", "1", "--output-dir", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    found = sorted(spans(log).values())
    assert len(found) == 3 and all(not overlapping(x, y) for x, y in zip(found, found[1:]))


def test_only_and_except_pick_sources_and_unknown_names_are_refused(tmp_path, sshd):
    log = tmp_path / "spans.log"
    recipe = write(tmp_path, "web", sshd, ["a", "b", "c"], f"  - shell: echo \"{{{{ build.name }}}} 0\" >> {log}\n")
    assert recipe_run(recipe, "--only", "a,c", "--output-dir", tmp_path / "out").returncode == 0
    assert set(spans(log)) == {"web-a", "web-c"}
    log.unlink()
    assert recipe_run(recipe, "--except", "a", "--except", "c", "--output-dir", tmp_path / "out").returncode == 0
    assert set(spans(log)) == {"web-b"}
    wrong = recipe_run(recipe, "--only", "d", "--output-dir", tmp_path / "out")
    assert wrong.returncode == 2 and "no source named 'd'" in wrong.stderr and "a, b, c" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_one_failing_build_does_not_stop_the_others_unless_fail_fast(tmp_path, sshd):
    marker = tmp_path / "slow-done"
    tasks = (f"  - shell: \"false\"\n    only: [bad]\n"
             f"  - shell: sleep 4; touch {marker}\n    only: [slow]\n")
    recipe = write(tmp_path, "web", sshd, ["bad", "slow"], tasks)
    result = recipe_run(recipe, "--output-dir", tmp_path / "out")
    assert result.returncode == 1 and marker.exists()
    assert "==> web-slow: succeeded" in result.stdout and "==> web-bad: failed" in result.stdout

    marker.unlink()
    result = recipe_run(recipe, "--fail-fast", "--output-dir", tmp_path / "out")
    assert result.returncode == 1
    assert "stopping the other builds" in result.stdout and "==> web-slow: interrupted" in result.stdout
    assert "cleanup: ssh connection" in result.stdout
    subprocess.run(["sleep", "5"])
    assert not marker.exists(), "the stopped build's remote command must not run on"


def test_two_recipes_with_one_name_are_refused(tmp_path, sshd):
    first = write(tmp_path / "one", "web", sshd, ["a"], "  - shell: 'true'\n")
    second = write(tmp_path / "two", "web", sshd, ["b"], "  - shell: 'true'\n")
    result = recipe_run(first, second, "--output-dir", tmp_path / "out")
    assert result.returncode == 2 and "recipe name 'web' is also the name of" in result.stderr

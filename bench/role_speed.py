"""A real role, applied to one guest by recipe and by ansible-playbook: both times and the ratio.

    .venv/bin/python bench/role_speed.py [--rounds 2] [--accel tcg|kvm|auto] [--keep-python]

The role is tests/integration/data/roles/webserver (Galaxy's layout, about 40 tasks with its meta dependency
www_base: apt, templates, lineinfile, handlers, a block with rescue, systemd). One Debian guest is booted under
QEMU from the cached bootstrap base (the one `make test` builds; the first run on a machine builds it, a few
minutes), with the qemu platform's own code: the same overlay, cloud-init seed, command line and login key.
Nothing is installed on this machine; the guest is thrown away at the end.

Then, against that one guest over SSH:
1. recipe applies the role once (the guest is converged: nginx installed): timed, reported apart;
2. `--rounds` times, alternating, ansible-playbook then recipe re-apply the role to the converged guest;
   these are the times compared. Each run is a whole command, as a user waits for it: start, facts, every task.

recipe runs with the ssh platform pointed at the guest; ansible-playbook with pipelining on and a persistent
master connection (ControlPersist). Ansible needs Python on the target; recipe does not: during recipe's runs
the guest's python3 is moved out of the way (put back for Ansible's runs), unless --keep-python. The base has
python3 (cloud-init is written in it); were it missing, the bench installs it for Ansible and says so.

Ansible's per-task statuses (its oracle_events callback) are compared with recipe's (--json): any difference on
a re-apply is printed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib.guest import PYTHON, USER, Guest, booted_guest  # noqa: E402
from tests.ansible_oracle import write_ansible_config  # noqa: E402

BIN = Path(sys.executable).parent
ROLES = ROOT / "tests" / "integration" / "data" / "roles"
ROLE = "webserver"
HIDDEN_PYTHON = "/usr/bin/python3.hidden-by-bench"


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float
    statuses: tuple[tuple[str, str], ...]    # (task, status) in the order they ended

    def count(self, status: str) -> int:
        return sum(1 for _, s in self.statuses if s == status)


# -- the guest ---------------------------------------------------------------------------------------------------

def hide_python(guest: Guest, hidden: bool) -> None:
    """Move python3 away for recipe's runs (and check it is gone), back for Ansible's."""
    if hidden:
        guest.ssh(f"sudo mv {PYTHON} {HIDDEN_PYTHON} && ! command -v python3")
    else:
        guest.ssh(f"sudo mv {HIDDEN_PYTHON} {PYTHON}")


# -- the two tools ---------------------------------------------------------------------------------------------

def recipe_file(work: Path, guest: Guest) -> Path:
    source = {"host": guest.host, "port": guest.port, "user": USER, "private_key_file": str(guest.client_key),
              "host_key": guest.host_public_key}
    path = work / "role.yml"
    path.write_text(f"name: bench\nsources:\n  guest:\n    platform: ssh\n    ssh: {json.dumps(source)}\n"
                    f"roles: [{ROLE}]\n")
    return path


def ansible_files(work: Path, guest: Guest) -> tuple[Path, Path, Path]:
    inventory = work / "inventory.ini"
    inventory.write_text(
        f"guest ansible_host=127.0.0.1 ansible_port={guest.port} ansible_user={USER} "
        f"ansible_ssh_private_key_file={guest.client_key} ansible_python_interpreter={PYTHON} "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={guest.known_hosts}'\n")
    control = work / "cp"            # under /tmp/role-speed-*: short enough for a Unix socket's path
    control.mkdir()
    config = write_ansible_config(work, control, roles_path=ROLES, events=True)
    playbook = work / "playbook.yml"
    playbook.write_text(f"- hosts: guest\n  roles: [{ROLE}]\n")
    return inventory, config, playbook


def run_recipe(work: Path, recipe: Path, number: int) -> Run:
    events = work / f"recipe-{number}.jsonl"
    seconds = timed([str(BIN / "recipe"), "run", str(recipe), "--roles-path", str(ROLES),
                     "--output-dir", str(work / "out"), "--json", str(events)])
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    statuses = tuple((e["task"], e["status"]) for e in lines if e.get("event") == "task.end")
    return Run("recipe", seconds, statuses)


def run_ansible(work: Path, files: tuple[Path, Path, Path], number: int) -> Run:
    inventory, config, playbook = files
    events = work / f"ansible-{number}.jsonl"
    env = {**os.environ, "ANSIBLE_CONFIG": str(config), "ANSIBLE_NOCOLOR": "1", "ORACLE_EVENTS": str(events)}
    seconds = timed([str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)], env)
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    # one line per loop item, as recipe reports them; a loop's summary line is not a task of its own
    statuses = tuple((e["task"], e["status"]) for e in lines if "status" in e and not e.get("loop"))
    return Run("ansible-playbook", seconds, statuses)


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{Path(command[0]).name} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                 f"{result.stderr[-3000:]}")
    return elapsed


# -- the report --------------------------------------------------------------------------------------------------

def describe(run: Run) -> str:
    counts = " ".join(f"{s}={run.count(s)}" for s in ("ok", "changed", "skipped", "failed"))
    return f"{run.tool:<17} {run.seconds:7.2f} s  ({len(run.statuses)} results: {counts})"


def differences(recipe: Run, ansible: Run) -> list[str]:
    """Tasks whose statuses differ, by name (loop items and repeated names compared in order)."""
    theirs: dict[str, list[str]] = {}
    for task, status in ansible.statuses:
        if task != "Gathering Facts":        # recipe gathers facts in a step of its own, not as a task
            theirs.setdefault(plain_name(task), []).append(status)
    mine: dict[str, list[str]] = {}
    for label, status in recipe.statuses:
        # recipe labels a loop's item "name (item)"; Ansible keeps the name alone
        name = next((n for n in theirs if label.startswith(n + " (")), label)
        mine.setdefault(name, []).append(status)
    return [f"{name}: recipe {mine.get(name, [])}, ansible {theirs.get(name, [])}"
            for name in dict.fromkeys([*theirs, *mine]) if mine.get(name, []) != theirs.get(name, [])]


def plain_name(task: str) -> str:
    """Ansible names a role's task "role : name"."""
    role, sep, name = task.partition(" : ")
    return name if sep and " " not in role else task


def report(first: Run, rounds: list[tuple[Run, Run]], python_note: str) -> None:
    print(f"\nrole: {ROLE} (with its dependency www_base), {len(first.statuses)} task results on the first apply")
    print(f"first apply (installs nginx): {describe(first)}")
    for number, (ansible, recipe) in enumerate(rounds, 1):
        print(f"re-apply {number}: {describe(ansible)}")
        print(f"re-apply {number}: {describe(recipe)}")
    ansible_median = statistics.median(a.seconds for a, _ in rounds)
    recipe_median = statistics.median(r.seconds for _, r in rounds)
    print(f"\nre-apply, median of {len(rounds)}: recipe {recipe_median:.2f} s, ansible-playbook "
          f"{ansible_median:.2f} s (pipelining, ControlPersist)")
    print(f"ratio ansible/recipe: {ansible_median / recipe_median:.1f}x  (target: 5x)")
    print(f"python on the target: recipe needs none; {python_note}")
    different = differences(rounds[-1][1], rounds[-1][0])
    print(f"per-task statuses on the last re-apply: {'identical' if not different else 'differ:'}")
    for line in different:
        print("  " + line)


async def bench(rounds: int, accel: str, keep_python: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="role-speed-") as tmp:
        work = Path(tmp)
        async with booted_guest(work, accel, name="recipe-bench-role-speed") as guest:
            python_note = guest.ensure_python() + "; recipe ran with it hidden"
            if keep_python:
                python_note = python_note.replace("; recipe ran with it hidden", "; --keep-python: left in place")
            recipe, files = recipe_file(work, guest), ansible_files(work, guest)
            if not keep_python:
                hide_python(guest, True)
            first = run_recipe(work, recipe, 0)
            print(describe(first))
            results: list[tuple[Run, Run]] = []
            for number in range(1, rounds + 1):
                if not keep_python:
                    hide_python(guest, False)
                ansible = run_ansible(work, files, number)
                print(describe(ansible))
                if not keep_python:
                    hide_python(guest, True)
                mine = run_recipe(work, recipe, number)
                print(describe(mine))
                results.append((ansible, mine))
            report(first, results, python_note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="re-applies by each tool, alternating (default 2)")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm", "auto"),
                        help="the guest's accelerator (default tcg, as the issue's figures)")
    parser.add_argument("--keep-python", action="store_true",
                        help="leave the guest's python3 in place during recipe's runs")
    args = parser.parse_args()
    asyncio.run(bench(args.rounds, args.accel, args.keep_python))


if __name__ == "__main__":
    main()

"""The ansible_playbook task against running ansible-playbook by hand, and against recipe's native engine, on one
guest in one run: both ratios.

    .venv/bin/python bench/ansible_playbook.py [--rounds 2] [--accel tcg|kvm|auto]

One Debian guest is booted under QEMU from the cached bootstrap base (bench/lib/guest.py). The role is
tests/integration/data/roles/webserver (about 40 tasks with its dependency www_base). recipe applies it once
natively to converge the guest (nginx installed); then `--rounds` times, in turn:
1. by hand: `ansible-playbook -i inventory playbook.yml`, Ansible's defaults, as a user runs it;
2. `recipe run` of a recipe whose one task is `ansible_playbook: playbook.yml` (ssh platform, gather_facts off:
   the playbook gathers its own), the same playbook, inventory made by the task;
3. `recipe run` of a recipe with `roles: [webserver]`: the native engine, no Python needed on the guest.
Each time is a whole command, as a user waits for it. Printed: every run, the medians, task/by-hand (the goal:
at most 1.05) and task/native (what the native engine saves).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib.guest import PYTHON, USER, Guest, booted_guest  # noqa: E402
from bench.role_speed import ROLE, ROLES, recipe_file  # noqa: E402

BIN = Path(sys.executable).parent


def playbook(work: Path) -> Path:
    path = work / "playbook.yml"
    path.write_text(f"- hosts: all\n  vars: {{ansible_python_interpreter: {PYTHON}}}\n  roles: [{ROLE}]\n")
    return path


def task_recipe(work: Path, guest: Guest) -> Path:
    source = {"host": guest.host, "port": guest.port, "user": USER, "private_key_file": str(guest.client_key),
              "host_key": guest.host_public_key}
    path = work / "task.yml"
    path.write_text(f"name: bench-task\ngather_facts: false\nsources:\n  guest:\n    platform: ssh\n"
                    f"    ssh: {json.dumps(source)}\n"
                    f"tasks:\n  - ansible_playbook: {{playbook: playbook.yml, roles_path: [{ROLES}]}}\n")
    return path


def by_hand_inventory(work: Path, guest: Guest) -> Path:
    path = work / "inventory.ini"
    path.write_text(f"guest ansible_host={guest.host} ansible_port={guest.port} ansible_user={USER} "
                    f"ansible_ssh_private_key_file={guest.client_key} "
                    f"ansible_ssh_common_args='-o UserKnownHostsFile={guest.known_hosts}'\n")
    return path


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{Path(command[0]).name} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                 f"{result.stderr[-3000:]}")
    return elapsed


def by_hand(work: Path, inventory: Path, book: Path) -> float:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(work), "ANSIBLE_ROLES_PATH": str(ROLES),
           "ANSIBLE_NOCOLOR": "1"}
    return timed([str(BIN / "ansible-playbook"), "-i", str(inventory), str(book)], env)


def recipe(work: Path, path: Path, *extra: str) -> float:
    return timed([str(BIN / "recipe"), "run", str(path), "--output-dir", str(work / "out"), *extra])


async def bench(rounds: int, accel: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ansible-playbook-bench-") as tmp:
        work = Path(tmp)
        async with booted_guest(work, accel, name="recipe-bench-ansible-playbook") as guest:
            print(guest.ensure_python())
            native_recipe, book = recipe_file(work, guest), playbook(work)
            task, inventory = task_recipe(work, guest), by_hand_inventory(work, guest)
            print(f"converge (native, installs nginx): {recipe(work, native_recipe, '--roles-path', str(ROLES)):.1f} s")
            times: dict[str, list[float]] = {"by hand": [], "ansible_playbook task": [], "native": []}
            for number in range(1, rounds + 1):
                times["by hand"].append(by_hand(work, inventory, book))
                times["ansible_playbook task"].append(recipe(work, task))
                times["native"].append(recipe(work, native_recipe, "--roles-path", str(ROLES)))
                print(f"round {number}: " + ", ".join(f"{name} {values[-1]:.1f} s" for name, values in times.items()))
            median = {name: statistics.median(values) for name, values in times.items()}
            print(f"\nre-apply of {ROLE}, median of {rounds}: " + ", ".join(f"{n} {v:.1f} s" for n, v in median.items()))
            print(f"ansible_playbook task / ansible-playbook by hand: {median['ansible_playbook task'] / median['by hand']:.3f}"
                  "  (goal: at most 1.05)")
            print(f"ansible_playbook task / native recipe: {median['ansible_playbook task'] / median['native']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="re-applies by each way, in turn (default 2)")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm", "auto"), help="the guest's accelerator")
    args = parser.parse_args()
    asyncio.run(bench(args.rounds, args.accel))


if __name__ == "__main__":
    main()

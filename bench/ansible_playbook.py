"""The ansible_playbook task against running ansible-playbook by hand, and against recipe's native engine, on one
guest in one run: both ratios.

    .venv/bin/python bench/ansible_playbook.py [--rounds 2] [--accel tcg|kvm|auto]

One Debian guest is booted under QEMU from the cached bootstrap base (bench/lib/guest.py). The role is a small
one written here (`motd_site`: six tasks, a directory, files, a line, a command guarded by `creates`, become).
recipe applies it once natively to converge the guest; then `--rounds` times, in turn:
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
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib.guest import PYTHON, USER, Guest, booted_guest  # noqa: E402
from bench.role_speed import timed  # noqa: E402

BIN = Path(sys.executable).parent
ROLE = "motd_site"
ROLE_TASKS = """\
- name: Site directory
  ansible.builtin.file: {path: /srv/site, state: directory, mode: "0755"}
- name: Page
  ansible.builtin.copy: {content: "hello from {{ inventory_hostname }}\\n", dest: /srv/site/index.html, mode: "0644"}
- name: Settings
  ansible.builtin.copy: {content: "port=8080\\n", dest: /srv/site/settings.conf}
- name: A line in the settings
  ansible.builtin.lineinfile: {path: /srv/site/workers.conf, line: "workers=2", create: true}
- name: Message of the day
  ansible.builtin.copy: {content: "built by recipe\\n", dest: /etc/motd}
- name: Stamp once
  ansible.builtin.command: {cmd: "touch /srv/site/.stamp", creates: /srv/site/.stamp}
"""


def roles(work: Path) -> Path:
    folder = work / "roles"
    (folder / ROLE / "tasks").mkdir(parents=True)
    (folder / ROLE / "tasks" / "main.yml").write_text(ROLE_TASKS)
    return folder


def native_recipe(work: Path, guest: Guest) -> Path:
    path = work / "native.yml"
    path.write_text(f"name: bench-native\nbecome: true\nsources:\n  guest:\n    platform: ssh\n"
                    f"    ssh: {json.dumps(source(guest))}\nroles: [{ROLE}]\n")
    return path


def source(guest: Guest) -> dict:
    return {"host": guest.host, "port": guest.port, "user": USER, "private_key_file": str(guest.client_key),
            "host_key": guest.host_public_key}


def playbook(work: Path) -> Path:
    path = work / "playbook.yml"
    path.write_text(f"- hosts: all\n  become: true\n  vars: {{ansible_python_interpreter: {PYTHON}}}\n"
                    f"  roles: [{ROLE}]\n")
    return path


def task_recipe(work: Path, guest: Guest) -> Path:
    path = work / "task.yml"
    path.write_text(f"name: bench-task\ngather_facts: false\nsources:\n  guest:\n    platform: ssh\n"
                    f"    ssh: {json.dumps(source(guest))}\n"
                    f"tasks:\n  - ansible_playbook: {{playbook: playbook.yml, roles_path: [{work / 'roles'}]}}\n")
    return path


def by_hand_inventory(work: Path, guest: Guest) -> Path:
    path = work / "inventory.ini"
    path.write_text(f"guest ansible_host={guest.host} ansible_port={guest.port} ansible_user={USER} "
                    f"ansible_ssh_private_key_file={guest.client_key} "
                    f"ansible_ssh_common_args='-o UserKnownHostsFile={guest.known_hosts}'\n")
    return path


def by_hand(work: Path, inventory: Path, book: Path) -> float:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(work), "ANSIBLE_ROLES_PATH": str(work / "roles"),
           "ANSIBLE_NOCOLOR": "1"}
    return timed([str(BIN / "ansible-playbook"), "-i", str(inventory), str(book)], env)


def recipe(work: Path, path: Path, *extra: str) -> float:
    return timed([str(BIN / "recipe"), "run", str(path), "--output-dir", str(work / "out"), *extra])


async def bench(rounds: int, accel: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ansible-playbook-bench-") as tmp:
        work = Path(tmp)
        async with booted_guest(work, accel, name="recipe-bench-ansible-playbook") as guest:
            print(guest.ensure_python())
            native, book, role_folder = native_recipe(work, guest), playbook(work), roles(work)
            task, inventory = task_recipe(work, guest), by_hand_inventory(work, guest)
            print(f"converge (native): {recipe(work, native, '--roles-path', str(role_folder)):.1f} s")
            times: dict[str, list[float]] = {"by hand": [], "ansible_playbook task": [], "native": []}
            for number in range(1, rounds + 1):
                times["by hand"].append(by_hand(work, inventory, book))
                times["ansible_playbook task"].append(recipe(work, task))
                times["native"].append(recipe(work, native, "--roles-path", str(role_folder)))
                print(f"round {number}: " + ", ".join(f"{name} {values[-1]:.1f} s" for name, values in times.items()))
            median = {name: statistics.median(values) for name, values in times.items()}
            print(f"\nre-apply of {ROLE} (6 tasks), median of {rounds}: "
                  + ", ".join(f"{n} {v:.1f} s" for n, v in median.items()))
            ratio = median["ansible_playbook task"] / median["by hand"]
            print(f"ansible_playbook task / ansible-playbook by hand: {ratio:.3f}  (goal: at most 1.05)")
            print(f"ansible_playbook task / native recipe: {median['ansible_playbook task'] / median['native']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="re-applies by each way, in turn (default 2)")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm", "auto"), help="the guest's accelerator")
    args = parser.parse_args()
    asyncio.run(bench(args.rounds, args.accel))


if __name__ == "__main__":
    main()

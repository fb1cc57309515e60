"""Per-task overhead: 200 trivial tasks over one SSH connection, recipe against ansible-playbook.

Both run against the same local OpenSSH server (started here, on 127.0.0.1),
in the same run, as whole commands: what a user waits for. Prints both times,
the time per task and the ratio.

    .venv/bin/python bench/task_overhead.py [--tasks 200]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ansible_oracle import inventory_line, ssh_source, write_ansible_config  # noqa: E402
from tests.sshd import SshServer, start_sshd  # noqa: E402

BIN = Path(sys.executable).parent


def recipe_file(directory: Path, server: SshServer, count: int) -> Path:
    tasks = "".join(f"  - name: step {i}\n    command: /bin/true\n" for i in range(count))
    path = directory / "recipe.yml"
    path.write_text("name: bench\n" + ssh_source(server) + f"tasks:\n{tasks}")
    return path


def ansible_files(directory: Path, server: SshServer, count: int) -> tuple[Path, Path, Path]:
    inventory = directory / "inventory.ini"
    inventory.write_text(inventory_line("box", server))
    config = write_ansible_config(directory, directory)   # pipelining, a persistent master connection
    tasks = "".join(f"    - name: step {i}\n      command: /bin/true\n" for i in range(count))
    playbook = directory / "playbook.yml"
    playbook.write_text(f"- hosts: box\n  gather_facts: false\n  tasks:\n{tasks}")
    return inventory, config, playbook


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{command[0]} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    count = parser.parse_args().tasks
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        server = start_sshd(directory / "sshd")
        try:
            recipe = recipe_file(directory, server, count)
            inventory, config, playbook = ansible_files(directory, server, count)
            recipe_time = timed([str(BIN / "recipe"), "run", str(recipe)])
            env = {**os.environ, "ANSIBLE_CONFIG": str(config)}
            ansible_time = timed([str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)], env)
        finally:
            server.stop()
    print(f"tasks: {count} trivial tasks (command: /bin/true), one connection, local OpenSSH")
    print(f"recipe run:        {recipe_time:7.2f} s  ({recipe_time / count * 1000:6.1f} ms/task, whole command)")
    print(f"ansible-playbook:  {ansible_time:7.2f} s  ({ansible_time / count * 1000:6.1f} ms/task, pipelining)")
    print(f"ratio ansible/recipe: {ansible_time / recipe_time:.1f}x")


if __name__ == "__main__":
    main()

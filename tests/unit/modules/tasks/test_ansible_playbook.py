"""ansible_playbook runs the real ansible-playbook against a real OpenSSH server (tests/sshd.py), through the
build's own SshSession, as a build does: a role, a collection installed offline from a tarball by
`requirements`, a module recipe has no native version of, host key pinning, failures, check mode, tags,
secrets, cancellation and installing ansible-core."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.build.inventory import Inventory
from engine.build.taskmodule import Result, Subtask, TaskContext
from engine.errors import BuildError
from engine.registry import TASK_MODULES, load_plugins
from engine.remote.ssh import Endpoint, SshSession
from modules.tasks import _ansible_tool

GALAXY = Path(sys.executable).parent / "ansible-galaxy"
SECRET = "pl4ybook-S3cret/value"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGD4S+VRzP1OYHG00FjYHZejr44AX1yl/ALuRCFGtr4x"

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  vars: {ansible_python_interpreter: /usr/bin/python3}
  roles: [greeter]
  tasks:
    - name: Stamp with the collection's module
      acme.tools.stamp: {path: "{{ out }}/stamp", text: "{{ word }}"}
    - name: Pin a host in known_hosts
      ansible.builtin.known_hosts: {path: "{{ out }}/known_hosts", name: example.org, key: "example.org %s"}
      tags: [keys]
""" % OTHER_KEY

ROLE_TASKS = """\
- name: Greet
  ansible.builtin.copy: {content: "hello {{ word }}\\n", dest: "{{ out }}/greeting"}
"""

STAMP_MODULE = '''\
#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

def main():
    module = AnsibleModule(argument_spec={"path": {"type": "path", "required": True}, "text": {"type": "str"}},
                           supports_check_mode=True)
    path, text = module.params["path"], module.params["text"] + "\\n"
    try:
        with open(path) as stream:
            same = stream.read() == text
    except FileNotFoundError:
        same = False
    if not same and not module.check_mode:
        with open(path, "w") as stream:
            stream.write(text)
    module.exit_json(changed=not same)

main()
'''


def build_collection(root: Path) -> Path:
    """acme.tools 1.0.0 as a tarball, made by the real ansible-galaxy: what a team keeps in its repo."""
    source = root / "src" / "acme" / "tools"
    (source / "plugins" / "modules").mkdir(parents=True)
    (source / "galaxy.yml").write_text("namespace: acme\nname: tools\nversion: 1.0.0\nreadme: README.md\n"
                                       "authors: [recipe tests]\n")
    (source / "README.md").write_text("test collection\n")
    (source / "plugins" / "modules" / "stamp.py").write_text(STAMP_MODULE)
    subprocess.run([str(GALAXY), "collection", "build", str(source), "--output-path", str(root)], check=True,
                   capture_output=True)
    return root / "acme-tools-1.0.0.tar.gz"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A recipe's folder: the playbook, a role in its roles path, requirements naming the collection tarball."""
    if not GALAXY.exists():
        pytest.fail("ansible-core is not installed in the venv: run make test, which installs it")
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "shared-roles" / "greeter" / "tasks").mkdir(parents=True)
    (tmp_path / "shared-roles" / "greeter" / "tasks" / "main.yml").write_text(ROLE_TASKS)
    build_collection(tmp_path)
    (tmp_path / "requirements.yml").write_text("collections:\n  - name: ./acme-tools-1.0.0.tar.gz\n    type: file\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "work").mkdir()
    return tmp_path


class Run:
    """One ansible_playbook task run through a real SSH session, and what it showed."""

    def __init__(self, sshd: Any, root: Path):
        self.sshd, self.root = sshd, root
        self.started: list[str] = []
        self.ended: list[Subtask] = []
        self.output: list[str] = []

    def context(self, session: SshSession, check: bool) -> TaskContext:
        def find_file(src: str, kind: str) -> Path:
            path = self.root / src
            if not path.exists():
                raise BuildError(f"file {src!r} not found")
            return path

        return TaskContext(connection=session, check=check, become=None, find_file=find_file,
                           render_text=lambda text, **_: text, output=lambda _stream, line: self.output.append(line),
                           subtask_started=self.started.append, subtask_ended=self.ended.append,
                           inventory=Inventory("box"), work_dir=self.root / "work")

    async def run(self, args: dict[str, Any], check: bool = False, host_key: str | None = None) -> Result:
        load_plugins()
        self.started.clear()
        self.ended.clear()
        session = SshSession(Endpoint(self.sshd.host, self.sshd.port, self.sshd.user, str(self.sshd.client_key),
                                      host_key=self.sshd.host_public_key))
        await session.connect(30)
        if host_key:    # as if the machine had presented (and recipe had pinned) another key
            session.server_host_key = lambda: host_key
        try:
            module = TASK_MODULES.get("ansible_playbook")
            return await module().run(module.params(args), self.context(session, check))
        finally:
            await session.close()

    def __call__(self, args: dict[str, Any], **kwargs: Any) -> Result:
        return asyncio.run(self.run(args, **kwargs))

    def statuses(self) -> list[tuple[str, str]]:
        return [(step.name, step.status) for step in self.ended]


def args(project: Path, **more: Any) -> dict[str, Any]:
    return {"playbook": "site.yml", "roles_path": ["shared-roles"], "requirements": "requirements.yml",
            "extra_vars": {"out": str(project / "out"), "word": "world"}, **more}


def ssh_masters() -> list[str]:
    found = subprocess.run(["pgrep", "-af", "ssh: .*ansible"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def test_a_role_a_collection_and_a_module_recipe_lacks_run_then_are_idempotent(sshd, project):
    run = Run(sshd, project)
    first = run(args(project))
    assert not first.failed, first.msg
    assert first.changed and first.rc == 0
    assert run.statuses() == [("greeter : Greet", "changed"), ("Stamp with the collection's module", "changed"),
                              ("Pin a host in known_hosts", "changed")]
    assert run.started == ["greeter : Greet", "Stamp with the collection's module", "Pin a host in known_hosts"]
    assert (project / "out" / "greeting").read_text() == "hello world\n"
    assert (project / "out" / "stamp").read_text() == "world\n"
    assert "example.org ssh-ed25519" in (project / "out" / "known_hosts").read_text()
    assert first.data["ansible_stats"] == {"ok": 0, "changed": 3, "skipped": 0, "failed": 0}
    assert any("PLAY RECAP" in line for line in run.output)      # Ansible's own output, streamed

    second = run(args(project))
    assert not second.failed and not second.changed
    assert [status for _, status in run.statuses()] == ["ok", "ok", "ok"]
    assert list((project / "work").iterdir()) == []               # the private folder went
    assert ssh_masters() == []                                     # and no ssh connection master stayed


def test_a_failing_ansible_task_fails_the_task_with_its_name_and_line(sshd, project):
    (project / "site.yml").write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                                      "    - name: Fine\n      ansible.builtin.debug: {msg: fine}\n"
                                      "    - name: Breaks here\n      ansible.builtin.fail: {msg: the disk is full}\n"
                                      "    - name: Never runs\n      ansible.builtin.debug: {msg: never}\n")
    run = Run(sshd, project)
    result = run({"playbook": "site.yml"})
    assert result.failed and result.rc == 2
    assert result.msg == "Ansible task 'Breaks here' failed (site.yml:6): the disk is full"
    assert run.statuses() == [("Fine", "ok"), ("Breaks here", "failed")]


def test_a_playbook_ansible_refuses_fails_with_ansibles_words(sshd, project):
    (project / "site.yml").write_text("- hosts: all\n  tasks:\n    - name: Unknown\n      no.such.module: {}\n")
    result = Run(sshd, project)({"playbook": "site.yml"})
    assert result.failed and result.rc == 4
    assert "ansible-playbook exited with 4" in result.msg and "no.such.module" in result.msg


def test_a_host_key_other_than_the_pinned_one_is_refused(sshd, project):
    run = Run(sshd, project)
    result = run(args(project), host_key=OTHER_KEY)
    assert result.failed
    assert "Host key verification failed" in result.msg
    assert not (project / "out" / "greeting").exists()
    assert run.statuses()[0][1] == "failed"


def test_check_mode_and_tags_pass_through(sshd, project):
    run = Run(sshd, project)
    checked = run(args(project), check=True)
    assert not checked.failed and checked.changed
    assert list((project / "out").iterdir()) == []          # --check: nothing written
    tagged = run(args(project, tags=["keys"]))
    assert run.statuses() == [("Pin a host in known_hosts", "changed")]
    assert not tagged.failed and [p.name for p in (project / "out").iterdir()] == ["known_hosts"]
    run(args(project, skip_tags=["keys"]))
    assert [name for name, _ in run.statuses()] == ["greeter : Greet", "Stamp with the collection's module"]


def test_extra_vars_never_reach_a_command_line(sshd, project):
    """Every process's command line is read while the playbook runs: the secret is in none of them."""
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for pid in os.listdir("/proc"):
                try:
                    seen.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
                except (OSError, ValueError):
                    pass
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = Run(sshd, project)(args(project, extra_vars={"out": str(project / "out"), "word": SECRET}))
    finally:
        done.set()
        watcher.join()
    assert not result.failed, result.msg
    assert (project / "out" / "greeting").read_text() == f"hello {SECRET}\n"    # it did reach the playbook
    assert any("ansible-playbook" in line for line in seen)                   # the watcher saw the run
    assert not [line for line in seen if SECRET in line]


def test_a_cancelled_run_leaves_nothing_running(sshd, project):
    (project / "site.yml").write_text("- hosts: all\n  gather_facts: false\n"
                                      "  vars: {ansible_python_interpreter: /usr/bin/python3}\n  tasks:\n"
                                      "    - name: Long\n      ansible.builtin.command: sleep 120\n")
    run = Run(sshd, project)

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(run.run({"playbook": "site.yml"}))
        while not run.started:
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)          # the module is running on the target
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    time.sleep(1)
    assert subprocess.run(["pgrep", "-f", "ansible-playbook .*site.yml"], capture_output=True).returncode == 1
    assert subprocess.run(["pgrep", "-fx", "sleep 120"], capture_output=True).returncode == 1
    assert ssh_masters() == []
    assert list((project / "work").iterdir()) == []


def test_without_ansible_anywhere_the_task_says_how_to_get_it(sshd, project, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BuildError) as failure:
        Run(sshd, project)({"playbook": "site.yml"})
    assert "ansible-playbook is not installed" in failure.value.message
    assert "install: true" in failure.value.hint


def test_an_ansible_version_not_installed_is_installed_once_under_the_cache(sshd, project, monkeypatch, tmp_path):
    """pip really installs ansible-core 2.18 from the package index into <cache>/ansible/core-2.18."""
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "cache"))
    run = Run(sshd, project)
    result = run(args(project, ansible_version="2.18"))
    assert not result.failed, result.msg
    assert result.data["ansible_version"].startswith("2.18.")
    assert f"installed by recipe at {tmp_path / 'cache' / 'ansible' / 'core-2.18'}" in result.msg
    assert any("installing ansible-core==2.18.*" in line for line in run.output)
    again = asyncio.run(_ansible_tool.find_ansible("2.18", False, print))
    assert not again.installed_now and again.playbook.is_relative_to(tmp_path / "cache")

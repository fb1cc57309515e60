"""The ansible_playbook task through the real `recipe run`, against a real OpenSSH server: the Ansible tasks
appear as recipe task events and in the recap, a secret given in extra_vars is masked in every output (console,
--json, build.log), and a failing Ansible task fails the build naming the task and its file:line."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.test_ssh_platform import RECIPE, SECRET, recap, run, source_block

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  vars: {ansible_python_interpreter: /usr/bin/python3}
  tasks:
    - name: Keep the token
      ansible.builtin.copy: {content: "{{ token }}\\n", dest: "{{ out }}/token", mode: "0600"}
    - name: Say it (recipe masks it)
      ansible.builtin.debug: {msg: "the token is {{ token }}"}
    - name: Only with the flag
      ansible.builtin.command: touch {{ out }}/flag
      when: flag | default(false) | bool
"""

RECIPE_TEXT = """\
name: play
vars:
  api_token: {secret}
secrets: [api_token]
{source}
tasks:
  - name: Apply the playbook
    ansible_playbook:
      playbook: site.yml
      extra_vars: {{out: "{out}", token: "{{{{ api_token }}}}"}}
"""


def make(tmp_path: Path, sshd, playbook: str = PLAYBOOK) -> tuple[Path, Path]:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "site.yml").write_text(playbook)
    recipe = tmp_path / "play.yml"
    recipe.write_text(RECIPE_TEXT.format(secret=SECRET, source=source_block(sshd), out=out))
    return recipe, out


def test_ansible_tasks_are_recipe_tasks_and_the_secret_stays_masked(tmp_path, sshd):
    recipe, out = make(tmp_path, sshd)
    events = tmp_path / "events.jsonl"
    result = run(recipe, "-v", "--json", str(events), "--output-dir", str(tmp_path / "output"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "token").read_text() == f"{SECRET}\n"
    ends = [e for e in map(json.loads, events.read_text().splitlines()) if e["event"] == "task.end"]
    assert [(e["task"], e["status"]) for e in ends] == [
        ("Apply the playbook > Keep the token", "changed"), ("Apply the playbook > Say it (recipe masks it)", "ok"),
        ("Apply the playbook > Only with the flag", "skipped"), ("Apply the playbook", "changed")]
    assert ends[0]["where"].endswith("site.yml:5")
    assert recap(result.stdout) == {"ok": 1, "changed": 2, "skipped": 1, "failed": 0}
    log = (tmp_path / "output" / "play-box" / "build.log").read_text()
    assert "the token is ********" in result.stdout and "Keep the token" in log
    for text in (result.stdout, result.stderr, events.read_text(), log):
        assert SECRET not in text


def test_a_failing_ansible_task_fails_the_build_naming_it(tmp_path, sshd):
    recipe, _ = make(tmp_path, sshd, PLAYBOOK + "    - name: Refuse\n      ansible.builtin.fail: {msg: no space}\n")
    result = run(recipe)
    assert result.returncode == 1
    assert "Ansible task 'Refuse' failed (site.yml:12): no space" in result.stdout
    assert f"{recipe}:11:5" in result.stdout          # and recipe's own task, where the recipe names it


def test_validate_reports_a_missing_playbook(tmp_path, sshd):
    recipe, _ = make(tmp_path, sshd)
    (tmp_path / "site.yml").unlink()
    checked = subprocess.run([RECIPE, "validate", str(recipe)], capture_output=True, text=True)
    assert checked.returncode == 2
    assert f"{recipe}:13:17" in checked.stderr + checked.stdout
    assert "'site.yml' not found" in checked.stderr + checked.stdout

"""`recipe shell` against a real OpenSSH server: the tasks up to the one named run, the shell (or a command)
runs after them through the system's ssh client, and its exit code is recipe's."""
from __future__ import annotations

import subprocess

from .test_ssh_platform import RECIPE, source_block

SHELL_RECIPE = """\
name: shelled
vars:
  root: {root}
{source}
tasks:
  - name: first
    copy: {{content: "one\\n", dest: "{{{{ root }}}}/one"}}
  - name: second
    copy: {{content: "two\\n", dest: "{{{{ root }}}}/two"}}
    notify: noted
  - name: third
    copy: {{content: "three\\n", dest: "{{{{ root }}}}/three"}}
handlers:
  - name: noted
    copy: {{content: "handled\\n", dest: "{{{{ root }}}}/handled"}}
"""


def shell(recipe, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RECIPE, "shell", str(recipe), *args], capture_output=True, text=True, timeout=120)


def test_a_command_runs_after_the_named_task_and_its_exit_code_is_recipes(sshd, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    recipe = tmp_path / "shelled.yml"
    recipe.write_text(SHELL_RECIPE.format(root=root, source=source_block(sshd)))
    result = shell(recipe, "--at", "second", "--", f"cat {root}/one {root}/two; ls {root}; exit 4")
    assert result.returncode == 4, result.stderr
    assert result.stdout.splitlines() == ["one", "two", "one", "two"]     # no third, no handler flushed
    assert "changed  second" in result.stderr
    by_number = shell(recipe, "--at", "3", "--", "ls", str(root))
    assert by_number.returncode == 0 and by_number.stdout.split() == ["one", "three", "two"]


def test_a_task_the_recipe_does_not_have_is_an_error_listing_those_it_has(sshd, tmp_path):
    recipe = tmp_path / "shelled.yml"
    recipe.write_text(SHELL_RECIPE.format(root=tmp_path, source=source_block(sshd)))
    result = shell(recipe, "--at", "fourth")
    assert result.returncode == 2
    assert result.stderr == ("error: --at: no top-level task 'fourth' in shelled.yml "
                             "(hint: a name or a number: 1: first; 2: second; 3: third)\n")
    assert not any(tmp_path.glob("one"))

"""Handlers and play keywords as Ansible runs them, over a real sshd: a notified handler runs whatever --tags
selects (Ansible runs every notified handler, tagged or not); a `meta: flush_handlers` whose `when` is false is
skipped and flushes nothing; a play's `tags` reach every task; `force_handlers` runs what was notified when a
task fails."""
from __future__ import annotations

import json

from tests.integration.test_ssh_platform import run, source_block

RECIPE = """\
name: handlers
{source}
tasks:
  - name: tagged change
    command: "true"
    notify: untagged handler
    tags: [x]
  - name: flush, but not now
    meta: flush_handlers
    when: false
    tags: [x]
  - name: before the end of the play
    command: "true"
    changed_when: false
    tags: [x]
handlers:
  - name: untagged handler
    command: "true"
"""


def test_an_untagged_handler_runs_under_tags_and_a_false_flush_is_skipped(sshd, tmp_path):
    recipe = tmp_path / "handlers.yml"
    recipe.write_text(RECIPE.format(source=source_block(sshd)))
    events = tmp_path / "events.jsonl"
    result = run(recipe, "--tags", "x", "--json", str(events), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    ends = [json.loads(line) for line in events.read_text().splitlines() if '"task.end"' in line]
    assert [(e["task"], e["status"]) for e in ends] == [
        ("tagged change", "changed"), ("flush, but not now", "skipped"), ("before the end of the play", "ok"),
        ("untagged handler", "changed")]


FORCED = """\
name: forced
tags: [outer]            # a play's tags: every task has them
force_handlers: true     # what was notified runs even though a task fails the build
{source}
tasks:
  - name: a change
    command: "true"
    notify: the handler
  - name: a failure
    fail: {{msg: on purpose}}
handlers:
  - name: the handler
    command: "true"
"""


def test_play_tags_and_force_handlers(sshd, tmp_path):
    recipe = tmp_path / "forced.yml"
    recipe.write_text(FORCED.format(source=source_block(sshd)))
    events = tmp_path / "events.jsonl"
    result = run(recipe, "--tags", "outer", "--json", str(events), "--output-dir", str(tmp_path / "out"))
    assert result.returncode != 0
    ends = [json.loads(line) for line in events.read_text().splitlines() if '"task.end"' in line]
    assert [(e["task"], e["status"]) for e in ends] == [
        ("a change", "changed"), ("a failure", "failed"), ("the handler", "changed")]


def test_force_handlers_on_the_command_line(sshd, tmp_path):
    """--force-handlers does what the recipe's force_handlers does, as ansible-playbook's does; without it,
    a failure leaves the handler unrun."""
    recipe = tmp_path / "unforced.yml"
    recipe.write_text(FORCED.format(source=source_block(sshd)).replace("force_handlers: true", "gather_facts: false"))
    for flags, handled in (([], []), (["--force-handlers"], [("the handler", "changed")])):
        events = tmp_path / f"events{len(flags)}.jsonl"
        result = run(recipe, *flags, "--json", str(events), "--output-dir", str(tmp_path / f"out{len(flags)}"))
        assert result.returncode != 0
        ends = [json.loads(line) for line in events.read_text().splitlines() if '"task.end"' in line]
        assert [(e["task"], e["status"]) for e in ends] == [("a change", "changed"), ("a failure", "failed"),
                                                            *handled]

"""Recipes run through the real `recipe` command against a real OpenSSH server on 127.0.0.1.

Every file a recipe writes stays under a per-test directory (`root`).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RECIPE = str(Path(sys.executable).parent / "recipe")
SECRET = "s3cr3t-T0ken/with+chars"


def source_block(sshd, **ssh_extra) -> str:
    ssh = {"host": sshd.host, "port": sshd.port, "user": sshd.user, "private_key_file": str(sshd.client_key),
           "host_key": sshd.host_public_key, **ssh_extra}
    return "sources:\n  box:\n    platform: ssh\n    ssh: " + json.dumps(ssh) + "\n"


def run(recipe: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([RECIPE, "run", str(recipe), *args], capture_output=True, text=True, timeout=timeout)


def recap(output: str) -> dict[str, int]:
    line = next(l[l.index("==> "):] for l in output.splitlines()    # after the time, when not on a terminal
                if "==> " in l and ("succeeded" in l or "failed" in l))
    return {k: int(v) for k, v in (part.split("=") for part in line.split()[1:] if "=" in part)}


FULL = """\
name: full
vars:
  root: {root}
  greeting: "hello from {{{{ build.source }}}}"
  users: [ann, bob]
  api_token: {secret}
secrets: [api_token]
{source}
tasks:
  - name: Directory
    file: {{path: "{{{{ root }}}}/site", state: directory, mode: "0755"}}
  - name: Page
    copy: {{content: "{{{{ greeting }}}}\\n", dest: "{{{{ root }}}}/site/index.html", mode: "0644"}}
    notify: reload
  - name: Config from a template
    template: {{src: conf.j2, dest: "{{{{ root }}}}/site/app.conf"}}
    notify: [reload, count]
  - name: One file per user
    copy: {{content: "{{{{ item }}}}\\n", dest: "{{{{ root }}}}/site/user-{{{{ item }}}}"}}
    loop: "{{{{ users }}}}"
    notify: reload
  - name: A line
    lineinfile: {{path: "{{{{ root }}}}/site/settings.conf", regexp: "^port=", line: "port=8080", create: true}}
  - name: A block
    blockinfile: {{path: "{{{{ root }}}}/site/settings.conf", block: "a=1\\nb=2"}}
  - name: Secret file
    copy: {{content: "token={{{{ api_token }}}}\\n", dest: "{{{{ root }}}}/site/token", mode: "0600"}}
  - name: Print the secret (it must be masked)
    debug: {{msg: "the token is {{{{ api_token }}}} / {{{{ api_token | b64encode }}}}"}}
  - name: Read it back
    command: cat {{{{ root }}}}/site/token
    register: token_file
    changed_when: false
  - name: Show what was read
    debug: {{msg: "{{{{ token_file.stdout }}}}"}}
  - name: Facts are there
    copy: {{content: "{{{{ facts.os_family }}}} {{{{ facts.arch }}}} {{{{ facts.user }}}}\\n", dest: "{{{{ root }}}}/site/facts"}}
  - name: Skipped on purpose
    shell: touch {{{{ root }}}}/never
    when: facts.arch == "no-such-arch"
  - name: Only elsewhere
    shell: touch {{{{ root }}}}/never2
    except: [box]
  - name: set a fact
    set_fact: {{answer: 42}}
  - name: use it
    copy: {{content: "{{{{ answer + 1 }}}}\\n", dest: "{{{{ root }}}}/site/answer"}}
  - name: As another user
    command: id -un
    become: true
    become_user: nobody
    register: who
    changed_when: false
    failed_when: who.stdout.strip() != "nobody"
  - name: Retries until a condition holds
    shell: n=$(cat {{{{ root }}}}/counter 2>/dev/null || echo 0); echo $((n+1)) > {{{{ root }}}}/counter; cat {{{{ root }}}}/counter
    register: counter
    until: counter.stdout | int >= 3
    retries: 5
    delay: 0
    changed_when: false
  - block:
      - shell: exit 3
    rescue:
      - copy: {{content: "rescued\\n", dest: "{{{{ root }}}}/site/rescued"}}
    always:
      - copy: {{content: "always\\n", dest: "{{{{ root }}}}/site/always"}}
handlers:
  - name: reload
    shell: echo x >> {{{{ root }}}}/reloads
  - name: count
    shell: echo y >> {{{{ root }}}}/counts
"""


@pytest.fixture
def full_recipe(tmp_path, sshd):
    root = tmp_path / "root"
    root.mkdir()
    os.chmod(root, 0o777)    # the `nobody` task only reads, but keep the tree reachable
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "conf.j2").write_text("name={{ build.recipe }}\nsource={{ build.source }}\n")
    recipe = tmp_path / "full.yml"
    recipe.write_text(FULL.format(root=root, secret=SECRET, source=source_block(sshd)))
    return recipe, root


def test_full_recipe_then_idempotent_second_run(full_recipe, tmp_path):
    recipe, root = full_recipe
    events = tmp_path / "events.jsonl"
    first = run(recipe, "--json", str(events))
    assert first.returncode == 0, first.stdout + first.stderr
    site = root / "site"
    assert (site / "index.html").read_text() == "hello from box\n"
    assert oct((site / "index.html").stat().st_mode & 0o777) == "0o644"
    assert (site / "user-ann").read_text() == "ann\n" and (site / "user-bob").read_text() == "bob\n"
    assert (site / "app.conf").read_text() == "name=full\nsource=box\n"
    settings = (site / "settings.conf").read_text()
    assert settings.startswith("port=8080\n")
    assert "a=1\nb=2\n" in settings and "BEGIN ANSIBLE MANAGED BLOCK" in settings
    assert (site / "token").read_text() == f"token={SECRET}\n"
    assert oct((site / "token").stat().st_mode & 0o777) == "0o600"
    family, arch, user = (site / "facts").read_text().split()
    assert family == "debian" and arch == os.uname().machine and user == "root"
    assert (site / "answer").read_text() == "43"      # Ansible's native types: "{{ n + 1 }}\\n" is the number, no newline
    assert (root / "counter").read_text() == "3\n"
    assert (site / "rescued").exists() and (site / "always").exists()
    assert not (root / "never").exists() and not (root / "never2").exists()
    # handlers ran once each, though notified by several tasks
    assert (root / "reloads").read_text() == "x\n"
    assert (root / "counts").read_text() == "y\n"
    counts = recap(first.stdout)
    assert counts["failed"] == 1 and counts["changed"] >= 10   # the rescued `exit 3`

    second = run(recipe)
    assert second.returncode == 0, second.stdout + second.stderr
    again = recap(second.stdout)
    assert again["changed"] == 0, second.stdout
    assert (root / "reloads").read_text() == "x\n", "no handler runs when nothing changed"


def test_secret_never_appears_in_any_output(full_recipe, tmp_path):
    recipe, _ = full_recipe
    events = tmp_path / "events.jsonl"
    result = run(recipe, "--json", str(events), "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    import base64
    for text in (result.stdout, result.stderr, events.read_text()):
        assert SECRET not in text
        assert base64.b64encode(SECRET.encode()).decode() not in text
    assert "********" in result.stdout
    for verb in ("render", "inspect"):
        shown = subprocess.run([RECIPE, verb, str(recipe)], capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        assert SECRET not in shown.stdout + shown.stderr


def test_check_mode_changes_nothing(full_recipe):
    recipe, root = full_recipe
    result = run(recipe, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(root.iterdir()) == [], "check mode must not touch the target"
    assert recap(result.stdout)["changed"] >= 5   # it still says what would change


def test_json_events_carry_every_task(full_recipe, tmp_path):
    recipe, _ = full_recipe
    events = tmp_path / "events.jsonl"
    assert run(recipe, "--json", str(events)).returncode == 0
    lines = [json.loads(l) for l in events.read_text().splitlines()]
    ends = [e for e in lines if e["event"] == "task.end"]
    assert {e["status"] for e in ends} >= {"ok", "changed", "skipped", "failed"}
    assert all(e["build"] == "full-box" and "duration" in e for e in ends)
    assert lines[-1]["event"] == "run.end"


def write_recipe(tmp_path: Path, text: str) -> Path:
    recipe = tmp_path / "r.yml"
    recipe.write_text(text)
    return recipe


def test_failed_task_exits_1_and_names_its_line(tmp_path, sshd):
    recipe = write_recipe(tmp_path, "name: fails\n" + source_block(sshd) +
                          "tasks:\n  - shell: 'true'\n  - name: Broken\n    shell: echo oops >&2; exit 4\n"
                          "  - shell: touch " + str(tmp_path / "not-reached") + "\n")
    result = run(recipe)
    assert result.returncode == 1
    assert "r.yml:8:5" in result.stdout and "oops" in result.stdout
    assert not (tmp_path / "not-reached").exists()
    assert "Traceback" not in result.stdout + result.stderr


def test_wrong_host_key_is_refused(tmp_path, sshd):
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm7eNQ6AozsPqcKGhH3ux1aX1VUcRjA4rCcY7yzpIbT"
    recipe = write_recipe(tmp_path, "name: mitm\n" + source_block(sshd, host_key=other, connect_timeout=3) +
                          "tasks:\n  - shell: touch " + str(tmp_path / "ran") + "\n")
    result = run(recipe)
    assert result.returncode == 1
    assert "host key" in result.stdout
    assert not (tmp_path / "ran").exists()


def test_unreachable_host_fails_within_the_timeout(tmp_path, sshd):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    recipe = write_recipe(tmp_path, "name: gone\n" + source_block(sshd, port=closed_port, connect_timeout=2) +
                          "tasks:\n  - shell: 'true'\n")
    started = time.monotonic()
    result = run(recipe)
    assert result.returncode == 1
    assert time.monotonic() - started < 20
    assert "could not connect" in result.stdout and "refused" in result.stdout.lower()


@pytest.mark.parametrize("signum, become", [(signal.SIGINT, ""), (signal.SIGTERM, ""),
                                           (signal.SIGINT, "    become: true\n")],
                         ids=["SIGINT", "SIGTERM", "SIGINT-become"])
def test_interrupt_mid_task_cleans_up_and_exits_130(tmp_path, sshd, signum, become):
    """With become the command runs under sudo, whose group holds it; dash's kill must reach it too."""
    marker = tmp_path / "started"
    recipe = write_recipe(tmp_path, "name: slow\n" + source_block(sshd) +
                          f"tasks:\n  - shell: touch {marker}; sleep 60\n" + become)
    process = subprocess.Popen([RECIPE, "run", str(recipe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the task never started"
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, out + err
    assert "cleanup: ssh connection" in out and "interrupted" in out
    assert "Traceback" not in out + err
    left = subprocess.run(["pgrep", "-f", f"touch {marker}; sleep 60"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the interrupted remote command must not keep running"


def test_secret_in_a_failure_is_masked(tmp_path, sshd):
    recipe = write_recipe(tmp_path, "name: leak\nvars: {pw: " + SECRET + "}\nsecrets: [pw]\n" + source_block(sshd) +
                          "tasks:\n  - shell: echo \"bad {{ pw }}\" >&2; exit 1\n")
    events = tmp_path / "events.jsonl"
    result = run(recipe, "--json", str(events))
    assert result.returncode == 1
    assert "bad ********" in result.stdout
    for text in (result.stdout, result.stderr, events.read_text()):
        assert SECRET not in text


def test_on_error_abort_says_what_it_left(tmp_path, sshd):
    recipe = write_recipe(tmp_path, "name: abort\n" + source_block(sshd) + "tasks:\n  - shell: exit 1\n")
    result = run(recipe, "--on-error", "abort")
    assert result.returncode == 1
    assert "left in place: ssh connection" in result.stdout
    assert "cleanup:" not in result.stdout


def test_flush_handlers_runs_them_before_later_tasks(tmp_path, sshd):
    log = tmp_path / "order"
    recipe = write_recipe(tmp_path, "name: flush\n" + source_block(sshd) +
                          f"tasks:\n  - shell: echo task1 >> {log}\n    notify: h\n"
                          f"  - meta: flush_handlers\n  - shell: echo task2 >> {log}\n"
                          f"handlers:\n  - name: h\n    shell: echo handler >> {log}\n")
    result = run(recipe)
    assert result.returncode == 0, result.stdout
    assert log.read_text() == "task1\nhandler\ntask2\n"


DROP = "kill -9 $(ps -o ppid= -p $PPID)"      # the sshd process serving this connection: the link drops


def test_a_dropped_connection_fails_the_task_clearly(tmp_path, sshd):
    recipe = write_recipe(tmp_path, "name: drop\n" + source_block(sshd) +
                          f"tasks:\n  - shell: sleep 0.5; {DROP}; sleep 5\n")
    result = run(recipe)
    assert result.returncode == 1
    assert f"connection to root@127.0.0.1:{sshd.port} lost while the command ran" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_task_with_retries_reconnects_after_a_drop_and_carries_on(tmp_path, sshd):
    dropped, after = tmp_path / "dropped", tmp_path / "after"
    recipe = write_recipe(tmp_path, "name: drop\n" + source_block(sshd) + "tasks:\n"
                          f"  - shell: test -e {dropped} || {{ touch {dropped}; {DROP}; sleep 5; }}\n"
                          "    retries: 2\n    delay: 0.5\n"
                          f"  - shell: touch {after}\n")
    result = run(recipe)
    assert result.returncode == 0, result.stdout + result.stderr
    assert dropped.exists() and after.exists()
    assert "was lost; reconnecting" in result.stdout

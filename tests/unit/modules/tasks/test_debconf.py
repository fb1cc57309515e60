"""debconf against stand-ins for debconf-show, -get-selections and -set-selections on PATH that keep their
database in tmp_path; real Ansible, in check mode on this machine's real (read-only) tzdata answers, is the
oracle for what is reported."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import voluptuous as vol

from modules.tasks.debconf import parse_show, password_of

SECRET = "s3cr3t-pw"


@pytest.fixture
def db(tmp_path, monkeypatch):
    """One line per answer: package, question, type, value, tab-separated, as debconf-get-selections prints."""
    path, bin_dir = tmp_path / "db", tmp_path / "bin"
    path.write_text("mysql-server\tmysql-server/root_password\tpassword\t\n"
                    "tzdata\ttzdata/Areas\tselect\tEtc\nlocales\tlocales/locales_to_be_generated\tmultiselect\t"
                    "en_US.UTF-8 UTF-8, de_CH.UTF-8 UTF-8\nx\tx/enable\tboolean\tFalse\n")
    bin_dir.mkdir()
    scripts = {
        "debconf-show": (f'awk -F "\\t" -v p="$1" \'$1 == p {{ v = ($3 == "password") ? "(password omitted)" : $4;'
                         f' print "* " $2 ": " v }}\' {path}\n'),
        "debconf-get-selections": f"cat {path}\n",
        "debconf-set-selections": (f'echo "$*" > {tmp_path}/argv\nread -r p q t v\n'
                                   f'grep -v "^$p\t$q\t" {path} > {path}.new; printf "%s\\t%s\\t%s\\t%s\\n" '
                                   f'"$p" "$q" "$t" "$v" >> {path}.new; mv {path}.new {path}\n'),
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return path


def test_a_select_answer_check_mode_change_and_second_run(h, db):
    args = {"name": "tzdata", "question": "tzdata/Areas", "vtype": "select", "value": "Europe"}
    checked = h.run("debconf", args, check=True)
    assert checked.changed and "Europe" not in db.read_text()
    assert checked.data["current"] == {"tzdata/Areas": "Europe"} and checked.data["previous"] == {
        "tzdata/Areas": "Etc"}
    assert h.run("debconf", args).changed and "tzdata\ttzdata/Areas\tselect\tEurope\n" in db.read_text()
    again = h.run("debconf", args)
    assert again.status == "ok" and again.data["current"] == {"tzdata/Areas": "Europe"}


def test_booleans_multiselect_and_unseen(h, db, tmp_path):
    assert h.run("debconf", {"name": "x", "question": "x/enable", "vtype": "boolean", "value": False}).status == "ok"
    assert h.run("debconf", {"name": "locales", "question": "locales/locales_to_be_generated",
                             "vtype": "multiselect",
                             "value": ["de_CH.UTF-8 UTF-8", "en_US.UTF-8 UTF-8"]}).status == "ok"
    new = h.run("debconf", {"pkg": "x", "setting": "x/other", "vtype": "string", "answer": 42, "unseen": True})
    assert new.changed and new.data["previous"] == {"x/other": ""} and (tmp_path / "argv").read_text() == "-u\n"


def test_a_password_is_compared_set_by_stdin_and_masked(h, db, tmp_path):
    args = {"name": "mysql-server", "question": "mysql-server/root_password", "vtype": "password", "value": SECRET}
    result = h.run("debconf", args)
    assert result.changed and f"\t{SECRET}\n" in db.read_text()
    assert SECRET not in json.dumps(result.as_register()) + result.diff + result.msg
    assert all(SECRET not in script for script in h.connection.scripts)        # never on a command line
    assert h.run("debconf", args).status == "ok"


def test_bad_input(h):
    with pytest.raises(vol.Invalid, match="go together"):
        h.params("debconf", {"name": "tzdata", "question": "tzdata/Areas"})
    with pytest.raises(vol.Invalid):
        h.params("debconf", {"name": "tzdata", "question": "q", "vtype": "integer", "value": "1"})


def test_parsers():
    assert parse_show("* a/b: x: y\n  c/d:\n") == {"a/b": "x: y", "c/d": ""}
    assert password_of("p\tp/q\tpassword\tpw\n", "p", "p/q", "password") == "pw"
    assert password_of("other\tq\tstring\tv\n", "p", "p/q", "password") is None


def ansible_check(module: str, args: dict) -> dict:
    """Real Ansible in check mode: it reads this machine's debconf database and changes nothing."""
    ansible = Path(sys.executable).parent / "ansible"
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    done = subprocess.run([str(ansible), "localhost", "-c", "local", "-o", "--check", "-m", module, "-a",
                           json.dumps(args)], capture_output=True, text=True, timeout=300, env=env)
    line = next(line for line in done.stdout.splitlines() if line.startswith("localhost | "))
    return json.loads(line.split(" => ", 1)[1])


@pytest.mark.skipif(not shutil.which("debconf-show"), reason="needs debconf")
@pytest.mark.parametrize("value", ["Etc", "Europe"])
def test_ansible_agrees_on_this_machines_answers(h, value):
    args = {"name": "tzdata", "question": "tzdata/Areas", "vtype": "select", "value": value}
    oracle = ansible_check("debconf", args)
    ours = h.run("debconf", args, check=True)
    assert ours.changed == oracle["changed"]
    assert ours.data["current"] == oracle["current"] and ours.data.get("previous") == oracle.get("previous")

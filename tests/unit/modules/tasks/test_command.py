import os
import re

import pytest
import voluptuous as vol

from engine.errors import BuildError
from tests.unit.modules.tasks.conftest import ansible_module, leftovers


def test_command_free_form_runs_without_a_shell(h):
    result = h.run("command", "printf '%s|%s|%s' '*' 'a b' '$(id)'")
    assert result.status == "changed" and result.rc == 0
    assert result.stdout == "*|a b|$(id)"           # no globs, no substitution: the words reach printf as written
    assert ("stdout", "*|a b|$(id)") in h.output     # and the output streamed while it ran


def test_command_expands_variables_and_tilde_as_ansible(h):
    home = os.environ["HOME"]
    result = h.run("command", "printf '%s|%s|%s|%s' $HOME ~/x ${NO_SUCH_VAR}y `id`")
    assert result.stdout == f"{home}|{home}/x|${{NO_SUCH_VAR}}y|`id`"    # as os.path.expandvars leaves them
    literal = h.run("command", {"cmd": "printf '%s' $HOME", "expand_argument_vars": "no"})
    assert literal.stdout == "$HOME"


def test_command_argv_quotes_every_word(h, target):
    result = h.run("command", {"argv": ["touch", "with space;rm -rf x", 42], "chdir": str(target)})
    assert result.changed and (target / "with space;rm -rf x").exists() and (target / "42").exists()


def test_command_failure_reports_rc_and_stderr(h):
    result = h.run("command", {"argv": ["sh", "-c", "echo early; echo broken pipe >&2; exit 3"]})
    assert result.failed and result.rc == 3
    assert "rc 3" in result.msg and "broken pipe" in result.msg
    assert result.as_register()["stderr_lines"] == ["broken pipe"]


def test_a_program_that_cannot_run_fails_as_in_ansible(h, target):
    """Ansible runs the program itself: the OS error is the rc (2: not found, 13: not executable), no output,
    not changed, 'Error executing command.'; a shell would have said 127."""
    (target / "plain").write_text("not a program")
    for command, rc in (("no-such-program-here", 2), ("/no/such/dir/program x", 2), (f"{target}/plain", 13),
                        (str(target), 13)):
        result = h.run("command", command)
        mine = result.as_register()
        theirs = ansible_module("command", {"cmd": command})
        assert (result.failed, result.rc, result.changed, mine["msg"]) == (True, rc, False, "Error executing command.")
        assert {k: theirs[k] for k in ("rc", "msg", "cmd", "changed", "stdout")} == \
            {k: mine[k] for k in ("rc", "msg", "cmd", "changed", "stdout")}
    assert h.run("command", "echo found in PATH").stdout == "found in PATH"


def test_command_creates_makes_it_idempotent(h, target):
    args = {"cmd": "touch made", "chdir": str(target), "creates": "made"}
    assert h.run("command", args).changed
    again = h.run("command", args)
    assert again.status == "ok" and again.msg == "Did not run command since 'made' exists" and again.rc == 0
    assert again.as_register()["stdout"] == "skipped, since made exists" and again.data["delta"] is None
    assert len(h.connection.scripts) == 1           # guard and command in one round trip


def test_command_creates_is_a_glob_never_executed(h, target):
    (target / "dir with space").mkdir()
    (target / "dir with space" / "x.conf").write_text("")
    pattern = str(target / "dir with space" / "*.conf")
    assert h.run("command", {"cmd": "false", "creates": pattern}).status == "ok"
    evil = str(target / "$(touch pwned)*")
    assert h.run("command", {"cmd": "true", "creates": evil}).changed
    assert not (target / "pwned").exists()


def test_command_removes(h, target):
    assert h.run("command", {"cmd": "false", "removes": str(target / "gone")}).status == "ok"
    (target / "here").write_text("")
    assert h.run("command", {"argv": ["rm", str(target / "here")], "removes": str(target / "here")}).changed
    assert not (target / "here").exists()


def test_command_stdin(h):
    assert h.run("command", {"cmd": "cat", "stdin": "line"}).stdout == "line"
    assert "\\n" in h.run("command", {"cmd": "od -c", "stdin": "x"}).stdout
    assert "\\n" not in h.run("command", {"cmd": "od -c", "stdin": "x", "stdin_add_newline": False}).stdout


def test_command_bad_chdir_fails(h, target):
    result = h.run("command", {"cmd": "true", "chdir": str(target / "nowhere")})
    assert result.failed and "nowhere" in result.msg


def test_command_check_mode(h, target):
    skipped = h.run("command", f"touch {target}/x", check=True)
    assert skipped.skipped and not (target / "x").exists() and h.connection.scripts == []
    assert skipped.as_register()["stdout"] == ""    # a later `when: result.stdout ...` still works
    would = h.run("command", {"cmd": f"touch {target}/x", "creates": str(target / "x")}, check=True)
    assert would.changed and not (target / "x").exists()
    (target / "x").write_text("")
    assert h.run("command", {"cmd": "false", "creates": str(target / "x")}, check=True).status == "ok"


@pytest.mark.parametrize("args", [{}, {"cmd": "ls", "argv": ["ls"]}, {"cmd": "  "}, {"cmd": "ls", "bogus": 1}])
def test_command_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("command", args)


def test_shell_pipes_variables_and_globs(h, target):
    (target / "a.txt").write_text("")
    (target / "b.txt").write_text("")
    result = h.run("shell", f"cd {target} && ls *.txt | wc -l && echo $((6*7))")
    assert result.changed and result.stdout.split() == ["2", "42"]


def test_shell_failure_and_stderr_tail(h):
    result = h.run("shell", "echo one >&2; echo two >&2; exit 5")
    assert result.failed and result.rc == 5 and result.msg.endswith("one; two")


def test_shell_executable_creates_chdir_stdin(h, target):
    args = {"cmd": 'read v; echo "$v $0" > out', "executable": "/bin/sh", "chdir": str(target),
            "creates": "out", "stdin": "hi"}
    assert h.run("shell", args).changed
    assert (target / "out").read_text() == "hi /bin/sh\n"
    assert h.run("shell", args).status == "ok"


def test_shell_check_mode(h, target):
    assert h.run("shell", f"touch {target}/x", check=True).skipped
    assert not (target / "x").exists()


def temp_files() -> set[str]:
    return {name for name in os.listdir("/tmp") if name.startswith(".recipe-")}


@pytest.mark.parametrize("padding", [0, 100_000], ids=["on-stdin", "uploaded"])
def test_script_runs_and_removes_its_copy(h, target, padding):
    h.file("files", "setup.sh", "#!/bin/sh\necho \"$# $1 $2\" > out\npwd >> out\n" + "#" * padding + "\n")
    before = temp_files()
    result = h.run("script", {"src": "setup.sh", "args": ["a b", 7], "chdir": str(target)})
    assert result.changed and result.rc == 0
    assert (target / "out").read_text() == f"2 a b 7\n{target}\n"
    assert len(h.connection.uploads) == (1 if padding else 0) and leftovers(h) == []
    assert temp_files() <= before


def test_script_free_form_with_arguments_and_shebang(h, target):
    h.file("files", "greet", "#!/usr/bin/env sh\necho \"hello $1\"\n")
    result = h.run("script", f"greet '{target}'")
    assert result.stdout == f"hello {target}" and leftovers(h) == []
    assert h.run("script", {"cmd": "greet world", "creates": "/nonexistent"}).stdout == "hello world"   # alias


def test_script_failure_still_removes_the_upload(h):
    h.file("files", "bad.sh", "echo nope >&2\nexit 4\n")
    result = h.run("script", "bad.sh")
    assert result.failed and result.rc == 4 and "nope" in result.msg
    assert leftovers(h) == []


def test_script_creates_and_check_mode(h, target):
    h.file("files", "make.sh", f"touch {target}/made\n")
    args = {"src": "make.sh", "creates": str(target / "made")}
    assert h.run("script", args, check=True).changed and not (target / "made").exists()
    assert h.connection.uploads == []
    assert h.run("script", args).changed
    again = h.run("script", args)
    assert again.status == "ok" and leftovers(h) == []


def test_script_missing_local_file_raises(h):
    with pytest.raises(BuildError):
        h.run("script", "nowhere.sh")


def test_registered_values_as_ansible(h):
    ok = h.run("command", "echo hi").as_register()
    assert ok["cmd"] == ["echo", "hi"] and ok["msg"] == "" and ok["stdout_lines"] == ["hi"] and ok["rc"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", ok["start"])
    assert re.fullmatch(r"0:00:\d\d\.\d{6}", ok["delta"]) and ok["end"] >= ok["start"]
    bad = h.run("shell", "echo out; echo err >&2; exit 3")
    value = bad.as_register()
    assert bad.failed and value["msg"] == "non-zero return code" and value["cmd"] == "echo out; echo err >&2; exit 3"
    assert (value["rc"], value["stdout"], value["stderr"]) == (3, "out", "err")
    assert "err" in bad.msg                                          # what the log shows says more


def test_strip_empty_ends(h):
    assert h.run("command", {"argv": ["printf", "\n\nx\n\n"]}).stdout == "\n\nx"
    kept = h.run("command", {"argv": ["printf", "\n\nx\n\n"], "strip_empty_ends": False})
    assert kept.stdout == "\n\nx\n\n"
    assert h.run("shell", {"cmd": "printf 'x\\n\\n'", "strip_empty_ends": "no"}).stdout == "x\n\n"


def test_check_mode_registers_ansibles_message(h):
    result = h.run("command", "echo hi", check=True)
    assert result.skipped and result.as_register()["msg"] == "Command would have run if not in check mode"


def test_removed_ansible_options_are_refused(h):
    with pytest.raises(vol.Invalid, match="unknown option 'warn'"):
        h.params("command", {"cmd": "ls", "warn": False})   # ansible-core 2.19 refuses it too

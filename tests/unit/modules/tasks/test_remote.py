"""The helpers every module leans on, checked against the real tools they imitate."""
import os
import subprocess

import pytest

from modules.tasks._attrs import Attrs, Stat, target_mode
from modules.tasks._command import guard
from modules.tasks._remote import q, tagged, text_diff

SPECS = ["u+x", "g-w", "o=", "a=r", "u=rwX,go=rX", "+x", "-w", "=rw", "ug+s", "o+t", "u=rwx,g=rx,o=", "a+X",
         "go-rwx", "u-s,g+s", "0640", "755"]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("start", [0o600, 0o755, 0o4711, 0o000])
@pytest.mark.parametrize("kind", ["file", "directory"])
def test_target_mode_agrees_with_chmod(tmp_path, spec, start, kind):
    path = tmp_path / "p"
    path.mkdir() if kind == "directory" else path.write_text("")
    os.chmod(path, start)
    subprocess.run(["chmod", spec, str(path)], check=True, env={"PATH": os.environ["PATH"]})
    actual = path.stat().st_mode & 0o7777
    if kind == "directory" and spec[0].isdigit():
        actual &= ~0o6000 | int(spec, 8)     # GNU keeps a directory's set-id bits on short numeric modes
    assert target_mode(spec, start, kind == "directory", os.umask(0o022)) == actual


def test_attrs_changes_in_words():
    st = Stat("file", 0o600, 0, 0, 0, 0, 1, "root", "root")
    assert Attrs("0644", "nobody", "0").changes(st, 0o022) == ["mode 0600 -> 0644", "owner root -> nobody"]
    assert Attrs("u=rw", "root", "root").changes(st, 0o022) == []


def test_tagged_output_and_content():
    tags, content = tagged("stat absent\numask 0022\ntree a\ntree b\n--recipe-content--\nline\n--x\n")
    assert tags == {"stat": ["absent"], "umask": ["0022"], "tree": ["a", "b"]} and content == "line\n--x\n"
    assert tagged("a 1\n") == ({"a": ["1"]}, None)


def test_quoting_keeps_home_expansion_only():
    assert q("~/x y") == '"$HOME"\'/x y\''
    assert q("/a/$(b)") == "'/a/$(b)'"
    out = subprocess.run(["sh", "-c", f"printf %s {q('~/x y')}"], capture_output=True, text=True,
                         env={"HOME": "/home/u"}).stdout
    assert out == "/home/u/x y"


def test_guard_creates_glob(tmp_path):
    (tmp_path / "a b.txt").write_text("")
    script = guard(str(tmp_path), "*.txt", None, "TOKEN") + "echo ran\n"
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout == "TOKEN creates\n"
    script = guard(str(tmp_path), None, "*.none", "TOKEN") + "echo ran\n"
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout == "TOKEN removes\n"


def test_diff_is_bounded():
    diff = text_diff("", "".join(f"{n}\n" for n in range(1000)), "/f")
    assert diff.count("\n") == 201 and diff.endswith("more lines\n")

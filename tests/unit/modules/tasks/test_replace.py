import os

import pytest
import voluptuous as vol

from tests.unit.modules.tasks.conftest import ansible_module, leftovers, mode_of

TEXT = "a=1\nb=2\n# start\na=3\n# end\na=4\n"


@pytest.fixture
def conf(target):
    path = target / "app.conf"
    path.write_text(TEXT)
    os.chmod(path, 0o644)
    return path


def test_replaces_every_match(h, conf):
    result = h.run("replace", {"path": str(conf), "regexp": r"^a=(\d)$", "replace": r"a=\1\1"})
    assert result.status == "changed" and result.msg == "3 replacements made" and result.data["rc"] == 0
    assert conf.read_text() == "a=11\nb=2\n# start\na=33\n# end\na=44\n" and leftovers(h) == []
    assert h.run("replace", {"path": str(conf), "regexp": r"^a=(\d)$", "replace": r"a=\1\1"}).status == "ok"


def test_between_after_and_before(h, conf):
    result = h.run("replace", {"dest": str(conf), "regexp": "^a=", "replace": "A=", "after": "# start",
                               "before": "# end"})
    assert result.msg == "1 replacements made" and conf.read_text() == TEXT.replace("a=3", "A=3")
    missed = h.run("replace", {"path": str(conf), "regexp": "x", "after": "nomatch"})
    assert missed.status == "ok" and missed.msg.startswith("Pattern for before/after params did not match")


def test_multiline_and_named_groups(h, conf):
    h.run("replace", {"path": str(conf), "regexp": r"^(?P<key>\w)=(\d)\n(?=b)", "replace": r"\g<key>:\2\n"})
    assert conf.read_text().startswith("a:1\nb=2\n")


def test_check_mode_and_diff(h, conf):
    result = h.run("replace", {"path": str(conf), "regexp": "b=2", "replace": "b=5"}, check=True)
    assert result.status == "changed" and "-b=2" in result.diff and "+b=5" in result.diff
    assert conf.read_text() == TEXT


def test_backup_and_mode(h, conf):
    result = h.run("replace", {"path": str(conf), "regexp": "b=2", "replace": "b=5", "backup": True,
                               "mode": "0600"})
    assert result.msg == "1 replacements made and ownership, perms or SE linux context changed"
    assert open(result.data["backup_file"]).read() == TEXT and mode_of(conf) == 0o600


def test_validate(h, conf):
    refused = h.run("replace", {"path": str(conf), "regexp": "b=2", "replace": "b=5", "validate": "grep -q nope %s"})
    assert refused.status == "failed" and conf.read_text() == TEXT
    accepted = h.run("replace", {"path": str(conf), "regexp": "b=2", "replace": "b=5", "validate": "grep -q b=5 %s"})
    assert accepted.status == "changed" and "b=5" in conf.read_text()


def test_links_are_followed(h, conf, target):
    (target / "link").symlink_to("app.conf")
    h.run("replace", {"path": str(target / "link"), "regexp": "b=2", "replace": "b=9"})
    assert (target / "link").is_symlink() and "b=9" in conf.read_text()


def test_latin1_file(h, target):
    path = target / "latin1.txt"
    path.write_bytes("café=1\n".encode("latin-1"))
    h.run("replace", {"path": str(path), "regexp": "é", "replace": "e", "encoding": "latin-1"})
    assert path.read_bytes() == b"cafe=1\n"


def test_missing_file_and_directory(h, target):
    missing = h.run("replace", {"path": str(target / "nope"), "regexp": "x"})
    assert missing.status == "failed" and missing.msg == f"Path {target / 'nope'} does not exist !"
    assert h.run("replace", {"path": str(target), "regexp": "x"}).status == "failed"


def test_bad_arguments(h):
    with pytest.raises(vol.Invalid, match="not a valid regular expression"):
        h.params("replace", {"path": "/x", "regexp": "("})
    with pytest.raises(vol.Invalid, match="%s"):
        h.params("replace", {"path": "/x", "regexp": "a", "validate": "visudo -c"})
    with pytest.raises(vol.Invalid, match="unknown encoding"):
        h.params("replace", {"path": "/x", "regexp": "a", "encoding": "klingon"})


@pytest.mark.parametrize("args", [
    {"regexp": r"^a=(\d)", "replace": r"a=\1\1", "after": "# start", "before": "# end"},
    {"regexp": r"^a=(\d)$", "replace": r"a=\1\1"},
    {"regexp": "x", "after": "nomatch"},
    {"regexp": "^b=2$", "replace": "b=5", "mode": "0600"},
    {"regexp": "(?m)^#.*\n"},
    {"regexp": "zzz", "replace": "y"},
])
def test_same_as_ansible(h, target, args):
    ours, theirs = target / "ours.conf", target / "theirs.conf"
    for path in (ours, theirs):
        path.write_text(TEXT)
        os.chmod(path, 0o644)
    expected = ansible_module("replace", {"path": str(theirs), **args})
    registered = h.run("replace", {"path": str(ours), **args}).as_register()
    assert ours.read_text() == theirs.read_text() and mode_of(ours) == mode_of(theirs)
    assert {key: registered[key] for key in expected} == expected

import os

import pytest
import voluptuous as vol

from tests.unit.modules.tasks.conftest import mode_of


def test_directory_created_then_ok(h, target):
    path = target / "a" / "b"
    args = {"path": str(path), "state": "directory", "mode": "0750"}
    result = h.run("file", args)
    assert result.changed and path.is_dir() and mode_of(path) == 0o750
    again = h.run("file", args)
    assert again.status == "ok" and len(h.connection.scripts) == 1


def test_directory_check_mode(h, target):
    assert h.run("file", {"path": str(target / "d"), "state": "directory"}, check=True).changed
    assert not (target / "d").exists()


def test_directory_over_a_file_fails(h, target):
    (target / "f").write_text("")
    result = h.run("file", {"path": str(target / "f"), "state": "directory"})
    assert result.failed and str(target / "f") in result.msg and "not a directory" in result.msg


def test_recursive_symbolic_mode_and_owner(h, target):
    tree = target / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("")
    (tree / "x").write_text("")
    os.chmod(tree / "x", 0o700)
    os.chmod(tree / "sub", 0o700)
    args = {"path": str(tree), "state": "directory", "recurse": True, "mode": "u=rwX,go=rX", "owner": "nobody"}
    check = h.run("file", args, check=True)
    assert check.changed and mode_of(tree / "sub") == 0o700
    assert h.run("file", args).changed
    assert mode_of(tree / "sub") == 0o755 and mode_of(tree / "sub" / "f") == 0o644 and mode_of(tree / "x") == 0o755
    assert (tree / "sub" / "f").stat().st_uid == 65534
    assert h.run("file", args).status == "ok"
    os.chmod(tree / "sub" / "f", 0o600)      # one entry deep inside drifts: recurse notices
    assert h.run("file", args, check=True).changed


def test_attributes_only_on_whatever_is_there(h, target):
    (target / "f").write_text("")
    os.chmod(target / "f", 0o600)
    assert h.run("file", {"path": str(target / "f"), "mode": "g+r"}).changed
    assert mode_of(target / "f") == 0o640
    assert h.run("file", {"path": str(target / "f"), "mode": "g+r"}).status == "ok"
    assert h.run("file", {"path": str(target), "mode": "0755"}).status == "ok"   # a directory is fine too


def test_state_file_requires_an_existing_file(h, target):
    missing = h.run("file", {"path": str(target / "nope"), "state": "file"})
    assert missing.failed and "does not exist" in missing.msg and str(target / "nope") in missing.msg
    assert h.run("file", {"path": str(target), "state": "file"}).failed
    # in check mode an earlier task may be what creates it: say so instead of failing
    assert h.run("file", {"path": str(target / "nope"), "mode": "0600"}, check=True).skipped


def test_absent(h, target):
    (target / "d" / "e").mkdir(parents=True)
    args = {"path": str(target / "d"), "state": "absent"}
    assert h.run("file", args, check=True).changed and (target / "d").exists()
    assert h.run("file", args).changed and not (target / "d").exists()
    assert h.run("file", args).status == "ok"


def test_touch_always_changes(h, target):
    path = target / "t"
    assert h.run("file", {"path": str(path), "state": "touch"}, check=True).changed and not path.exists()
    assert h.run("file", {"path": str(path), "state": "touch", "mode": "0600"}).changed
    assert path.exists() and mode_of(path) == 0o600
    os.utime(path, (1, 1))
    assert h.run("file", {"path": str(path), "state": "touch"}).changed and path.stat().st_mtime > 1


def test_symlink(h, target):
    (target / "real").write_text("")
    link = target / "link"
    args = {"path": str(link), "state": "link", "src": "real"}
    assert h.run("file", args, check=True).changed and not link.is_symlink()
    assert h.run("file", args).changed and os.readlink(link) == "real"
    assert h.run("file", args).status == "ok"
    (target / "other").mkdir()
    moved = h.run("file", {**args, "src": "other"})
    assert moved.changed and os.readlink(link) == "other"


def test_symlink_refuses_to_replace_a_file_without_force(h, target):
    (target / "real").write_text("")
    (target / "f").write_text("keep me")
    refused = h.run("file", {"path": str(target / "f"), "state": "link", "src": "real"})
    assert refused.failed and "force" in refused.msg and (target / "f").read_text() == "keep me"
    assert h.run("file", {"path": str(target / "f"), "state": "link", "src": "real", "force": True}).changed
    assert os.readlink(target / "f") == "real"
    dangling = h.run("file", {"path": str(target / "l2"), "state": "link", "src": "missing"})
    assert dangling.failed and "does not exist" in dangling.msg


def test_hard_link(h, target):
    (target / "real").write_text("x")
    args = {"path": str(target / "hard"), "state": "hard", "src": str(target / "real")}
    assert h.run("file", args).changed
    assert (target / "hard").stat().st_ino == (target / "real").stat().st_ino
    assert h.run("file", args).status == "ok"
    (target / "other").write_text("y")
    assert h.run("file", {**args, "path": str(target / "other")}).failed
    assert h.run("file", {**args, "path": str(target / "other"), "force": True}).changed
    assert (target / "other").stat().st_ino == (target / "real").stat().st_ino


def test_bad_owner_fails_with_the_tool_message(h, target):
    (target / "f").write_text("")
    result = h.run("file", {"path": str(target / "f"), "owner": "no-such-user"})
    assert result.failed and "no-such-user" in result.msg


@pytest.mark.parametrize("args", [{"path": "/x", "state": "link"}, {"path": "/x", "state": "weird"},
                                  {"path": "/x", "state": "touch", "recurse": True}, {"path": "/x", "mode": "rwx"}])
def test_file_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("file", args)

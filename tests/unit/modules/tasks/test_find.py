import hashlib
import os
import time

import pytest
import voluptuous as vol

from tests.unit.modules.tasks.conftest import ansible_module


@pytest.fixture
def tree(target):
    files = {"a.log": "error: disk full\n", "b.txt": "all fine\n", ".hidden.log": "x\n", "big.bin": "z" * 5000,
             "sub/c.log": "ok\nerror: again\n", "sub/deeper/d.log": "", ".dot/e.log": "error\n"}
    for name, content in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.chmod(path, 0o644)
    os.chmod(target / "b.txt", 0o600)
    old = time.time() - 3 * 86400
    os.utime(target / "b.txt", (old, old))
    (target / "link.log").symlink_to("a.log")
    (target / "sublink").symlink_to("sub")
    return target


def paths(result, root):
    return [os.path.relpath(f["path"], root) for f in result.data["files"]]


def test_patterns_and_recurse(h, tree):
    top = h.run("find", {"paths": str(tree), "patterns": "*.log"})
    assert top.status == "ok" and sorted(paths(top, tree)) == ["a.log"]
    every = h.run("find", {"paths": str(tree), "patterns": ["*.log"], "recurse": True})
    assert sorted(paths(every, tree)) == [".dot/e.log", "a.log", "sub/c.log", "sub/deeper/d.log"]
    assert every.data["matched"] == 4 and every.data["msg"] == "All paths examined"


def test_hidden_depth_and_types(h, tree):
    hidden = h.run("find", {"paths": str(tree), "patterns": "*.log", "hidden": True})
    assert sorted(paths(hidden, tree)) == [".hidden.log", "a.log"]
    shallow = h.run("find", {"paths": str(tree), "patterns": "*.log", "recurse": True, "depth": 2})
    assert sorted(paths(shallow, tree)) == [".dot/e.log", "a.log", "sub/c.log"]
    folders = h.run("find", {"paths": str(tree), "file_type": "directory", "recurse": True})
    assert sorted(paths(folders, tree)) == ["sub", "sub/deeper"]
    links = h.run("find", {"paths": str(tree), "file_type": "link"})
    assert sorted(paths(links, tree)) == ["link.log", "sublink"]


def test_filters(h, tree):
    assert paths(h.run("find", {"paths": str(tree), "size": "4k"}), tree) == ["big.bin"]
    assert paths(h.run("find", {"paths": str(tree), "age": "2d"}), tree) == ["b.txt"]
    assert paths(h.run("find", {"paths": str(tree), "mode": "0600"}), tree) == ["b.txt"]
    assert sorted(paths(h.run("find", {"paths": str(tree), "patterns": r"^[ab]\.", "use_regex": True}), tree)) == [
        "a.log", "b.txt"]
    assert paths(h.run("find", {"paths": str(tree), "patterns": "*", "excludes": "*.log,*.bin"}), tree) == ["b.txt"]


def test_contains_and_checksum(h, tree):
    found = h.run("find", {"paths": str(tree), "recurse": True, "contains": "error"})
    assert sorted(paths(found, tree)) == [".dot/e.log", "a.log", "sub/c.log"]    # any line, from its start
    assert paths(h.run("find", {"paths": str(tree), "contains": "full"}), tree) == []     # re.match, not search
    whole = h.run("find", {"paths": str(tree), "recurse": True, "contains": "again", "read_whole_file": True})
    assert paths(whole, tree) == ["sub/c.log"]
    summed = h.run("find", {"paths": str(tree), "patterns": "b.txt", "get_checksum": True})
    assert summed.data["files"][0]["checksum"] == hashlib.sha1(b"all fine\n").hexdigest()


def test_limit_and_missing_path(h, tree):
    limited = h.run("find", {"paths": str(tree), "recurse": True, "limit": 1})
    assert limited.data["matched"] == 1 and limited.data["msg"] == "Limit of matches reached"
    missing = h.run("find", {"paths": [str(tree / "nope"), str(tree)], "patterns": "a.log"}, check=True)
    assert missing.status == "ok" and missing.data["matched"] == 1
    assert missing.data["skipped_paths"] == {str(tree / "nope"): f"'{tree / 'nope'}' is not a directory"}
    assert missing.data["msg"] == "Not all paths examined, check warnings for details"


def test_bad_arguments(h):
    with pytest.raises(vol.Invalid, match="required"):
        h.params("find", {})
    with pytest.raises(vol.Invalid, match="2d or -10k"):
        h.params("find", {"paths": "/x", "age": "yesterday"})
    with pytest.raises(vol.Invalid, match="regular expression"):
        h.params("find", {"paths": "/x", "patterns": "(", "use_regex": True})
    with pytest.raises(vol.Invalid):
        h.params("find", {"paths": "/x", "limit": 0})


@pytest.mark.parametrize("args", [
    {"patterns": "*.log"},
    {"recurse": True},
    {"recurse": True, "hidden": True, "file_type": "any"},
    {"recurse": True, "depth": 2, "patterns": "*.log"},
    {"recurse": True, "follow": True, "file_type": "any"},
    {"file_type": "directory", "recurse": True},
    {"file_type": "link"},
    {"size": "-1k", "age": "-1d", "recurse": True},
    {"contains": "error", "recurse": True, "get_checksum": True},
    {"patterns": [r".*\.log$"], "use_regex": True, "excludes": "^a", "recurse": True},
    {"mode": "u+rw", "exact_mode": False, "recurse": True},
])
def test_same_as_ansible(h, tree, args):
    args = {"paths": str(tree), **args}
    h.run("find", args)          # reading files moves their atime once; afterwards both see the same
    expected = ansible_module("find", args)
    registered = h.run("find", args).as_register()
    for key in ("matched", "examined", "msg", "skipped_paths", "changed"):
        assert registered[key] == expected[key], key
    assert registered["files"] == expected["files"]

import os
import re
import stat

import pytest
import voluptuous as vol

from tests.unit.modules.tasks.conftest import mode_of


def test_file(h, target):
    result = h.run("tempfile", {"path": str(target), "prefix": "x", "suffix": ".y"})
    path = result.data["path"]
    assert result.status == "changed" and re.fullmatch(re.escape(str(target)) + r"/x[a-z0-9_]{8}\.y", path)
    assert stat.S_ISREG(os.stat(path).st_mode) and mode_of(target / path) == 0o600 and os.path.getsize(path) == 0
    assert result.data["mode"] == "0600" and result.data["state"] == "file" and result.data["owner"] == "root"


def test_directory_in_tmpdir(h, target, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(target))       # Python's gettempdir on the target honours TMPDIR
    result = h.run("tempfile", {"state": "directory"})
    path = result.data["path"]
    assert os.path.dirname(path) == str(target) and os.path.basename(path).startswith("ansible.")
    assert os.path.isdir(path) and mode_of(target / path) == 0o700 and result.data["state"] == "directory"


def test_each_run_makes_a_new_one(h, target):
    first = h.run("tempfile", {"path": str(target)}).data["path"]
    second = h.run("tempfile", {"path": str(target)}).data["path"]
    assert first != second and os.path.exists(first) and os.path.exists(second)


def test_check_mode_is_skipped_and_creates_nothing(h, target):
    result = h.run("tempfile", {"path": str(target)}, check=True)
    assert result.status == "skipped" and os.listdir(target) == []


def test_missing_directory_fails(h, target):
    result = h.run("tempfile", {"path": str(target / "nowhere"), "state": "directory"})
    assert result.status == "failed" and result.msg.startswith("No such file or directory: ")


def test_bad_arguments(h):
    with pytest.raises(vol.Invalid, match="suffix must be a valid file name component"):
        h.params("tempfile", {"suffix": "/x"})
    with pytest.raises(vol.Invalid, match="must be one of"):
        h.params("tempfile", {"state": "link"})


# Verified with `ansible localhost -c local -m tempfile` (ansible-core 2.19.14); the random part differs.
# {"state": "directory"} -> changed, {"gid": 0, "group": "root", "mode": "0700", "owner": "root",
#   "path": "/tmp/ansible.xxl5zw4f", "size": 4096, "state": "directory", "uid": 0}
def test_same_as_ansible(h, target):
    result = h.run("tempfile", {"state": "directory", "path": str(target)})
    registered = result.as_register()
    assert result.status == "changed"
    assert {key: registered[key] for key in ("gid", "group", "mode", "owner", "state", "uid")} == {
        "gid": 0, "group": "root", "mode": "0700", "owner": "root", "state": "directory", "uid": 0}
    assert registered["size"] == os.stat(registered["path"]).st_size    # 4096 on ext4, 40 on tmpfs

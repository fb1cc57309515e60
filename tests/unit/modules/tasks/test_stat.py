import os
import socket

import pytest
import voluptuous as vol

from tests.unit.modules.tasks.conftest import NobodyConnection, ansible_module


@pytest.fixture
def tree(target):
    (target / "file.txt").write_text("hello\n")
    os.chmod(target / "file.txt", 0o640)
    (target / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(target / "run.sh", 0o4755)
    (target / "dir").mkdir()
    (target / "link").symlink_to("file.txt")
    (target / "dangling").symlink_to("nowhere")
    os.mkfifo(target / "fifo")
    return target


def test_regular_file(h, tree):
    result = h.run("stat", {"path": str(tree / "file.txt")})
    st = result.data["stat"]
    assert result.status == "ok" and not result.changed
    assert st["exists"] and st["isreg"] and not st["isdir"] and st["mode"] == "0640" and st["size"] == 6
    assert st["checksum"] == "f572d396fae9206628714fb2ce00f72e94f2258f"   # sha1 of "hello\n"
    assert (st["rusr"], st["wusr"], st["xusr"], st["rgrp"], st["wgrp"], st["roth"]) == (True, True, False, True,
                                                                                       False, False)
    assert st["pw_name"] == "root" and st["uid"] == 0 and st["readable"] and st["writeable"]
    assert st["mimetype"] == "text/plain" and st["charset"] == "us-ascii"
    assert st["mtime"] == os.stat(tree / "file.txt").st_mtime and st["inode"] == os.stat(tree / "file.txt").st_ino


def test_missing_path_is_ok(h, tree):
    result = h.run("stat", {"path": str(tree / "nothing")})
    assert result.status == "ok" and result.data == {"stat": {"exists": False}}
    assert h.run("stat", {"path": str(tree / "dangling"), "follow": True}).data == {"stat": {"exists": False}}


def test_links(h, tree):
    link = h.run("stat", {"path": str(tree / "link")}).data["stat"]
    assert link["islnk"] and not link["isreg"] and "checksum" not in link
    assert link["lnk_target"] == "file.txt" and link["lnk_source"] == str(tree / "file.txt")
    followed = h.run("stat", {"path": str(tree / "link"), "follow": "yes"}).data["stat"]
    assert followed["isreg"] and not followed["islnk"] and "lnk_target" not in followed and "checksum" in followed
    dangling = h.run("stat", {"path": str(tree / "dangling")}).data["stat"]
    assert dangling["islnk"] and dangling["lnk_source"] == str(tree / "nowhere") and not dangling["readable"]


def test_options(h, tree):
    path = str(tree / "file.txt")
    sha256 = h.run("stat", {"path": path, "checksum_algorithm": "sha256"}).data["stat"]["checksum"]
    assert sha256 == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    bare = h.run("stat", {"dest": path, "get_checksum": False, "get_mime": "no", "get_attributes": False})
    assert not {"checksum", "mimetype", "charset", "attributes", "version"} & set(bare.data["stat"])
    assert h.run("stat", {"name": str(tree / "dir")}).data["stat"]["isdir"]
    assert h.run("stat", {"path": str(tree / "run.sh")}).data["stat"]["isuid"]


def test_special_files(h, tree):
    assert h.run("stat", {"path": str(tree / "fifo")}).data["stat"]["isfifo"]
    null = h.run("stat", {"path": "/dev/null"}).data["stat"]
    assert null["ischr"] and null["device_type"] == os.stat("/dev/null").st_rdev
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tree / "sock"))
        assert h.run("stat", {"path": str(tree / "sock")}).data["stat"]["issock"]
    finally:
        server.close()


def test_check_mode_reads_too(h, tree):
    assert h.run("stat", {"path": str(tree / "file.txt")}, check=True).data["stat"]["exists"]


def test_permission_denied_fails(h, tree):
    h.connection = NobodyConnection()
    result = h.run("stat", {"path": str(tree / "file.txt")})
    assert result.status == "failed" and result.msg == "Permission denied"


def test_home_is_expanded(h):
    st = h.run("stat", {"path": "~"}).data["stat"]
    assert st["path"] == os.path.expanduser("~") and st["isdir"]


def test_bad_arguments(h):
    with pytest.raises(vol.Invalid, match="required"):
        h.params("stat", {})
    with pytest.raises(vol.Invalid, match="must be one of"):
        h.params("stat", {"path": "/x", "checksum_algorithm": "crc32"})


@pytest.mark.parametrize("name, args", [
    ("file.txt", {}),
    ("run.sh", {"checksum_algorithm": "md5"}),
    ("dir", {}),
    ("link", {}),
    ("link", {"follow": True, "get_mime": False}),
    ("dangling", {}),
    ("fifo", {"get_attributes": False}),
    ("missing", {}),
])
def test_same_as_ansible(h, tree, name, args):
    args = {"path": str(tree / name), **args}
    h.run("stat", args)             # reading the file once moves its atime; after that both see the same
    expected = ansible_module("stat", args)
    assert h.run("stat", args).as_register()["stat"] == expected["stat"]

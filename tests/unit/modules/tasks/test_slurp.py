import base64

import pytest
import voluptuous as vol

from tests.unit.modules.tasks.conftest import NobodyConnection


def test_slurp(h, target):
    data = bytes(range(256)) * 40       # binary, and long enough that base64 would wrap its lines
    (target / "blob").write_bytes(data)
    result = h.run("slurp", {"src": str(target / "blob")})
    assert result.status == "ok" and base64.b64decode(result.data["content"]) == data
    assert result.data["content"] == base64.b64encode(data).decode()
    assert result.data["source"] == str(target / "blob") and result.data["encoding"] == "base64"
    assert h.run("slurp", {"path": str(target / "blob")}, check=True).data["content"] == result.data["content"]


def test_empty_file(h, target):
    (target / "empty").write_bytes(b"")
    assert h.run("slurp", {"src": str(target / "empty")}).data["content"] == ""


def test_link_is_followed(h, target):
    (target / "f").write_text("hi\n")
    (target / "l").symlink_to("f")
    assert h.run("slurp", {"src": str(target / "l")}).data["content"] == "aGkK"


def test_unreadable(h, target):
    (target / "f").write_text("hi\n")      # nobody may not even reach it: open() says EACCES, not ENOENT
    h.connection = NobodyConnection()
    result = h.run("slurp", {"src": str(target / "f")})
    assert result.status == "failed" and result.msg == f"File is not readable: {target / 'f'}"


def test_bad_arguments(h):
    with pytest.raises(vol.Invalid, match="required"):
        h.params("slurp", {})


# Verified with `ansible localhost -c local -m slurp` (ansible-core 2.19.14): /etc/hostname holding "vm\n" ->
# {"content": "dm0K", "encoding": "base64", "source": "/etc/hostname"}; the failures below, word for word.
@pytest.mark.parametrize("name, status, expected", [
    ("hostname", "ok", {"changed": False, "content": "dm0K", "encoding": "base64", "source": "{}"}),
    ("nonexist", "failed", {"changed": False, "msg": "File not found: {}"}),
    ("dir", "failed", {"changed": False, "msg": "Source is a directory and must be a file: {}"}),
])
def test_same_as_ansible(h, target, name, status, expected):
    (target / "hostname").write_text("vm\n")
    (target / "dir").mkdir()
    path = str(target / name)
    result = h.run("slurp", {"src": path})
    assert result.status == status
    assert {key: result.as_register()[key] for key in expected} == {
        key: value.format(path) if isinstance(value, str) else value for key, value in expected.items()}

"""authorized_key for root with path: in tmp_path, so no real authorized_keys is touched."""
import pytest
import voluptuous as vol

from modules.tasks.authorized_key import parse_key

A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 alice@laptop"
B = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB2 bob"


def run(h, path, check=False, **args):
    return h.run("authorized_key", {"user": "root", "path": str(path), **args}, check=check)


def test_a_key_is_added_in_a_new_file_0600_then_ok(h, target):
    path = target / "ssh" / "keys"
    result = run(h, path, key=A)
    assert result.changed and path.read_text() == A + "\n"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert result.data["keyfile"] == str(path) and result.data["user"] == "root"
    assert run(h, path, key=A).status == "ok"


def test_options_and_comment_replace_the_key_which_moves_last(h, target):
    path = target / "keys"
    path.write_text(f"# managed\n{A}\n{B}\n")
    result = run(h, path, key=A, key_options='no-pty,from="10.0.0.1,10.0.0.2"', comment="deploy")
    assert result.changed
    assert path.read_text() == f'# managed\n{B}\nno-pty,from="10.0.0.1,10.0.0.2" {A.rsplit(" ", 1)[0]} deploy\n'
    assert run(h, path, key=A, key_options='no-pty,from="10.0.0.1,10.0.0.2"', comment="deploy").status == "ok"


def test_absent_and_exclusive(h, target):
    path = target / "keys"
    path.write_text(f"{A}\n{B}\n")
    assert run(h, path, key=B, state="absent").changed and path.read_text() == A + "\n"
    assert run(h, path, key=B, state="absent").status == "ok"
    path.write_text(f"# keep me\n{A}\n{B}\n")
    assert run(h, path, key=B, exclusive=True).changed and path.read_text() == B + "\n"


def test_check_mode(h, target):
    path = target / "keys"
    path.write_text(A + "\n")
    assert run(h, path, check=True, key=B).changed and path.read_text() == A + "\n"


def test_errors(h, target):
    assert run(h, target / "k", key="not a key").failed
    missing = h.run("authorized_key", {"user": "recipe-no-such-user", "key": A, "path": str(target / "k")})
    assert missing.failed and "recipe-no-such-user" in missing.msg
    with pytest.raises(vol.Invalid, match="URL"):
        h.params("authorized_key", {"user": "root", "key": "https://github.com/x.keys"})


def test_parse_key():
    key = parse_key('command="echo a b",no-pty ssh-rsa AAAA c d')
    assert key.type == "ssh-rsa" and key.blob == "AAAA" and key.comment == "c d"
    assert key.options == (("command", '"echo a b"'), ("no-pty", None))
    assert parse_key("# ssh-rsa AAAA") is None

import pwd

import pytest
import voluptuous as vol


def test_passwd_key(h):
    result = h.run("getent", {"database": "passwd", "key": "root"})
    entry = pwd.getpwnam("root")
    assert result.status == "ok" and not result.changed
    assert result.facts == {"getent_passwd": {"root": ["x", "0", "0", entry.pw_gecos, entry.pw_dir, entry.pw_shell]}}
    assert result.as_register()["ansible_facts"] == result.facts


def test_whole_database(h):
    result = h.run("getent", {"database": "passwd"}, check=True)
    assert {"root", "nobody"} <= set(result.facts["getent_passwd"])


def test_split_and_other_databases(h):
    assert h.run("getent", {"database": "group", "key": "root", "split": ":"}).facts == {
        "getent_group": {"root": ["x", "0", ""]}}
    hosts = h.run("getent", {"database": "hosts", "key": "localhost"}).facts["getent_hosts"]
    assert any("localhost" in names for names in hosts.values())


def test_missing_key(h):
    result = h.run("getent", {"database": "passwd", "key": "nobodyhere"})
    assert result.status == "failed" and result.msg == "One or more supplied key could not be found in the database."
    tolerated = h.run("getent", {"database": "passwd", "key": "nobodyhere", "fail_key": "no"})
    assert tolerated.status == "ok" and tolerated.facts == {"getent_passwd": {"nobodyhere": None}}


def test_unknown_database(h):
    result = h.run("getent", {"database": "nosuchdb"})
    assert result.status == "failed" and result.msg == "Missing arguments, or database unknown."


def test_bad_arguments(h):
    with pytest.raises(vol.Invalid, match="required"):
        h.params("getent", {"key": "root"})


# Verified with `ansible localhost -c local -m getent` (ansible-core 2.19.14) on this machine:
@pytest.mark.parametrize("args, status, expected", [
    ({"database": "passwd", "key": "root"}, "ok",
     {"ansible_facts": {"getent_passwd": {"root": ["x", "0", "0", "root", "/root", pwd.getpwnam("root").pw_shell]}},
      "changed": False}),
    ({"database": "group", "key": "root", "split": ":"}, "ok",
     {"ansible_facts": {"getent_group": {"root": ["x", "0", ""]}}, "changed": False}),
    ({"database": "hosts", "key": "localhost"}, "ok",
     {"ansible_facts": {"getent_hosts": {"127.0.0.1": ["localhost"]}}, "changed": False}),
    ({"database": "passwd", "key": "nobodyhere", "fail_key": False}, "ok",
     {"ansible_facts": {"getent_passwd": {"nobodyhere": None}}, "changed": False,
      "msg": "One or more supplied key could not be found in the database."}),
    ({"database": "nosuchdb"}, "failed", {"changed": False, "msg": "Missing arguments, or database unknown."}),
])
def test_same_as_ansible(h, args, status, expected):
    result = h.run("getent", args)
    assert result.status == status
    assert {key: result.as_register()[key] for key in expected} == expected

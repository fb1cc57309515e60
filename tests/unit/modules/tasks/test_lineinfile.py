import os
import re

import pytest
import voluptuous as vol

from tests.unit.modules.tasks.conftest import mode_of

CONFIG = "# sshd\nPort 22\n#PermitRootLogin yes\nUsePAM yes\n"


@pytest.fixture
def conf(target):
    path = target / "sshd_config"
    path.write_text(CONFIG)
    os.chmod(path, 0o600)
    return path


def test_regexp_replaces_the_line_and_keeps_the_mode(h, conf):
    args = {"path": str(conf), "regexp": r"^#?PermitRootLogin", "line": "PermitRootLogin no"}
    result = h.run("lineinfile", args)
    assert result.changed and result.msg == "line replaced"
    assert conf.read_text() == CONFIG.replace("#PermitRootLogin yes", "PermitRootLogin no")
    assert mode_of(conf) == 0o600
    assert "-#PermitRootLogin yes" in result.diff and "+PermitRootLogin no" in result.diff
    again = h.run("lineinfile", args)
    assert again.status == "ok" and len(h.connection.scripts) == 1


def test_line_added_at_end_once(h, conf):
    args = {"path": str(conf), "line": "X11Forwarding no"}
    assert h.run("lineinfile", args).changed
    assert conf.read_text() == CONFIG + "X11Forwarding no\n"
    assert h.run("lineinfile", args).status == "ok"


def test_missing_final_newline_is_respected(h, target):
    path = target / "f"
    path.write_text("a")
    h.run("lineinfile", {"path": str(path), "line": "b"})
    assert path.read_text() == "a\nb\n"


def test_insertafter_and_insertbefore(h, conf):
    h.run("lineinfile", {"path": str(conf), "line": "Port 2222", "insertafter": "^Port"})
    h.run("lineinfile", {"path": str(conf), "line": "# top", "insertbefore": "BOF"})
    h.run("lineinfile", {"path": str(conf), "line": "ListenAddress ::", "insertbefore": "^UsePAM"})
    assert conf.read_text().splitlines() == ["# top", "# sshd", "Port 22", "Port 2222", "#PermitRootLogin yes",
                                             "ListenAddress ::", "UsePAM yes"]
    for args in ({"line": "Port 2222", "insertafter": "^Port"}, {"line": "# top", "insertbefore": "BOF"}):
        assert h.run("lineinfile", {"path": str(conf), **args}).status == "ok"


def test_backrefs(h, conf):
    args = {"path": str(conf), "regexp": r"^Port (\d+)$", "line": r"Port \g<1>0", "backrefs": True}
    assert h.run("lineinfile", args).changed and "Port 220\n" in conf.read_text()
    no_match = h.run("lineinfile", {**args, "regexp": "^Nothing(.*)"})
    assert no_match.status == "ok" and "Nothing" not in conf.read_text()


def test_absent(h, conf):
    args = {"path": str(conf), "regexp": "^#", "state": "absent"}
    result = h.run("lineinfile", args)
    assert result.changed and result.msg == "2 line(s) removed"
    assert conf.read_text() == "Port 22\nUsePAM yes\n"
    assert h.run("lineinfile", args).status == "ok"
    gone = h.run("lineinfile", {"path": str(conf.parent / "nope"), "line": "x", "state": "absent"})
    assert gone.status == "ok"


def test_check_mode(h, conf):
    result = h.run("lineinfile", {"path": str(conf), "line": "New yes"}, check=True)
    assert result.changed and "+New yes" in result.diff and conf.read_text() == CONFIG
    created = h.run("lineinfile", {"path": str(conf.parent / "new"), "line": "x", "create": True}, check=True)
    assert created.changed and not (conf.parent / "new").exists()


def test_create_and_missing(h, target):
    path = target / "sub" / "new.conf"
    missing = h.run("lineinfile", {"path": str(path), "line": "a=1"})
    assert missing.failed and str(path) in missing.msg and "create" in missing.msg
    assert h.run("lineinfile", {"path": str(path), "line": "a=1"}, check=True).skipped
    created = h.run("lineinfile", {"path": str(path), "line": "a=1", "create": True, "mode": "0640"})
    assert created.changed and path.read_text() == "a=1\n" and mode_of(path) == 0o640


def test_bytes_that_are_not_utf8_survive(h, target):
    path = target / "latin1"
    path.write_bytes(b"caf\xe9\nline\r\n")
    assert h.run("lineinfile", {"path": str(path), "line": "more"}).changed
    assert path.read_bytes() == b"caf\xe9\nline\r\nmore\n"


def test_follows_a_symlink_and_edits_the_real_file(h, conf):
    link = conf.parent / "link"
    link.symlink_to(conf)
    assert h.run("lineinfile", {"path": str(link), "line": "Via link"}).changed
    assert link.is_symlink() and conf.read_text().endswith("Via link\n")


def test_attributes_only(h, conf):
    result = h.run("lineinfile", {"path": str(conf), "line": "Port 22", "mode": "0644"})
    assert result.changed and result.diff == "" and mode_of(conf) == 0o644
    assert result.msg == "ownership, perms or SE linux context changed"   # Ansible's words


def test_directory_is_refused(h, target):
    result = h.run("lineinfile", {"path": str(target), "line": "x"})
    assert result.failed and "directory" in result.msg


@pytest.mark.parametrize("args", [{"path": "/x"}, {"path": "/x", "state": "absent"},
                                  {"path": "/x", "line": "a", "regexp": "(unclosed"},
                                  {"path": "/x", "line": "a", "backrefs": True},
                                  {"path": "/x", "line": "a", "insertafter": "a", "insertbefore": "b"}])
def test_lineinfile_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("lineinfile", args)


# Ansible's argument forms, options and return values (checked against ansible-core 2.19's lineinfile).

def test_ansible_aliases_and_key_value_string(h, target):
    path = target / "new.conf"
    result = h.run("lineinfile", f"dest={path} line=a=1 create=yes mode=0600")
    assert result.changed and path.read_text() == "a=1\n" and mode_of(path) == 0o600
    assert result.msg == "line added and ownership, perms or SE linux context changed"   # created 0644, then chmod
    assert h.run("lineinfile", f"dest={target / 'n2'} line=b create=yes mode=0644").msg == "line added"
    assert result.data == {"backup": ""}
    again = h.run("lineinfile", {"name": str(path), "value": "a=1"})
    assert again.status == "ok" and again.msg == ""
    assert h.run("lineinfile", {"destfile": str(path), "regex": "^a=", "line": "a=2"}).msg == "line replaced"
    assert path.read_text() == "a=2\n"


def test_numeric_mode_from_yaml(h, conf):
    assert h.run("lineinfile", {"path": str(conf), "line": "Port 22", "mode": 0o644}).changed   # YAML's 420
    assert mode_of(conf) == 0o644


def test_search_string(h, conf):
    args = {"path": str(conf), "search_string": "#PermitRootLogin", "line": "PermitRootLogin no"}
    assert h.run("lineinfile", args).msg == "line replaced"
    assert "PermitRootLogin no\n" in conf.read_text() and "#PermitRootLogin" not in conf.read_text()
    gone = h.run("lineinfile", {"path": str(conf), "search_string": "Port ", "state": "absent"})
    assert gone.msg == "1 line(s) removed" and gone.data["found"] == 1 and "Port 22" not in conf.read_text()
    with pytest.raises(vol.Invalid):
        h.params("lineinfile", {**args, "regexp": "^x"})


def test_backup_key_and_name(h, conf):
    result = h.run("lineinfile", {"path": str(conf), "line": "X 1", "backup": "yes"})
    assert re.fullmatch(re.escape(str(conf)) + r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~", result.data["backup"])
    assert open(result.data["backup"]).read() == CONFIG


def test_validate(h, conf):
    bad = h.run("lineinfile", {"path": str(conf), "line": "Oops", "validate": "grep -q NeverThere %s"})
    assert bad.failed and conf.read_text() == CONFIG and len(os.listdir(conf.parent)) == 1
    assert bad.msg == "failed to validate: rc:1 error:"   # Ansible's words
    good = h.run("lineinfile", {"path": str(conf), "line": "Fine", "validate": "grep -q Fine %s"})
    assert good.changed and conf.read_text().endswith("Fine\n")


def test_messages_as_ansible(h, conf, target):
    both = h.run("lineinfile", {"path": str(conf), "line": "New", "mode": "0644"})
    assert both.msg == "line added and ownership, perms or SE linux context changed"
    missing = h.run("lineinfile", {"path": str(target / "none"), "line": "x"})
    assert missing.failed and missing.msg == f"Destination {target / 'none'} does not exist !"
    absent = h.run("lineinfile", {"path": str(target / "none"), "line": "x", "state": "absent"})
    assert absent.status == "ok" and absent.msg == "file not present"

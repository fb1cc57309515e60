import hashlib
import os
import re
import subprocess

import pytest
import voluptuous as vol

from engine.errors import BuildError
from tests.unit.modules.tasks.conftest import leftovers, mode_of


def test_copy_content_writes_the_file(h, target):
    dest = target / "index.html"
    result = h.run("copy", {"content": "hello\n", "dest": str(dest), "mode": "0640"})
    assert result.changed and dest.read_text() == "hello\n" and mode_of(dest) == 0o640
    assert result.data["dest"] == str(dest)
    assert result.data["checksum"] == "f572d396fae9206628714fb2ce00f72e94f2258f"   # sha1, as Ansible's
    assert result.data["md5sum"] == "b1946ac92492d2347c6235b4d2611184"
    assert {k: result.data[k] for k in ("mode", "size", "state", "uid", "owner")} == {
        "mode": "0640", "size": 6, "state": "file", "uid": 0, "owner": "root"}
    assert "+hello" in result.diff
    assert len(h.connection.scripts) == 2 and h.connection.uploads == []   # small content rides on stdin
    assert os.listdir(target) == ["index.html"]                               # no temp file left beside it


def test_copy_large_content_is_uploaded(h, target):
    big = ("x" * 99 + "\n") * 1000
    result = h.run("copy", {"content": big, "dest": str(target / "big"), "mode": "0600"})
    assert result.changed and (target / "big").read_text() == big and mode_of(target / "big") == 0o600
    assert len(h.connection.uploads) == 1 and leftovers(h) == [] and os.listdir(target) == ["big"]
    assert h.run("copy", {"content": big, "dest": str(target / "big"), "mode": "0600"}).status == "ok"


def test_copy_second_run_is_ok_in_one_round_trip(h, target):
    args = {"content": "hello\n", "dest": str(target / "f"), "mode": "0640"}
    h.run("copy", args)
    again = h.run("copy", args)
    assert again.status == "ok" and len(h.connection.scripts) == 1 and h.connection.uploads == []


def test_copy_only_attributes_changed_skips_the_upload(h, target):
    dest = target / "f"
    dest.write_text("same\n")
    os.chmod(dest, 0o600)
    before = dest.stat().st_ino
    result = h.run("copy", {"content": "same\n", "dest": str(dest), "mode": "u=rw,g=r,o=r",
                            "owner": "nobody", "group": "nogroup"})
    assert result.changed and "mode 0600 -> 0644" in result.msg and result.diff == ""
    assert h.connection.uploads == [] and dest.stat().st_ino == before
    assert mode_of(dest) == 0o644 and dest.stat().st_uid == 65534 and dest.stat().st_gid == 65534


def test_copy_replacing_keeps_mode_and_owner(h, target):
    dest = target / "f"
    dest.write_text("old\n")
    os.chmod(dest, 0o751)
    os.chown(dest, 65534, 65534)
    result = h.run("copy", {"content": "new\n", "dest": str(dest)})
    assert result.changed and dest.read_text() == "new\n"
    assert mode_of(dest) == 0o751 and dest.stat().st_uid == 65534
    assert "-old" in result.diff and "+new" in result.diff


def test_copy_new_file_gets_the_umask_default(h, target):
    h.run("copy", {"content": "x", "dest": str(target / "f")})
    assert mode_of(target / "f") == 0o666 & ~0o022


def test_copy_check_mode_changes_nothing(h, target):
    dest = target / "f"
    result = h.run("copy", {"content": "hello\n", "dest": str(dest)}, check=True)
    assert result.changed and "created" in result.msg and "+hello" in result.diff
    assert not dest.exists() and h.connection.uploads == []
    dest.write_text("hello\n")
    os.chmod(dest, 0o600)
    check = h.run("copy", {"content": "hello\n", "dest": str(dest), "mode": "0644"}, check=True)
    assert check.changed and mode_of(dest) == 0o600


def test_copy_src_into_a_directory(h, target):
    h.file("files", "app.conf", b"\x00binary\xff")
    result = h.run("copy", {"src": "app.conf", "dest": str(target)})
    assert result.changed and (target / "app.conf").read_bytes() == b"\x00binary\xff"
    assert result.diff == ""                                   # no diff of binary content
    assert h.run("copy", {"src": "app.conf", "dest": str(target)}).status == "ok"


def test_copy_dest_with_slash_creates_the_directory(h, target):
    h.file("files", "a.txt", "a")
    result = h.run("copy", {"src": "a.txt", "dest": f"{target}/new/dir/"})
    assert result.changed and (target / "new" / "dir" / "a.txt").read_text() == "a"


def test_copy_force_false_keeps_existing_content(h, target):
    (target / "f").write_text("mine")
    assert h.run("copy", {"content": "theirs", "dest": str(target / "f"), "force": False}).status == "ok"
    assert (target / "f").read_text() == "mine"


def test_copy_backup(h, target):
    (target / "f").write_text("v1")
    result = h.run("copy", {"content": "v2", "dest": str(target / "f"), "backup": True})
    backup = result.data["backup_file"]
    assert open(backup).read() == "v1" and (target / "f").read_text() == "v2"


def test_copy_replaces_a_symlink_like_ansible(h, target):
    (target / "real").write_text("real")
    (target / "link").symlink_to(target / "real")
    assert h.run("copy", {"content": "new", "dest": str(target / "link")}).changed
    assert not (target / "link").is_symlink() and (target / "real").read_text() == "real"


def test_copy_failures(h, target):
    missing_dir = h.run("copy", {"content": "x", "dest": str(target / "no" / "f")})
    assert missing_dir.failed and str(target / "no") in missing_dir.msg
    into_dir = h.run("copy", {"content": "x", "dest": str(target)})
    assert into_dir.failed and "is a directory" in into_dir.msg
    bad_owner = h.run("copy", {"content": "x", "dest": str(target / "f"), "owner": "no-such-user"})
    assert bad_owner.failed and "no-such-user" in bad_owner.msg and not (target / "f").exists()
    assert leftovers(h) == [] and os.listdir(target) == []
    with pytest.raises(BuildError):
        h.run("copy", {"src": "missing.txt", "dest": str(target / "f")})


@pytest.mark.parametrize("args", [{"dest": "/x"}, {"dest": "/x", "src": "a", "content": "b"},
                                  {"dest": "/x", "content": "b", "mode": 99999}, {"content": "b"}])
def test_copy_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("copy", args)


def test_template_renders_locally(h, target):
    h.file("templates", "site.conf.j2", "listen {{ port }};\n# {{ greeting }}\n")
    args = {"src": "site.conf.j2", "dest": str(target / "site.conf"), "mode": "0600"}
    result = h.run("template", args)
    assert result.changed and (target / "site.conf").read_text() == "listen 8080;\n# hello\n"
    assert mode_of(target / "site.conf") == 0o600 and "+listen 8080;" in result.diff
    assert h.run("template", args).status == "ok"
    h.variables["port"] = 9090
    check = h.run("template", args, check=True)
    assert check.changed and "-listen 8080;" in check.diff and "+listen 9090;" in check.diff
    assert "8080" in (target / "site.conf").read_text()


def test_template_into_a_directory_drops_the_j2_suffix(h, target):
    h.file("templates", "motd.j2", "{{ greeting }}\n")
    assert h.run("template", {"src": "motd.j2", "dest": f"{target}/"}).changed
    assert (target / "motd").read_text() == "hello\n"


def test_check_mode_into_a_directory_an_earlier_task_would_create(h, target):
    result = h.run("copy", {"content": "x", "dest": str(target / "later" / "f")}, check=True)
    assert result.changed and not (target / "later").exists()


def test_template_missing_raises(h, target):
    with pytest.raises(BuildError):
        h.run("template", {"src": "nope.j2", "dest": str(target / "x")})


# Ansible's argument forms and options (checked against ansible-core 2.19's copy and template).

def test_copy_key_value_string_with_ansible_booleans_and_numeric_mode(h, target):
    (target / "f").write_text("v1")
    result = h.run("copy", f"content=v2 dest={target / 'f'} backup=1 force=yes mode=0640")
    assert result.changed and (target / "f").read_text() == "v2" and mode_of(target / "f") == 0o640
    assert re.fullmatch(re.escape(str(target / "f")) + r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~",
                        result.data["backup_file"])
    assert h.run("copy", {"content": "v3", "dest": str(target / "f"), "force": "no"}).status == "ok"


def test_copy_mode_as_yaml_reads_0644_is_applied_as_0644(h, target):
    result = h.run("copy", {"content": "x", "dest": str(target / "f"), "mode": 0o644})   # YAML 1.1: 420
    assert mode_of(target / "f") == 0o644 and result.data["mode"] == "0644"
    assert h.run("copy", {"content": "x", "dest": str(target / "f"), "mode": 420}).status == "ok"


def test_copy_unchanged_returns_ansibles_values(h, target):
    args = {"content": "hello\n", "dest": str(target / "f")}
    h.run("copy", args)
    again = h.run("copy", args)
    assert again.status == "ok" and again.data["path"] == str(target / "f") and again.data["size"] == 6
    assert again.data["state"] == "file" and "md5sum" not in again.data and "backup_file" not in again.data


def test_copy_validate_refuses_and_keeps_the_old_file(h, target):
    dest = target / "sudoers"
    dest.write_text("good\n")
    bad = h.run("copy", {"content": "bad\n", "dest": str(dest), "validate": "sh -c 'echo no >&2; exit 3' %s"})
    assert bad.failed and bad.msg == "failed to validate" and bad.data["exit_status"] == 3
    assert bad.data["stderr"] == "no" and bad.data["checksum"] and bad.rc is None
    assert dest.read_text() == "good\n" and os.listdir(target) == ["sudoers"]
    ok = h.run("copy", {"content": "good too\n", "dest": str(dest), "validate": "grep -q good %s"})
    assert ok.changed and dest.read_text() == "good too\n"
    with pytest.raises(vol.Invalid, match="validate must contain %s"):
        h.params("copy", {"content": "x", "dest": str(dest), "validate": "visudo -cf"})


def test_copy_mode_preserve_takes_the_source_mode(h, target):
    src = h.file("files", "run.sh", "#!/bin/sh\n")
    os.chmod(src, 0o750)
    result = h.run("copy", {"src": "run.sh", "dest": str(target / "run.sh"), "mode": "preserve"})
    assert result.changed and mode_of(target / "run.sh") == 0o750 and "src" not in result.data
    with pytest.raises(vol.Invalid):
        h.params("copy", {"content": "x", "dest": str(target / "f"), "mode": "preserve"})


def test_copy_remote_src(h, target):
    (target / "orig").write_text("on the target\n")
    os.chmod(target / "orig", 0o600)
    args = {"src": str(target / "orig"), "dest": str(target / "copy"), "remote_src": "yes", "mode": "preserve"}
    result = h.run("copy", args)
    assert result.changed and (target / "copy").read_text() == "on the target\n"
    assert mode_of(target / "copy") == 0o600 and (target / "orig").exists()
    assert result.data["checksum"] == hashlib.sha1(b"on the target\n").hexdigest()
    assert h.run("copy", args).status == "ok"
    missing = h.run("copy", {**args, "src": str(target / "nothing")})
    assert missing.failed and "not found" in missing.msg


def test_copy_follow_writes_through_the_link(h, target):
    (target / "real").write_text("old")
    (target / "link").symlink_to(target / "real")
    assert h.run("copy", {"content": "new", "dest": str(target / "link"), "follow": True}).changed
    assert (target / "link").is_symlink() and (target / "real").read_text() == "new"


def test_copy_attributes_are_set_with_chattr(h, target):
    result = h.run("copy", {"content": "x", "dest": str(target / "f"), "attributes": "+A"})
    flags = subprocess.run(["lsattr", "-d", str(target / "f")], capture_output=True, text=True).stdout.split()[0]
    assert result.changed and "A" in flags
    with pytest.raises(vol.Invalid):
        h.params("copy", {"content": "x", "dest": str(target / "f"), "attributes": "+i!"})


def test_copy_refuses_options_it_cannot_honour(h, target):
    for option in ({"setype": "etc_t"}, {"decrypt": False}):
        with pytest.raises(vol.Invalid, match="unknown option"):
            h.params("copy", {"content": "x", "dest": str(target / "f"), **option})
    assert h.params("copy", {"content": "x", "dest": str(target / "f"), "unsafe_writes": "yes"}).unsafe_writes


def test_template_trims_blocks_by_default_as_ansible(h, target):
    h.file("templates", "t.j2", "{% for x in [1, 2] %}\n  {% if x %}\nline {{ x }}\n  {% endif %}\n{% endfor %}\n")
    h.run("template", {"src": "t.j2", "dest": str(target / "t")})
    assert (target / "t").read_text() == "  line 1\n    line 2\n  \n"   # as ansible-core 2.19 writes it
    h.run("template", {"src": "t.j2", "dest": str(target / "t"), "lstrip_blocks": True})
    assert (target / "t").read_text() == "line 1\nline 2\n"
    h.run("template", {"src": "t.j2", "dest": str(target / "t"), "trim_blocks": "no"})
    assert (target / "t").read_text() == "\n  \nline 1\n  \n\n  \nline 2\n  \n"


def test_template_newline_sequence_encoding_and_header(h, target):
    h.file("templates", "w.j2", "a\nb é\n")
    h.run("template", {"src": "w.j2", "dest": str(target / "w"), "newline_sequence": "\\r\\n",
                       "output_encoding": "latin-1"})
    assert (target / "w").read_bytes() == "a\r\nb é\r\n".encode("latin-1")
    h.file("templates", "hdr.j2", "#jinja2: trim_blocks: False\n{% if true %}\nx\n{% endif %}\n")
    h.run("template", {"src": "hdr.j2", "dest": str(target / "hdr")})
    assert (target / "hdr").read_text() == "\nx\n"
    with pytest.raises(vol.Invalid):
        h.params("template", {"src": "w.j2", "dest": str(target / "w"), "output_encoding": "klingon"})
    with pytest.raises(vol.Invalid, match="unknown option"):
        h.params("template", {"src": "w.j2", "dest": str(target / "w"), "variable_start_string": "[["})


def test_template_numeric_mode_and_key_value(h, target):
    h.file("templates", "m.j2", "{{ port }}\n")
    result = h.run("template", f"src=m.j2 dest={target / 'm'} mode=0600 backup=yes")
    assert result.changed and mode_of(target / "m") == 0o600 and (target / "m").read_text() == "8080\n"
    assert h.run("template", {"src": "m.j2", "dest": str(target / "m"), "mode": 0o600}).status == "ok"

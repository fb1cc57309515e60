import asyncio
import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest
import voluptuous as vol

from engine.errors import BuildError
from engine.registry import TASK_MODULES
from modules.tasks._copytree import walk
from tests.unit.modules.tasks.conftest import ansible_module, leftovers, mode_of


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
    assert into_dir.failed and into_dir.msg == "can not use content with a dir as dest"     # Ansible's words
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


def test_template_into_a_directory_keeps_the_source_name(h, target):
    h.file("templates", "motd.j2", "{{ greeting }}\n")
    assert h.run("template", {"src": "motd.j2", "dest": f"{target}/"}).changed
    assert (target / "motd.j2").read_text() == "hello\n"         # as Ansible 2.19's template writes it


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
    assert result.changed and mode_of(target / "run.sh") == 0o750 and ".run.sh.recipe-" in result.data["src"]
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
    with pytest.raises(vol.Invalid, match="unknown option"):
        h.params("copy", {"content": "x", "dest": str(target / "f"), "setype": "etc_t"})
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
    # template takes Ansible's delimiter options now
    assert h.params("template", {"src": "w.j2", "dest": str(target / "w"),
                                 "variable_start_string": "[["}).variable_start_string == "[["


def test_template_numeric_mode_and_key_value(h, target):
    h.file("templates", "m.j2", "{{ port }}\n")
    result = h.run("template", f"src=m.j2 dest={target / 'm'} mode=0600 backup=yes")
    assert result.changed and mode_of(target / "m") == 0o600 and (target / "m").read_text() == "8080\n"
    assert h.run("template", {"src": "m.j2", "dest": str(target / "m"), "mode": 0o600}).status == "ok"


# A directory src: Ansible's action plugin copies the tree (checked against ansible-core 2.19's copy).

def copy_tree(h, args, check=False):
    """h.run("copy", args) where src may be a directory: the harness's find_file finds files only, the
    engine's, like Ansible's _find_needle, finds a directory too."""
    ctx = h.context(check)
    ctx.find_file = lambda src, kind: h.root / kind / src
    h.connection.reset()
    return asyncio.run(TASK_MODULES.get("copy")().run(h.params("copy", args), ctx))


def make_tree(h):
    """files/conf: a.txt, sub/b.txt, sub/deep/c.txt, a link to a file and a link to a directory."""
    h.file("files", "conf/a.txt", "a\n")
    h.file("files", "conf/sub/b.txt", "b\n")
    h.file("files", "conf/sub/deep/c.txt", "c\n")
    (h.root / "files" / "conf" / "to_a").symlink_to("a.txt")
    (h.root / "files" / "conf" / "sub" / "to_deep").symlink_to("deep")
    return h.root / "files" / "conf"


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: what it is, its mode and owner, its content or link target."""
    found = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(here) / name
            rel, info = str(path.relative_to(root)), path.lstat()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("directory", f"{info.st_mode & 0o7777:04o}", info.st_uid, info.st_gid)
            else:
                found[rel] = ("file", f"{info.st_mode & 0o7777:04o}", info.st_uid, info.st_gid, path.read_bytes())
    return found


def test_copy_tree_the_directory_itself_or_its_contents(h, target):
    conf = make_tree(h)
    itself = copy_tree(h, {"src": "conf", "dest": str(target / "t1")})
    assert itself.changed and itself.data == {"dest": f"{target}/t1/", "src": str(conf)}
    assert (target / "t1" / "conf" / "sub" / "deep" / "c.txt").read_text() == "c\n"
    # local_follow (the default) copies what links point to: a file, and a directory walked as one
    assert (target / "t1" / "conf" / "to_a").read_text() == "a\n" and not (target / "t1" / "conf" / "to_a").is_symlink()
    assert (target / "t1" / "conf" / "sub" / "to_deep" / "c.txt").read_text() == "c\n"
    assert len(h.connection.scripts) == 2                       # one probe, one script for every change
    contents = copy_tree(h, {"src": "conf/", "dest": str(target / "t2")})
    assert contents.changed and contents.data == {"dest": f"{target}/t2/", "src": f"{conf}/"}
    assert sorted(os.listdir(target / "t2")) == ["a.txt", "sub", "to_a"]
    again = copy_tree(h, {"src": "conf", "dest": str(target / "t1")})
    assert again.status == "ok" and len(h.connection.scripts) == 1 and h.connection.uploads == []
    assert leftovers(h) == [] and not [p for p in os.listdir("/tmp") if p.startswith(".recipe-")
                                       and os.path.isdir(f"/tmp/{p}") and not os.listdir(f"/tmp/{p}")]


def test_copy_tree_matches_ansible(h, target):
    make_tree(h)
    for src, options in (("conf", {}), ("conf/", {"mode": "0640", "directory_mode": "0750"}),
                         ("conf/", {"local_follow": False})):
        mine, theirs, local = target / "mine", target / "theirs", f"{h.root}/files/{src}"   # Path drops the /
        for run in (1, 2):
            ours = copy_tree(h, {"src": src, "dest": str(mine), **options})
            real = ansible_module("copy", {"src": local, "dest": str(theirs), **options})
            assert snapshot(mine) == snapshot(theirs), (src, options, run)
            assert (ours.changed, ours.data["dest"]) == (real["changed"], real["dest"].replace("theirs", "mine"))
            assert ours.data["src"] == real["src"] == local and ours.changed is (run == 1)
        subprocess.run(["rm", "-rf", str(mine), str(theirs)], check=True)


def test_copy_tree_modes(h, target):
    make_tree(h)
    os.umask(0o022)
    (target / "t" / "conf" / "sub").mkdir(parents=True)          # an existing directory of the tree
    result = copy_tree(h, {"src": "conf", "dest": str(target / "t"), "mode": "0600", "directory_mode": "0700"})
    assert result.changed
    assert mode_of(target / "t") == 0o755                         # dest was there: not the tree's
    assert mode_of(target / "t" / "conf") == 0o755                # the top directory was there too
    assert mode_of(target / "t" / "conf" / "sub") == 0o700        # a directory of the tree gets directory_mode
    assert mode_of(target / "t" / "conf" / "sub" / "deep") == 0o700
    assert mode_of(target / "t" / "conf" / "sub" / "b.txt") == 0o600
    fresh = copy_tree(h, {"src": "conf/", "dest": str(target / "new" / "dir"), "directory_mode": "0750"})
    assert fresh.changed and mode_of(target / "new") == 0o750 and mode_of(target / "new" / "dir") == 0o750
    assert mode_of(target / "new" / "dir" / "a.txt") == 0o644     # the umask's default, as Ansible's
    (target / "t" / "conf" / "a.txt").chmod(0o644)
    fixed = copy_tree(h, {"src": "conf", "dest": str(target / "t"), "mode": "0600", "directory_mode": "0700"})
    assert fixed.changed and mode_of(target / "t" / "conf" / "a.txt") == 0o600 and h.connection.uploads == []
    assert copy_tree(h, {"src": "conf", "dest": str(target / "t"), "mode": "0600",
                         "directory_mode": "0700"}).status == "ok"


def test_copy_tree_links_kept(h, target):
    make_tree(h)
    result = copy_tree(h, {"src": "conf/", "dest": str(target / "t"), "local_follow": False})
    assert result.changed and os.readlink(target / "t" / "to_a") == "a.txt"
    assert os.readlink(target / "t" / "sub" / "to_deep") == "deep"
    assert copy_tree(h, {"src": "conf/", "dest": str(target / "t"), "local_follow": False}).status == "ok"
    (target / "t" / "to_a").unlink()
    (target / "t" / "to_a").symlink_to("elsewhere")
    assert copy_tree(h, {"src": "conf/", "dest": str(target / "t"), "local_follow": False}).changed
    assert os.readlink(target / "t" / "to_a") == "a.txt"


def test_walk_keeps_a_link_to_a_parent_as_a_link(h):
    conf = make_tree(h)
    (conf / "sub" / "up").symlink_to("..")              # followed, it would copy the tree into itself forever
    tree = walk(str(conf) + "/", local_follow=True)
    assert ("..", "sub/up") in tree.symlinks
    assert sorted(rel for _, rel in tree.files) == ["a.txt", "sub/b.txt", "sub/deep/c.txt", "sub/to_deep/c.txt",
                                                    "to_a"]
    assert sorted(tree.directories) == ["sub", "sub/deep", "sub/to_deep"]
    itself = walk(str(conf), local_follow=False)
    assert sorted(rel for _, rel in itself.symlinks) == ["conf/sub/to_deep", "conf/sub/up", "conf/to_a"]


def test_copy_tree_check_mode_writes_nothing(h, target):
    make_tree(h)
    result = copy_tree(h, {"src": "conf", "dest": str(target / "t")}, check=True)
    assert result.changed and os.listdir(target) == [] and h.connection.uploads == []
    copy_tree(h, {"src": "conf", "dest": str(target / "t")})
    assert copy_tree(h, {"src": "conf", "dest": str(target / "t")}, check=True).status == "ok"
    (target / "t" / "conf" / "a.txt").write_text("changed\n")
    assert copy_tree(h, {"src": "conf", "dest": str(target / "t")}, check=True).changed
    assert (target / "t" / "conf" / "a.txt").read_text() == "changed\n"


def test_copy_tree_of_many_files_is_one_upload(h, target):
    for index in range(300):
        h.file("files", f"many/d{index % 7}/f{index}", os.urandom(512))
    result = copy_tree(h, {"src": "many/", "dest": str(target / "t")})
    assert result.changed and len(h.connection.scripts) == 2 and len(h.connection.uploads) == 1
    assert (target / "t" / "d3" / "f10").read_bytes() == (h.root / "files" / "many" / "d3" / "f10").read_bytes()
    assert len(list((target / "t").rglob("f*"))) == 300 and leftovers(h) == []


def test_copy_tree_of_one_file_registers_the_modules_result(h, target):
    h.file("files", "one/only.txt", "only\n")
    result = copy_tree(h, {"src": "one", "dest": str(target / "t") + "/"})
    path = str(target / "t" / "one" / "only.txt")
    assert result.data["dest"] == path and result.data["checksum"] == hashlib.sha1(b"only\n").hexdigest()
    assert result.data["md5sum"] == hashlib.md5(b"only\n").hexdigest() and result.data["state"] == "file"
    assert result.data["src"].startswith("/tmp/.recipe-") and not os.path.exists(result.data["src"])
    again = copy_tree(h, {"src": "one", "dest": str(target / "t") + "/"})
    assert again.status == "ok" and again.data["path"] == path and again.data["size"] == 5


def test_copy_tree_force_false_and_owner(h, target):
    make_tree(h)
    (target / "t").mkdir()
    (target / "t" / "a.txt").write_text("mine\n")
    result = copy_tree(h, {"src": "conf/", "dest": str(target / "t"), "force": False, "owner": "nobody",
                           "group": "nogroup"})
    assert result.changed and (target / "t" / "a.txt").read_text() == "mine\n"
    assert (target / "t" / "a.txt").stat().st_uid == 0                       # left alone altogether
    for path in ("sub", "sub/b.txt", "sub/deep", "to_a"):
        assert (target / "t" / path).stat().st_uid == 65534 and (target / "t" / path).stat().st_gid == 65534
    assert (target / "t").stat().st_uid == 0                                 # dest was there: not the tree's


def test_copy_remote_tree(h, target):
    make_tree(h)
    source = h.root / "files" / "conf"
    itself = h.run("copy", {"src": str(source), "dest": str(target / "r1"), "remote_src": True})
    assert itself.changed and itself.data["dest"] == str(target / "r1") and itself.data["state"] == "directory"
    assert itself.data["checksum"] is None and len(h.connection.scripts) == 1
    assert os.readlink(target / "r1" / "conf" / "to_a") == "a.txt"       # local_follow unset: links stay links
    again = h.run("copy", {"src": str(source), "dest": str(target / "r1"), "remote_src": True})
    assert again.status == "ok" and again.data["dest"] == str(target / "r1" / "conf")
    (source / "sub" / "b.txt").write_text("new b\n")
    (source / "sub" / "new.txt").write_text("new\n")
    merged = h.run("copy", {"src": f"{source}/", "dest": str(target / "r1" / "conf"), "remote_src": True})
    assert merged.changed and (target / "r1" / "conf" / "sub" / "b.txt").read_text() == "new b\n"
    assert (target / "r1" / "conf" / "sub" / "new.txt").read_text() == "new\n"
    followed = h.run("copy", {"src": f"{source}/", "dest": str(target / "r2"), "remote_src": True,
                              "local_follow": True})
    assert followed.changed and not (target / "r2" / "to_a").is_symlink()


def test_copy_remote_tree_dest_parents_and_check_mode(h, target):
    make_tree(h)
    source = str(h.root / "files" / "conf")
    checked = h.run("copy", {"src": source, "dest": f"{target}/a/b/", "remote_src": True}, check=True)
    assert checked.changed and checked.msg == f"dest directory {target}/a/b would be created"
    assert os.listdir(target) == []
    made = h.run("copy", {"src": source, "dest": f"{target}/a/b/", "remote_src": True, "directory_mode": "0700"})
    assert made.changed and made.data["dest"] == f"{target}/a/b/conf" and mode_of(target / "a") == 0o700
    assert mode_of(target / "a" / "b") == 0o700 and (target / "a" / "b" / "conf" / "sub" / "b.txt").exists()
    missing = h.run("copy", {"src": source, "dest": f"{target}/x/y", "remote_src": True})
    assert missing.failed and missing.msg == f"Destination directory {target}/x does not exist"
    assert h.run("copy", {"src": source, "dest": f"{target}/c", "remote_src": True}, check=True).changed
    assert not (target / "c").exists()


def test_copy_remote_tree_matches_ansible(h, target):
    make_tree(h)
    source = str(h.root / "files" / "conf")
    for src, options in ((source, {}), (source + "/", {"local_follow": True, "owner": "nobody"})):
        for run in (1, 2):
            ours = h.run("copy", {"src": src, "dest": str(target / "mine"), "remote_src": True, **options})
            real = ansible_module("copy", {"src": src, "dest": str(target / "theirs"), "remote_src": True,
                                           **options})
            assert snapshot(target / "mine") == snapshot(target / "theirs"), (src, options, run)
            assert ours.changed == real["changed"] and ours.data["dest"] == real["dest"].replace("theirs", "mine")
        subprocess.run(["rm", "-rf", str(target / "mine"), str(target / "theirs")], check=True)


def test_copy_ansibles_words_for_missing_options(h, target):
    with pytest.raises(vol.Invalid, match=re.escape("src (or content) is required")):
        h.params("copy", {"src": "", "dest": str(target / "f")})
    with pytest.raises(vol.Invalid, match="src and content are mutually exclusive"):
        h.params("copy", {"src": "a", "content": "b", "dest": str(target / "f")})
    with pytest.raises(vol.MultipleInvalid) as missing:
        h.params("copy", {"content": "x"})
    assert [(type(e), e.path) for e in missing.value.errors] == [(vol.RequiredFieldInvalid, ["dest"])]
    assert TASK_MODULES.get("copy").missing_words.format("dest") == "dest is required"
    # decrypt: Ansible decrypts vault files; recipe has none, so it is accepted and changes nothing
    h.file("files", "plain.txt", "plain\n")
    assert h.run("copy", {"src": "plain.txt", "dest": str(target / "p"), "decrypt": "no"}).changed
    assert (target / "p").read_text() == "plain\n"


def test_copy_tree_backup_and_validate(h, target):
    h.file("files", "one/only.txt", "new\n")
    (target / "one").mkdir()
    (target / "one" / "only.txt").write_text("old\n")
    result = copy_tree(h, {"src": "one", "dest": str(target), "backup": True})
    assert result.changed and open(result.data["backup_file"]).read() == "old\n"
    assert (target / "one" / "only.txt").read_text() == "new\n"
    refused = copy_tree(h, {"src": "one", "dest": str(target), "validate": "true %s"})
    assert refused.failed and "validate" in refused.msg


def test_remote_src_expands_variables_and_the_home_tilde_on_the_target_as_ansible(h, target):
    # Ansible's copy takes src and dest as `path` options: $HOME and ~ are the target's; nothing else runs
    home = target / "home"
    home.mkdir()
    (home / "keys").write_text("ssh-ed25519 AAAA\n")
    os.environ["RECIPE_TEST_HOME"] = str(home)
    try:
        result = h.run("copy", {"src": "$RECIPE_TEST_HOME/keys", "dest": "${RECIPE_TEST_HOME}/copied",
                                "remote_src": True})
    finally:
        del os.environ["RECIPE_TEST_HOME"]
    assert result.changed and (home / "copied").read_text() == "ssh-ed25519 AAAA\n"
    assert result.data["src"] == str(home / "keys")
    marker = target / "ran"
    bad = h.run("copy", {"src": f"$(touch {marker})", "dest": str(target / "x"), "remote_src": True})
    assert bad.failed and not marker.exists()

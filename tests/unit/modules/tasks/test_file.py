import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime

import pytest
import voluptuous as vol

from engine.registry import TASK_MODULES
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
    assert result.failed and result.msg == f"{target / 'f'} already exists as a file"     # Ansible's words


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
    assert missing.failed and missing.msg == f"file ({target / 'nope'}) is absent, cannot continue"
    assert h.run("file", {"path": str(target), "state": "file"}).msg == f"file ({target}) is directory, cannot continue"
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


def test_hard_link_onto_a_directory_goes_into_it_under_the_sources_name(h, target):
    (target / "real").write_text("x")
    (target / "sub").mkdir()
    args = {"path": str(target / "sub"), "state": "hard", "src": str(target / "real")}
    made = h.run("file", args)
    assert made.changed and made.data["dest"] == str(target / "sub" / "real")
    assert (target / "sub").is_dir() and (target / "sub" / "real").stat().st_ino == (target / "real").stat().st_ino
    assert h.run("file", args).status == "ok"


def test_an_absent_path_without_a_state_fails_in_ansibles_words_or_becomes_a_directory_with_recurse(h, target):
    ghost = h.run("file", {"path": str(target / "ghost")})
    assert ghost.failed and ghost.msg == f"file ({target / 'ghost'}) is absent, cannot continue"
    assert ghost.data["state"] == "absent"
    assert h.run("file", {"path": str(target / "tree"), "recurse": True, "mode": "0750"}).changed
    assert (target / "tree").is_dir() and oct((target / "tree").stat().st_mode & 0o777) == "0o750"


def test_bad_owner_fails_with_the_tool_message(h, target):
    (target / "f").write_text("")
    result = h.run("file", {"path": str(target / "f"), "owner": "no-such-user"})
    assert result.failed and "no-such-user" in result.msg


def test_link_without_src_keeps_an_existing_link_and_cannot_make_a_new_one(h, target):
    (target / "real").write_text("x")
    (target / "link").symlink_to(target / "real")
    assert h.run("file", {"path": str(target / "link"), "state": "link", "follow": False}).status == "ok"
    assert (target / "link").readlink() == target / "real"
    made = h.run("file", {"path": str(target / "new"), "state": "link"})
    assert made.failed and made.msg == "src is required for creating new symlinks"


@pytest.mark.parametrize("args", [{"path": "/x", "state": "hard"}, {"path": "/x", "state": "weird"},
                                  {"path": "/x", "state": "touch", "recurse": True}, {"path": "/x", "mode": "rwx"}])
def test_file_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("file", args)


# Ansible's argument forms and return values (checked against ansible-core 2.19's file).

def test_aliases_key_value_and_numeric_mode(h, target):
    result = h.run("file", f"dest={target / 'd'} state=directory mode=0750")
    assert result.changed and mode_of(target / "d") == 0o750
    assert {k: result.data[k] for k in ("path", "state", "mode", "owner", "uid")} == {
        "path": str(target / "d"), "state": "directory", "mode": "0750", "owner": "root", "uid": 0}
    again = h.run("file", {"name": str(target / "d"), "state": "directory", "mode": 0o750})   # YAML's 488
    assert again.status == "ok" and again.data["mode"] == "0750" and again.data["size"] > 0


def test_link_and_touch_return_dest(h, target):
    (target / "real").write_text("x")
    link = h.run("file", {"path": str(target / "l"), "src": str(target / "real"), "state": "link"})
    assert link.data["dest"] == str(target / "l") and link.data["src"] == str(target / "real")
    assert link.data["state"] == "link" and link.data["mode"] == "0777"
    touched = h.run("file", {"path": str(target / "t"), "state": "touch", "mode": "0600"})
    assert touched.changed and touched.data["dest"] == str(target / "t") and touched.data["mode"] == "0600"
    gone = h.run("file", {"path": str(target / "t"), "state": "absent"})
    assert gone.data == {"path": str(target / "t"), "state": "absent"}


def test_touch_with_preserved_times_changes_nothing_on_an_existing_file(h, target):
    path = target / "t"
    path.write_text("")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    args = {"path": str(path), "state": "touch", "access_time": "preserve", "modification_time": "preserve"}
    assert h.run("file", args).status == "ok" and path.stat().st_mtime == 1_000_000_000
    assert h.run("file", {"path": str(path), "state": "touch"}).changed and path.stat().st_mtime > 1_000_000_000


def test_explicit_times_are_set_once(h, target):
    path = target / "f"
    path.write_text("")
    args = {"path": str(path), "modification_time": "202001021304.05", "access_time": "2020-01-02 13:04:05",
            "access_time_format": "%Y-%m-%d %H:%M:%S"}
    result = h.run("file", args)
    want = datetime(2020, 1, 2, 13, 4, 5).timestamp()
    assert result.changed and path.stat().st_mtime == want and path.stat().st_atime == want
    assert h.run("file", args).status == "ok"
    with pytest.raises(vol.Invalid, match="does not match the format"):
        h.params("file", {"path": str(path), "modification_time": "yesterday"})


def test_follow_false_leaves_the_link_target_alone(h, target):
    (target / "real").write_text("x")
    os.chmod(target / "real", 0o600)
    (target / "l").symlink_to(target / "real")
    assert h.run("file", {"path": str(target / "l"), "mode": "0644"}).changed
    assert mode_of(target / "real") == 0o644
    result = h.run("file", {"path": str(target / "l"), "owner": "root", "follow": "no"})
    assert result.status == "ok" and result.data["state"] == "link"


def test_attributes_with_chattr(h, target):
    (target / "f").write_text("x")
    assert h.run("file", {"path": str(target / "f"), "attr": "+A"}).changed
    flags = subprocess.run(["lsattr", "-d", str(target / "f")], capture_output=True, text=True).stdout.split()[0]
    assert "A" in flags


# The diff in diff mode (ctx.diff), compared with ansible-core's own file module run on the same paths.

def run_diff(h, args, check: bool = False):
    """h.run with the TaskContext's diff flag set, as `diff: yes` or --diff sets it."""
    h.connection.reset()
    context = dataclasses.replace(h.context(check), diff=True)
    return asyncio.run(TASK_MODULES.get("file")().run(h.params("file", args), context))


def ansible_file(args: dict, check: bool) -> dict:
    """What ansible-core's file module returns in diff mode: the module itself, run as Ansible runs it (its
    arguments in a file), so its diff is not dropped by a callback."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_diff": True, "_ansible_check_mode": check}}, handle)
        handle.flush()
        done = subprocess.run([sys.executable, "-m", "ansible.modules.file", handle.name],
                              capture_output=True, text=True, timeout=120)
    assert done.stdout.strip(), f"ansible's file module gave nothing: {done.stderr[-500:]}"
    return json.loads(done.stdout)


def timeless(diff):
    """A diff with its times as their type: a time Ansible reads or sets differs between two runs."""
    if not isinstance(diff, dict):
        return diff
    return {side: {key: type(value).__name__ if key in ("atime", "mtime") else value
                   for key, value in values.items()} for side, values in diff.items()}


SCENARIOS = [   # (shell run in an empty directory first, arguments with @ for that directory)
    ("echo x > f", {"path": "@/f", "state": "file", "mode": "0600"}),
    ("echo x > f; ln f g", {"path": "@/f", "state": "file"}),
    ("echo x > f; ln -s f l", {"path": "@/l", "state": "file", "mode": "u=rw"}),
    ("echo x > f", {"path": "@/f", "owner": "nobody", "group": "nogroup", "mode": "0640"}),
    ("echo x > f", {"path": "@/f", "modification_time": "202001021304.05", "access_time": "now"}),
    ("", {"path": "@/d/e", "state": "directory", "mode": "0700", "owner": "65534"}),
    ("mkdir d; ln -s d l", {"path": "@/l", "state": "directory", "mode": "0700"}),
    ("mkdir -p d/a/b d/c; touch d/f d/a/g d/a/b/h; ln -s a d/la; ln -s f d/lf", {"path": "@/d", "state": "absent"}),
    ("ln -s nowhere l", {"path": "@/l", "state": "absent"}),
    ("", {"path": "@/f", "state": "absent"}),
    ("", {"path": "@/t", "state": "touch", "mode": "0600"}),
    ("mkdir t", {"path": "@/t", "state": "touch"}),
    ("touch f g; ln -s f l", {"path": "@/l", "state": "link", "src": "g"}),
    ("touch f g", {"path": "@/g", "state": "link", "src": "f", "force": True}),
    ("touch f", {"path": "@/h", "state": "hard", "src": "@/f", "mode": "0600"}),
    ("touch f; ln -s f h", {"path": "@/h", "state": "hard", "src": "@/f", "force": True}),
    ("touch f", {"path": "@/f", "state": "file", "attributes": "A", "mode": "0600"}),
]


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
@pytest.mark.parametrize("setup,args", SCENARIOS, ids=[f"{a.get('state')}-{s or 'empty'}" for s, a in SCENARIOS])
def test_diff_is_ansibles(h, target, setup, args, check):
    args = {key: value.replace("@", str(target)) if isinstance(value, str) else value for key, value in args.items()}

    def fresh() -> None:
        shutil.rmtree(target)
        target.mkdir()
        subprocess.run(setup or "true", shell=True, cwd=target, check=True)

    fresh()
    ours = run_diff(h, args, check).as_register()
    fresh()
    theirs = ansible_file(args, check)
    assert (ours["changed"], ours["failed"]) == (theirs["changed"], theirs.get("failed", False))
    assert timeless(ours.get("diff")) == timeless(theirs.get("diff"))


def test_no_diff_unless_asked(h, target):
    assert "diff" not in h.run("file", {"path": str(target / "d"), "state": "directory"}).data
    assert "diff" not in h.run("file", {"path": str(target / "d"), "state": "absent"}).data
    assert "diff" not in run_diff(h, {"path": str(target / "d"), "state": "absent"}).data   # nothing removed


def test_diff_times_are_the_files_own(h, target):
    path = target / "f"
    path.write_text("")
    before = path.stat()
    result = run_diff(h, {"path": str(path), "modification_time": "202001021304.05"}, check=True)
    want = datetime(2020, 1, 2, 13, 4, 5).timestamp()
    assert result.changed and path.stat().st_mtime == before.st_mtime     # check mode changes nothing
    # the float Python's os.stat gives, to the nanosecond, and the time asked for
    assert result.data["diff"] == {"before": {"path": str(path), "mtime": before.st_mtime},
                                   "after": {"path": str(path), "mtime": want}}
    touched = run_diff(h, {"path": str(path), "state": "touch"})
    assert touched.data["diff"]["after"]["mtime"] == touched.data["diff"]["after"]["atime"] >= before.st_mtime


def test_diff_is_shown_as_ansible_prints_it(h, target):
    (target / "f").write_text("")
    os.chmod(target / "f", 0o644)
    result = run_diff(h, {"path": str(target / "f"), "mode": "0600"})
    assert '-    "mode": "0644",\n+    "mode": "0600",\n' in result.diff


def test_every_directory_made_gets_the_mode(h, target):
    result = h.run("file", {"path": str(target / "a" / "b" / "c"), "state": "directory", "mode": "0700"})
    assert result.changed and [mode_of(target / "a"), mode_of(target / "a" / "b")] == [0o700, 0o700]
    assert mode_of(target / "a" / "b" / "c") == 0o700 and mode_of(target) != 0o700   # what was there stays


def test_a_followed_link_is_named_by_the_path_it_resolves_to(h, target):
    (target / "f").write_text("x")
    (target / "l").symlink_to("f")
    args = {"path": str(target / "l"), "state": "file", "mode": "0600"}
    assert h.run("file", args).data["path"] == str(target / "f")
    os.chmod(target / "f", 0o644)
    assert ansible_file(args, check=False)["path"] == str(target / "f")

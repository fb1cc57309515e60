"""user and group: the commands each state leads to, and the real probe on this machine, read-only (check mode,
or accounts that are already as asked): no account is added to this machine."""
import os
import pwd

import pytest
import voluptuous as vol

from modules.tasks._remote import tagged
from modules.tasks.group import group_commands
from modules.tasks.user import Account, User, plan_user

SHADOW = {"useradd", "usermod", "userdel", "chpasswd"}
BUSYBOX = {"adduser", "deluser", "addgroup", "chpasswd"}
HASH = "$y$j9T$abcdefgh$ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmno12"
ALICE = Account("1000", "1000", "Alice", "/home/alice", "/bin/bash", "alice", ("sudo", "docker"), HASH)


def user(**kwargs) -> User.Params:
    return User.params({"name": "alice", **kwargs})


def test_probe_output_parses_into_an_account():
    tags, _ = tagged("passwd alice:x:1000:1000:Alice:/home/alice:/bin/bash\ngroups alice sudo docker\n"
                     "primary alice\nshadow " + HASH + "\ntool useradd\n")
    assert Account.parse(tags) == ALICE
    assert Account.parse({}) is None


def test_create_with_useradd_and_the_password_on_stdin():
    cmds, changes, password = plan_user(user(uid=1001, groups=["sudo", "docker"], shell="/bin/bash", comment="A b",
                                             system=True, password=HASH), None, SHADOW)
    assert cmds == ["useradd -u 1001 -G sudo,docker -s /bin/bash -m -r -c 'A b' alice", "chpasswd -e"]
    assert changes == ["created"] and password == HASH and all(HASH not in c for c in cmds)
    assert plan_user(user(create_home=False), None, SHADOW)[0] == ["useradd -M alice"]


def test_create_with_busybox():
    cmds, _, _ = plan_user(user(group="users", groups=["wheel"], create_home=False), None, BUSYBOX)
    assert cmds == ["adduser -D -G users -H alice", "addgroup alice wheel"]


def test_nothing_to_do_when_as_asked():
    same = user(uid=1000, group="alice", groups=["docker", "sudo"], shell="/bin/bash", home="/home/alice",
                comment="Alice", password=HASH)
    assert plan_user(same, ALICE, SHADOW) == ([], [], None)
    assert plan_user(user(group="1000", groups=["sudo"], append=True), ALICE, SHADOW)[0] == []


def test_changes_in_one_usermod():
    cmds, changes, password = plan_user(user(uid=1002, shell="/bin/sh", groups=["sudo"], password="!"), ALICE, SHADOW)
    assert cmds == ["usermod -u 1002 -G sudo -s /bin/sh alice", "chpasswd -e"]
    assert changes == ["uid 1000 -> 1002", "groups sudo,docker -> sudo", "shell /bin/bash -> /bin/sh",
                       "password changed"] and password == "!"
    cmds, changes, _ = plan_user(user(groups=["adm", "sudo"], append=True), ALICE, SHADOW)
    assert cmds == ["usermod -a -G adm alice"] and changes == ["groups +adm"]
    assert plan_user(user(groups=[]), ALICE, SHADOW)[0] == ["usermod -G '' alice"]
    assert plan_user(user(password="!", update_password="on_create"), ALICE, SHADOW)[0] == []


def test_busybox_can_only_append_groups():
    assert plan_user(user(groups=["adm"], append=True), ALICE, BUSYBOX)[0] == ["addgroup alice adm"]
    with pytest.raises(ValueError, match="usermod is not on the target"):
        plan_user(user(shell="/bin/sh"), ALICE, BUSYBOX)


def test_remove():
    assert plan_user(user(state="absent", remove=True), ALICE, SHADOW)[0] == ["userdel -r alice"]
    assert plan_user(user(state="absent"), ALICE, BUSYBOX)[0] == ["deluser alice"]
    assert plan_user(user(state="absent"), None, SHADOW)[0] == []


def test_user_on_this_machine(h):
    root = h.run("user", {"name": "root", "uid": 0, "home": "/root"})
    assert root.status == "ok" and root.data["uid"] == 0 and len(h.connection.scripts) == 1
    entry = pwd.getpwnam("root")
    assert root.data == {"name": "root", "state": "present", "uid": 0, "group": 0, "home": "/root",   # as Ansible
                         "shell": entry.pw_shell, "comment": entry.pw_gecos, "system": False}
    new = h.run("user", {"name": "recipe-test-nobody", "groups": ["nogroup"], "password": HASH}, check=True)
    assert new.changed and new.msg == "user recipe-test-nobody created" and new.data["state"] == "absent"
    assert HASH not in repr(new) and all(HASH not in script for script in h.connection.scripts)
    assert h.run("user", {"name": "recipe-test-nobody", "state": "absent"}).status == "ok"
    shell = pwd.getpwnam("nobody").pw_shell
    nobody = h.run("user", {"name": "nobody", "shell": "/bin/true" if shell != "/bin/true" else "/bin/false"},
                   check=True)
    assert nobody.changed and f"shell {shell} -> /bin/" in nobody.msg and pwd.getpwnam("nobody").pw_shell == shell


def test_user_rejects_plain_passwords_without_echoing_them(h):
    with pytest.raises(vol.Invalid) as caught:
        h.params("user", {"name": "alice", "password": "correct horse battery staple"})
    assert "correct horse" not in str(caught.value) and "already hashed" in str(caught.value)


@pytest.mark.parametrize("args", [{}, {"name": "a:b"}, {"name": "alice", "shell": "/bin/sh:x"},
                                  {"name": "alice", "uid": -1}, {"name": "alice", "groups": ["bad group"]}])
def test_user_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("user", args)


def test_group_commands():
    assert group_commands("web", "present", 900, True, None, {"groupadd"}) == (["groupadd -g 900 -r web"], "created")
    assert group_commands("web", "present", None, True, None, {"addgroup"}) == (["addgroup -S web"], "created")
    entry = ["web", "x", "901", ""]
    assert group_commands("web", "present", 900, False, entry, {"groupmod"}) == (["groupmod -g 900 web"],
                                                                                  "gid 901 -> 900")
    assert group_commands("web", "present", 901, False, entry, set()) == ([], "")
    assert group_commands("web", "absent", None, False, entry, {"delgroup"}) == (["delgroup web"], "removed")
    with pytest.raises(ValueError, match="groupmod"):
        group_commands("web", "present", 900, False, entry, {"addgroup"})


def test_group_on_this_machine(h):
    assert h.run("group", {"name": "nogroup", "gid": 65534}).status == "ok"
    new = h.run("group", {"name": "recipe-test-group", "gid": 4321}, check=True)
    assert new.changed and new.msg == "group recipe-test-group created" and len(h.connection.scripts) == 1
    assert h.run("group", {"name": "recipe-test-group", "state": "absent"}).status == "ok"
    assert h.run("group", "nogroup").status == "ok"


def stand_ins(tmp_path, monkeypatch, *tools):
    """Tools replaced by scripts that log their arguments and their stdin: the machine's accounts stay as they are."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    for tool in tools:
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n'
                                    f'[ -t 0 ] || sed "s/^/{tool} stdin: /" >> {log}\n')
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def test_user_action_wiring_keeps_the_password_off_command_lines(h, tmp_path, monkeypatch):
    log = stand_ins(tmp_path, monkeypatch, "useradd", "usermod", "userdel", "chpasswd")
    result = h.run("user", {"name": "recipe-test-x", "groups": ["nogroup"], "shell": "/bin/sh", "password": HASH})
    assert result.changed and result.msg == "user recipe-test-x created"
    lines = log.read_text().splitlines()
    assert lines[0] == "useradd -G nogroup -s /bin/sh -m recipe-test-x" and lines[-2] == "chpasswd -e"
    assert "useradd stdin: " not in log.read_text() and f"chpasswd stdin: recipe-test-x:{HASH}" in lines
    assert all(HASH not in script for script in h.connection.scripts) and HASH not in repr(result)


def test_group_action_wiring(h, tmp_path, monkeypatch):
    log = stand_ins(tmp_path, monkeypatch, "groupadd", "groupmod", "groupdel")
    assert h.run("group", {"name": "recipe-test-g", "gid": 4321, "system": True}).changed
    assert log.read_text().splitlines()[0] == "groupadd -g 4321 -r recipe-test-g"
    assert h.run("group", {"name": "nogroup", "gid": 4321}).changed
    assert log.read_text().splitlines()[-1] == "groupmod -g 4321 nogroup"


def test_ansible_key_value_forms_and_aliases(h):
    user = h.params("user", "user=bob uid=1500 createhome=no system=yes")
    assert (user.name, user.uid, user.create_home, user.system) == ("bob", 1500, False, True)
    assert h.params("user", "name=bob shell=/bin/sh").shell == "/bin/sh"
    group = h.params("group", "name=web gid=1600 system=1")
    assert (group.name, group.gid, group.system) == ("web", 1600, True)

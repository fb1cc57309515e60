"""service: what the probe's output means, the commands for each init system, and the real probe, read-only."""
import os
import shutil
import subprocess

import pytest
import voluptuous as vol

from modules.tasks._remote import tagged
from modules.tasks.service import Current, commands, plan, probe_script


def current(text: str) -> Current:
    return Current.parse(tagged(text)[0])


SYSTEMD_RUNNING = "init systemd\nshow LoadState=loaded\nshow ActiveState=active\nenabled 0 enabled\n"
SYSTEMD_STOPPED = "init systemd\nshow LoadState=loaded\nshow ActiveState=inactive\nenabled 1 disabled\n"


def test_systemd_state_parsing():
    running = current(SYSTEMD_RUNNING)
    assert running.exists and running.running and running.enabled and running.init == "systemd"
    stopped = current(SYSTEMD_STOPPED)
    assert not stopped.running and not stopped.enabled
    assert not current("init systemd\nshow LoadState=not-found\nshow ActiveState=inactive\nenabled 1 \n").exists
    assert not current("init systemd\nshow LoadState=loaded\nshow ActiveState=active\nenabled 0 indirect\n").enabled
    assert current("init systemd\nshow LoadState=loaded\nshow ActiveState=failed\nenabled 0 static\n").enabled
    assert current("init systemd\nshow LoadState=loaded\nshow ActiveState=deactivating\nenabled 1 x\n").stopping


def test_plans_are_idempotent_where_they_can_be():
    running, stopped = current(SYSTEMD_RUNNING), current(SYSTEMD_STOPPED)
    assert plan(running, "started", True) == ([], [], "")
    assert plan(stopped, "started", True) == (["enable", "start"], ["enabled", "started"], "")
    assert plan(running, "stopped", False)[0] == ["disable", "stop"]
    assert plan(stopped, "stopped", None)[0] == []
    assert plan(running, "restarted", None)[0] == ["restart"]       # always
    assert plan(running, "reloaded", None)[0] == ["reload"]
    assert plan(stopped, "reloaded", None)[0] == ["start"]          # as Ansible: not running, so started
    static = current("init systemd\nshow LoadState=loaded\nshow ActiveState=active\nenabled 0 static\n")
    verbs, _, note = plan(static, None, False)
    assert verbs == [] and "static" in note


def test_commands_per_init_system():
    assert commands("systemd", "nginx", "start") == ["systemctl start -- nginx"]
    assert commands("openrc", "nginx", "enable") == ["rc-update add nginx default"]
    assert commands("openrc", "nginx", "disable") == ["rc-update -a del nginx"]
    assert commands("openrc", "nginx", "reload") == ["rc-service nginx reload"]
    assert commands("sysv", "nginx", "enable", ("update-rc.d",)) == ["update-rc.d nginx defaults",
                                                                      "update-rc.d nginx enable"]
    assert commands("sysv", "nginx", "disable", ("chkconfig",)) == ["chkconfig nginx off"]
    assert "service nginx restart" in commands("sysv", "nginx", "restart")[0]


def test_sysv_and_openrc_state_parsing():
    sysv = current("init sysv\nshow LoadState=loaded\nstatus 3\nenabled 0\ntool update-rc.d\n")
    assert sysv.exists and not sysv.running and sysv.enabled and sysv.tools == ("update-rc.d",)
    assert not current("init openrc\nstatus 0\nenabled 1\n").exists


def test_probe_reloads_systemd_only_when_asked():
    assert "daemon-reload" in probe_script("nginx", True) and "daemon-reload" not in probe_script("nginx", False)


def test_service_on_this_machine_in_check_mode(h):
    """The real probe, whatever init this machine runs; check mode, so nothing is started or stopped."""
    missing = h.run("service", {"name": "no-such-service-here", "state": "started"})
    assert missing.failed and "could not find the service no-such-service-here" in missing.msg
    assert len(h.connection.scripts) == 1
    later = h.run("service", {"name": "no-such-service-here", "state": "started"}, check=True)
    assert later.skipped and "cannot check" in later.msg
    if not shutil.which("service") and not shutil.which("systemctl"):
        return
    name = "ssh" if subprocess.run(["sh", "-c", "[ -x /etc/init.d/ssh ]"]).returncode == 0 else None
    if name:
        result = h.run("service", {"name": name, "state": "restarted"}, check=True)
        assert result.changed and result.msg == f"{name} restarted" and len(h.connection.scripts) == 1


@pytest.mark.parametrize("args", [{}, {"name": "nginx"}, {"name": "a b", "state": "started"},
                                  {"name": "nginx", "state": "running"}, {"name": "-x", "state": "started"}])
def test_service_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("service", args)


def test_sysv_action_wiring_with_a_stand_in_service(h, tmp_path, monkeypatch):
    """On a machine without systemd, `service` is what runs the init script: replaced here, so nothing starts."""
    if subprocess.run(["sh", "-c", "[ -d /run/systemd/system ] || [ ! -x /etc/init.d/ssh ]"]).returncode == 0:
        pytest.skip("needs a SysV machine with /etc/init.d/ssh")
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    (bin_dir / "service").write_text(f'#!/bin/sh\necho "service $*" >> {log}\n[ "$2" = status ] && exit 3\nexit 0\n')
    (bin_dir / "service").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    result = h.run("service", {"name": "ssh", "state": "started"})
    assert result.changed and result.msg == "ssh started" and result.data["init"] == "sysv"
    assert log.read_text().splitlines() == ["service ssh status", "service ssh start"]
    assert h.run("service", {"name": "ssh", "state": "stopped"}).status == "ok"     # status says it is not running


def test_ansible_forms_and_arguments(h):
    params = h.params("service", "name=nginx state=started enabled=yes args=--quiet")
    assert (params.name, params.state, params.enabled, params.arguments) == ("nginx", "started", True, "--quiet")
    assert commands("openrc", "nginx", "start", arguments="--quiet") == ["rc-service nginx start --quiet"]
    assert "service nginx reload '-x y'" in commands("sysv", "nginx", "reload", arguments="'-x y'")[0]
    assert commands("systemd", "nginx", "start", arguments="--quiet") == ["systemctl start -- nginx"]

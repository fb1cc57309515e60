"""systemd: what `systemctl show` and is-enabled answers mean, option checks, and the real probe, read-only."""
import os
import shutil
import subprocess

import pytest
import voluptuous as vol

from engine.registry import TASK_MODULES
from modules.tasks._systemd import parse_show
from modules.tasks.systemd import Systemd, Unit, state_action

SHOW = """Type=simple
ExecStart={ path=/usr/sbin/sshd ; argv[]=/usr/sbin/sshd -D $SSHD_OPTS ;
 ignore_errors=no ; start_time=[n/a] }
ExecReload={ path=/bin/kill ; argv[]=/bin/kill -HUP $MAINPID }
ActiveState=active
LoadState=loaded
Description=OpenBSD Secure Shell server
"""


def unit(word: str, rc: int, status: dict | None = None, **kwargs) -> Unit:
    return Unit(status or {}, rc, word, listed=kwargs.get("listed", False), initd=kwargs.get("initd", False),
                sysv_enabled=kwargs.get("sysv_enabled", False))


def test_show_is_parsed_as_ansible_does():
    status = parse_show(SHOW.splitlines())
    assert status["ActiveState"] == "active" and status["Description"] == "OpenBSD Secure Shell server"
    assert status["ExecStart"].startswith("{ path=/usr/sbin/sshd") and status["ExecStart"].endswith("}")
    assert "\n ignore_errors=no" in status["ExecStart"]
    assert status["ExecReload"] == "{ path=/bin/kill ; argv[]=/bin/kill -HUP $MAINPID }"


def test_enabled_as_ansible_counts_it():
    assert unit("enabled", 0).enabled("system") and unit("static", 0).enabled("system")
    for word in ("indirect", "alias", "enabled-runtime"):    # Ansible enables these anyway
        assert not unit(word, 0).enabled("system")
    assert not unit("disabled", 1).enabled("system")
    sysv = unit("", 1, initd=True, sysv_enabled=True)
    assert sysv.enabled("system") and not sysv.enabled("user")
    assert not unit("disabled", 1, initd=True, sysv_enabled=True).enabled("system")


def test_which_units_systemd_knows():
    assert unit("", 1, {"LoadState": "loaded"}).is_systemd
    assert not unit("enabled", 0, {"LoadState": "not-found"}).is_systemd    # show answered: it decides
    assert unit("disabled", 1).is_systemd and unit("", 1, listed=True).is_systemd   # offline: is-enabled
    assert not unit("", 1).is_systemd


def test_state_actions():
    active, inactive = {"ActiveState": "active"}, {"ActiveState": "inactive"}
    assert state_action(active, "started") is None and state_action(inactive, "started") == "start"
    assert state_action(active, "stopped") == "stop" and state_action(inactive, "stopped") is None
    assert state_action({"ActiveState": "deactivating"}, "stopped") == "stop"
    assert state_action(active, "restarted") == "restart" and state_action(active, "reloaded") == "reload"
    assert state_action(inactive, "reloaded") == "start"        # as Ansible: what does not run is started


def test_options(h):
    assert TASK_MODULES.get("systemd_service") is Systemd
    p = h.params("systemd_service", {"unit": "ssh.socket", "masked": "yes", "daemon-reload": "true",
                                     "scope": "user", "no_block": True, "force": True})
    assert p.name == "ssh.socket" and p.masked is True and p.daemon_reload is True
    assert p.systemctl == "systemctl --user --no-block --force"
    assert h.params("systemd", "name=ssh state=started enabled=yes").enabled is True
    for bad, word in (({"name": "ssh"}, "give one of"), ({"state": "started"}, "needs name"),
                      ({"name": "ss*", "state": "started"}, "not a unit name"),
                      ({"name": "ssh", "state": "running"}, "state")):
        with pytest.raises(vol.Invalid, match=word):
            h.params("systemd", bad)


def is_enabled(name: str) -> tuple[int, str]:
    res = subprocess.run(["systemctl", "is-enabled", name], capture_output=True, text=True)
    return res.returncode, res.stdout.strip()


@pytest.mark.skipif(not shutil.which("systemctl"), reason="no systemctl on this machine")
def test_the_real_probe_agrees_with_systemctl_read_only(h):
    """Check mode only: nothing on this machine changes."""
    rc, word = is_enabled("ssh.service")
    result = h.run("systemd", {"name": "ssh.service", "enabled": True}, check=True)
    if not word:   # no such unit here
        assert result.failed and "Could not find" in result.msg
        return
    assert result.data["enabled"] == (rc == 0 and word not in ("indirect", "alias", "enabled-runtime"))
    assert result.changed == (not result.data["enabled"])
    assert result.data["name"] == "ssh.service" and isinstance(result.data["status"], dict)
    assert len(h.connection.scripts) == 1


@pytest.mark.skipif(not shutil.which("systemctl") or os.path.isdir("/run/systemd/system"),
                    reason="needs systemctl on a machine where systemd does not run")
def test_without_a_running_systemd_a_state_fails_as_in_ansible(h):
    result = h.run("systemd", {"name": "recipe-no-such-unit", "state": "started"}, check=True)
    assert result.failed and "booted with systemd" in result.msg and "\n" not in result.msg
    if is_enabled("ssh.service")[1]:
        known = h.run("systemd", {"name": "ssh.service", "state": "started"}, check=True)
        assert known.failed and known.msg in ("Service is in unknown state",)


def test_daemon_reload_alone_in_check_mode_changes_nothing(h):
    result = h.run("systemd", {"daemon_reload": True}, check=True)
    assert result.status in ("ok", "failed") and not result.changed
    assert "daemon-reload" not in h.connection.scripts[0]

"""service_facts: this machine's services against Ansible's (both run the same probes), and the systemd parsing on
fixed systemctl outputs (the build machine's PID 1 need not be systemd; the guest test reads a real one)."""
import json
import os
import subprocess

from modules.tasks._remote import tagged
from modules.tasks.service_facts import SCRIPT, gather
from tests.unit.modules.tasks.conftest import ANSIBLE

UNITS = """\
ssh.service                  loaded    active   running OpenBSD Secure Shell server
systemd-fsck-root.service    loaded    active   exited  File System Check on Root Device
apparmor.service             not-found inactive dead    apparmor.service
broken.service               loaded    failed   failed  A failing unit
""".splitlines()
FILES = """\
ssh.service                            enabled         enabled
apparmor.service                       masked          enabled
broken.service                         enabled         enabled
getty@.service                         enabled         enabled
rsync.service                          disabled        enabled
sshd.service                           alias           -
""".splitlines()


def ansible_service_facts() -> dict:
    """Ansible's own result; conftest's ansible_module always passes arguments, which service_facts refuses."""
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    done = subprocess.run([str(ANSIBLE), "localhost", "-c", "local", "-o", "-m", "service_facts",
                           "-e", "ansible_python_interpreter=/usr/bin/python3"],
                          capture_output=True, text=True, timeout=300, env=env)
    line = next(line for line in done.stdout.splitlines() if line.startswith("localhost | "))
    return json.loads(line.split(" => ", 1)[1])


def test_the_services_of_this_machine_are_what_ansible_reports(h):
    ours = h.run("service_facts", {})
    theirs = ansible_service_facts()
    if theirs.get("skipped"):
        assert ours.skipped
        return
    assert ours.status == "ok"
    assert ours.facts["services"] == theirs["ansible_facts"]["services"]
    assert ours.data["ansible_facts"] == ours.facts


def test_systemd_units_then_unit_files():
    services = gather({"unit": UNITS, "file": FILES, "active": ["rsync.service inactive", "sshd.service active"],
                       "sysv": [" [ + ]  ssh", " [ ? ]  hwclock.sh", " [ - ]  rsync"]})
    assert services["ssh.service"] == {"name": "ssh.service", "state": "running", "status": "enabled",
                                       "source": "systemd"}
    assert services["systemd-fsck-root.service"]["state"] == "stopped"
    assert services["systemd-fsck-root.service"]["status"] == "active"      # list-units' ACTIVE, no unit file
    assert services["apparmor.service"]["status"] == "not-found"            # a bad state is kept
    assert services["broken.service"]["status"] == "failed"
    assert services["getty@.service"] == {"name": "getty@.service", "state": "unknown", "status": "enabled",
                                          "source": "systemd"}
    assert services["rsync.service"]["state"] == "inactive" and services["sshd.service"]["status"] == "alias"
    assert services["ssh"] == {"name": "ssh", "state": "running", "source": "sysv"}
    assert "hwclock.sh" not in services and services["rsync"]["state"] == "stopped"


def test_upstart_and_openrc():
    services = gather({"upstart": ["ssh start/running, process 812", "tty1 stop/waiting"],
                       "openrc": [" sshd  started", " * x", " cron stopped", " orphan started"],
                       "openrcupdate": ["  sshd | default", "  cron |      "]})
    assert services["ssh"] == {"name": "ssh", "state": "running", "goal": "start", "source": "upstart"}
    assert services["tty1"]["state"] == "waiting"
    assert services["sshd"] == {"name": "sshd", "runlevels": ["default"], "state": "started", "source": "openrc"}
    assert services["cron"]["runlevels"] is None and "orphan" not in services


def test_the_systemd_probe_with_a_stand_in_systemctl(tmp_path):
    """The probe's shell against a fake systemctl (this machine's PID 1 may not be systemd): the unit files
    list-units did not show, templates aside, are asked for their ActiveState in one call."""
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    units, files = tmp_path / "units", tmp_path / "files"
    units.write_text("\n".join(UNITS) + "\n")
    files.write_text("\n".join(FILES) + "\n")
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path}/calls\n"
                    f"case $1 in list-units) cat {units};; list-unit-files) cat {files};;\n"
                    "show) shift 2; for u; do [ $u = -- ] || printf 'ActiveState=in-%s\\n\\n' $u; done;; esac\n")
    fake.chmod(0o755)
    script = SCRIPT.replace("[ -e /run/systemd/system/ ]", "true")
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"})
    services = gather(tagged(done.stdout)[0])
    assert services["rsync.service"]["state"] == "in-rsync.service"
    assert services["sshd.service"]["state"] == "in-sshd.service"
    assert services["getty@.service"]["state"] == "unknown"
    shows = [line for line in (tmp_path / "calls").read_text().splitlines() if line.startswith("show")]
    assert shows == ["show --property=ActiveState -- rsync.service sshd.service"]

"""hostname's strategies against files in tmp_path (their class attribute moved there) and a stand-in hostnamectl on
PATH: this machine's own name is only read (hostname -f for the facts). The guest test sets a real one."""
import os

import pytest
import voluptuous as vol

from modules.tasks.hostname import (AlpineStrategy, FileStrategy, OpenRCStrategy, RedHatStrategy, SystemdStrategy,
                                    choose)


@pytest.fixture
def etc_hostname(target, monkeypatch):
    path = target / "hostname"
    path.write_text("old-name\n")
    monkeypatch.setattr(FileStrategy, "file", str(path))
    return path


def test_debian_without_systemd_writes_etc_hostname(h, etc_hostname):
    checked = h.run("hostname", {"name": "web01.example.com", "use": None}, check=True)
    assert checked.changed and etc_hostname.read_text() == "old-name\n"
    if choose(None, False, "debian", "Linux") is not FileStrategy:
        pytest.fail("Debian without systemd is Ansible's FileStrategy")


def test_the_file_strategy(h, etc_hostname, monkeypatch):
    monkeypatch.setattr("modules.tasks.hostname.choose", lambda *args: FileStrategy)
    result = h.run("hostname", {"name": "web01.example.com"})
    assert result.changed and etc_hostname.read_text() == "web01.example.com\n"
    assert result.diff == "-hostname = old-name\n+hostname = web01.example.com\n"
    assert result.facts["ansible_hostname"] == "web01" and result.facts["ansible_nodename"] == "web01.example.com"
    assert result.data["name"] == "web01.example.com" and result.facts["ansible_fqdn"]
    again = h.run("hostname", {"name": "web01.example.com"})
    assert again.status == "ok" and not again.diff


def test_redhat_and_openrc_files(h, target, monkeypatch):
    network = target / "network"
    network.write_text("NETWORKING=yes\nHOSTNAME=old\n")
    monkeypatch.setattr(RedHatStrategy, "file", str(network))
    assert h.run("hostname", {"name": "db1", "use": "redhat"}).changed
    assert network.read_text() == "NETWORKING=yes\nHOSTNAME=db1\n"
    assert h.run("hostname", {"name": "db1", "use": "redhat"}).status == "ok"
    conf = target / "conf.d-hostname"
    conf.write_text('# the name\n  hostname="old"\n')
    monkeypatch.setattr(OpenRCStrategy, "file", str(conf))
    assert h.run("hostname", {"name": "gen", "use": "openrc"}).changed
    assert conf.read_text() == '# the name\nhostname="gen"\n'
    assert RedHatStrategy().render("NETWORKING=yes\n", "x") == "NETWORKING=yes\nHOSTNAME=x\n"


def test_systemd_through_hostnamectl(h, tmp_path, monkeypatch):
    """The permanent name is set first (NetworkManager), both through hostnamectl, each only when it differs."""
    log, state = tmp_path / "calls", tmp_path / "names"
    state.write_text("transient=old\nstatic=web\n")
    fake = tmp_path / "bin" / "hostnamectl"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\n"
                    f". {state}\n"
                    "case \"$*\" in '--transient status') echo $transient;; '--static status') echo $static;;\n"
                    f"*set-hostname*) for a; do n=$a; done; echo \"transient=$n\" > {state}; "
                    f"echo \"static=$n\" >> {state};; esac\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    result = h.run("hostname", {"name": "web", "use": "systemd"})
    assert result.changed and result.diff == "-hostname = old\n+hostname = web\n"
    assert [line for line in log.read_text().splitlines() if "set-hostname" in line] == [
        "--transient set-hostname web"]
    log.write_text("")
    assert h.run("hostname", {"name": "web", "use": "debian"}).status == "ok"
    assert "set-hostname" not in log.read_text()
    assert h.run("hostname", {"name": "new", "use": "systemd"}).changed
    assert [line for line in log.read_text().splitlines() if "set-hostname" in line] == [
        "--pretty --static set-hostname new", "--transient set-hostname new"]
    too_long = h.run("hostname", {"name": "a" * 65, "use": "systemd"})
    assert too_long.failed and "longer than 64" in too_long.msg


def test_choices(h):
    assert choose(None, True, "debian", "Linux") is SystemdStrategy
    assert choose(None, False, "rhel", "Linux") is RedHatStrategy
    assert choose(None, False, "alpine", "Linux") is AlpineStrategy
    assert choose(None, False, "haiku", "Haiku") == "hostname module cannot be used on platform Haiku (haiku)"
    assert "no solaris strategy" in choose("solaris", True, "debian", "Linux")
    with pytest.raises(vol.Invalid):
        h.params("hostname", {"name": "x", "use": "windows"})

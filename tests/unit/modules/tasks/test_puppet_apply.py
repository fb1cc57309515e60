"""puppet_apply runs the real `puppet apply` (Debian's puppet-agent, which `make test` installs) on this
machine through the harness's local shell, with manifests that touch only tmp_path; one test goes through a
real sshd. The target's temporary directory is the test's own (TMPDIR), so what the task leaves is seen."""
from __future__ import annotations

import asyncio
import dataclasses
import glob
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import voluptuous as vol

from engine.errors import BuildError
from engine.registry import TASK_MODULES
from engine.remote.ssh import Endpoint, SshSession
from modules.tasks._provisioner import Bundle, run_script
from modules.tasks._remote import INLINE_LIMIT

SECRET_FACT = "s3cr3t-fact-value"
MODULE_CLASS = """class motd (String $greeting, String $path) {
  file { $path:
    ensure  => file,
    content => epp('motd/motd.epp', { 'greeting' => $greeting, 'role' => $facts['recipe_role'] }),
  }
}
"""
TEMPLATE = "<%- | String $greeting, String $role | -%>\n<%= $greeting %> (<%= $role %>)\n"
HIERA = """version: 5
hierarchy:
  - name: common
    path: common.yaml
  - name: where
    datadir: ../private
    path: where.yaml
"""


@pytest.fixture(autouse=True)
def puppet_installed():
    if shutil.which("puppet") is None:
        pytest.fail("puppet is not installed: make test installs Debian's puppet-agent (TEST_DEBS)")


@pytest.fixture
def guest_tmp(tmp_path, monkeypatch) -> Path:
    """The target's temporary directory: the task's mktemp makes its work directory here."""
    path = tmp_path / "guest-tmp"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    return path


@pytest.fixture
def site(h, target) -> dict:
    """A manifest including a module whose EPP template gets a value from Hiera and one from a fact; the
    file's path comes from a second data directory, outside hiera.yaml's own (../private)."""
    h.file("files", "manifests/site.pp", "include motd\n")
    h.file("files", "puppet/modules/motd/manifests/init.pp", MODULE_CLASS)
    h.file("files", "puppet/modules/motd/templates/motd.epp", TEMPLATE)
    h.file("files", "hiera/hiera.yaml", HIERA)
    h.file("files", "hiera/data/common.yaml", "motd::greeting: hello from hiera\n")
    h.file("files", "private/where.yaml", f"motd::path: {target / 'motd'}\n")
    return {"manifest": "manifests/site.pp", "modules": ["puppet/modules"], "hiera_config": "hiera/hiera.yaml",
            "facts": {"recipe_role": SECRET_FACT}}


def test_applies_then_finds_nothing_to_change(h, target, site, guest_tmp):
    first = h.run("puppet_apply", site)
    assert first.status == "changed" and first.rc == 2 and first.msg == "changes applied", first.stderr
    assert (target / "motd").read_text() == f"hello from hiera ({SECRET_FACT})\n"
    assert any(line.startswith("Notice: Applied catalog") for stream, line in h.output)   # streamed as it ran
    assert os.listdir(guest_tmp) == [] and h.connection.uploads == []      # small: the tar rode on stdin
    assert all(SECRET_FACT not in script for script in h.connection.scripts)   # the fact is in the upload only
    second = h.run("puppet_apply", site)
    assert second.status == "ok" and second.rc == 0 and second.msg == "nothing to change"
    assert os.listdir(guest_tmp) == []


def test_check_mode_runs_noop_and_changes_nothing(h, target, site, guest_tmp):
    would = h.run("puppet_apply", site, check=True)
    assert would.status == "changed" and would.msg == "1 resource(s) would change (noop)"
    assert not (target / "motd").exists()
    h.run("puppet_apply", site)
    (target / "motd").write_text("drifted\n")
    assert h.run("puppet_apply", site, check=True).changed and (target / "motd").read_text() == "drifted\n"
    h.run("puppet_apply", site)
    assert h.run("puppet_apply", site, check=True).status == "ok"
    assert os.listdir(guest_tmp) == []


def test_diff_mode_shows_puppets_diff(h, target, site):
    h.run("puppet_apply", site)
    (target / "motd").write_text("drifted\n")
    ctx = dataclasses.replace(h.context(), diff=True)
    result = asyncio.run(TASK_MODULES.get("puppet_apply")().run(h.params("puppet_apply", site), ctx))
    assert result.changed and "-drifted" in result.stdout and f"+hello from hiera ({SECRET_FACT})" in result.stdout


def test_a_manifest_error_fails_quoting_puppets_error_line(h, guest_tmp):
    h.file("files", "broken.pp", "file { 'x':\n")
    result = h.run("puppet_apply", {"manifest": "broken.pp"})
    assert result.failed and result.rc == 1
    assert result.msg.startswith("puppet apply failed (exit 1): ") and "Error: Could not parse" in result.msg
    assert "broken.pp" in result.msg and os.listdir(guest_tmp) == []


def test_a_failing_resource_exits_4_and_fails(h, target, guest_tmp):
    h.file("files", "fails.pp", f"file {{ '{target}/no/such/dir/f': content => 'x' }}\n")
    result = h.run("puppet_apply", {"manifest": "fails.pp"})
    assert result.failed and result.rc == 4 and "Error: " in result.msg and "no/such/dir" in result.msg
    assert os.listdir(guest_tmp) == []


def test_a_run_stopped_by_a_signal_leaves_nothing(guest_tmp):
    """A cancelled build stops the running task as RemoteShell.terminate does, with TERM to the shell's
    process group: the run script's trap still removes the work directory and the secrets in it."""
    process = subprocess.Popen(["/bin/sh", "-c", run_script("sleep 30", "puppet", "")], stdin=subprocess.PIPE,
                               start_new_session=True)
    process.stdin.write(Bundle(generated={"environment.sh": b"export FACTER_x=secret\n"}).tar())
    process.stdin.close()
    deadline = time.monotonic() + 10
    while not list(guest_tmp.glob("recipe-puppet.*/environment.sh")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(guest_tmp.glob("recipe-puppet.*/environment.sh")), "the run never unpacked its upload"
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(10) == 143 and os.listdir(guest_tmp) == []


def test_a_manifest_directory_and_extra_args(h, target):
    h.file("files", "manifests.d/a.pp", f"file {{ '{target}/a': content => 'a' }}\n")
    h.file("files", "manifests.d/b.pp", f"file {{ '{target}/b': content => 'b' }}\n")
    result = h.run("puppet_apply", {"manifest": "manifests.d", "extra_args": ["--verbose"]})
    assert result.changed and (target / "a").read_text() == "a" and (target / "b").read_text() == "b"
    assert "Info: Applying configuration version" in result.stdout      # what --verbose adds


def test_install_when_puppet_is_present_installs_nothing(h, site):
    result = h.run("puppet_apply", {**site, "install": True})
    assert result.changed and result.data["installed"] is None and not result.msg.startswith("installed")
    assert not any("install -y" in script or "update -q" in script for script in h.connection.scripts)


@pytest.fixture
def no_puppet(tmp_path, monkeypatch) -> Path:
    """A PATH without puppet: only the few tools the task's scripts use, and a folder for stand-ins."""
    tools, bin_dir = tmp_path / "tools", tmp_path / "bin"
    tools.mkdir()
    bin_dir.mkdir()
    for tool in ("id", "mktemp", "tar", "rm", "chmod", "cat"):
        (tools / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", f"{bin_dir}:{tools}")
    monkeypatch.delenv("DEBIAN_FRONTEND", raising=False)      # the task must set it for apt-get itself
    return bin_dir


def test_install_false_and_no_puppet_fails_with_a_hint(h, site, no_puppet):
    with pytest.raises(BuildError) as failed:
        h.run("puppet_apply", site)
    assert failed.value.message == "puppet is not installed on the target" and "install: true" in failed.value.hint


def test_install_tries_puppet_agent_then_puppet_with_apt(h, site, no_puppet, tmp_path):
    """A stand-in apt-get that knows only `puppet` (as Ubuntu's lists) and installs a stand-in puppet."""
    log, package = tmp_path / "apt.log", tmp_path / "puppet"
    package.write_text('#!/bin/sh\necho "Notice: Applied catalog in 0.01 seconds"\nexit 2\n')
    (no_puppet / "apt-get").write_text(
        f'#!/bin/sh\necho "$DEBIAN_FRONTEND apt-get $*" >> {log}\n'
        'case "$*" in *" puppet-agent") echo "E: Unable to locate package puppet-agent" >&2; exit 100;; esac\n'
        f'case "$*" in *" puppet") cat {package} > {no_puppet}/puppet && chmod 755 {no_puppet}/puppet;; esac\n')
    (no_puppet / "apt-get").chmod(0o755)
    assert h.run("puppet_apply", {**site, "install": True}, check=True).msg == \
        "puppet would be installed, then the manifest applied (check mode)"
    assert not log.exists()
    result = h.run("puppet_apply", {**site, "install": True})
    assert result.changed and result.data["installed"] == "puppet" and result.msg == "installed puppet; changes applied"
    assert log.read_text().splitlines() == [" apt-get update -q", "noninteractive apt-get install -y -q puppet-agent",
                                            "noninteractive apt-get install -y -q puppet"]


def test_options_are_checked():
    params = TASK_MODULES.get("puppet_apply").params
    with pytest.raises(vol.Invalid):
        params({"manifest": "site.pp", "facts": {"bad-name": "x"}})     # not an environment variable's name
    with pytest.raises(vol.Invalid):
        params({"manifest": "site.pp", "modules": "one/dir"})           # a list of directories


def test_hiera_config_must_be_hiera_5(h):
    h.file("files", "site.pp", "notice('x')\n")
    h.file("files", "hiera.yaml", "---\n:backends: [yaml]\n")
    with pytest.raises(BuildError, match="is not a Hiera 5 file"):
        h.run("puppet_apply", {"manifest": "site.pp", "hiera_config": "hiera.yaml"})


def test_over_ssh_uploads_a_big_bundle_and_leaves_nothing(h, target, site, sshd):
    """Through a real sshd: the tar is over INLINE_LIMIT, so it goes by SFTP, and the commands run in the
    session's persistent shells. The login is root here, so no sudo is involved."""
    (h.root / "files/puppet/modules/motd/files").mkdir()
    (h.root / "files/puppet/modules/motd/files/big.bin").write_bytes(os.urandom(INLINE_LIMIT * 2))
    before = set(glob.glob("/tmp/recipe-puppet.*"))
    uploads: list[str] = []

    async def over_ssh():
        session = SshSession(Endpoint(host=sshd.host, port=sshd.port, user=sshd.user,
                                      private_key_file=str(sshd.client_key), host_key=sshd.host_public_key))
        upload = session.upload

        async def recorded(data: bytes, path: str) -> None:
            uploads.append(path)
            await upload(data, path)

        session.upload = recorded
        await session.connect(15)
        try:
            ctx = dataclasses.replace(h.context(), connection=session)
            return await TASK_MODULES.get("puppet_apply")().run(h.params("puppet_apply", site), ctx)
        finally:
            await session.close()

    result = asyncio.run(over_ssh())
    assert result.changed and (target / "motd").read_text() == f"hello from hiera ({SECRET_FACT})\n", result.msg
    assert len(uploads) == 1 and not os.path.exists(uploads[0])
    assert set(glob.glob("/tmp/recipe-puppet.*")) == before

"""sysprep's real script, run against a directory tree standing in for the root of an image."""
import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.build.taskmodule import TaskContext
from engine.remote.connection import CommandResult
from modules.tasks.sysprep import OPTIONS, Sysprep, sysprep_script
from tests.unit.modules.tasks.conftest import NobodyConnection

BUILD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuild recipe-build-1a2b3c"
USER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIUser alice@laptop"


def put(root: Path, path: str, content: str = "x\n", mode: int | None = None) -> Path:
    file = root / path.lstrip("/")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(content)
    if mode is not None:
        os.chmod(file, mode)
    return file


@pytest.fixture
def image(tmp_path) -> Path:
    root = tmp_path / "image"
    put(root, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
    (root / "var/lib/dbus").mkdir(parents=True)
    (root / "var/lib/dbus/machine-id").symlink_to("/etc/machine-id")
    for key in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "ssh_host_rsa_key"):
        put(root, f"/etc/ssh/{key}")
    put(root, "/etc/ssh/sshd_config", "PermitRootLogin no\n")
    (root / "etc/systemd/system").mkdir(parents=True)
    put(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndebian:x:1000:1000::/home/debian:/bin/bash\n"
                             "svc:x:999:999::/srv/svc:/usr/sbin/nologin\n")
    put(root, "/var/lib/cloud/instances/i-1/user-data.txt")
    put(root, "/var/lib/cloud/seed/nocloud/meta-data", "instance-id: i-1\n")
    put(root, "/var/log/cloud-init.log")
    put(root, "/var/log/syslog", "a lot of log\n")
    put(root, "/var/log/syslog.1")
    put(root, "/var/log/syslog.2.gz")
    put(root, "/var/log/apt/history.log", "Start-Date: ...\n")
    put(root, "/var/log/journal/abc/system.journal", "journal")
    put(root, "/var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease")
    put(root, "/var/cache/apt/archives/nginx_1.22_amd64.deb")
    put(root, "/var/cache/apt/pkgcache.bin")
    put(root, "/root/.bash_history", "secret command\n")
    put(root, "/home/debian/.bash_history", "ls\n")
    put(root, "/home/debian/.profile", "keep me\n")
    put(root, "/tmp/build-leftover")
    put(root, "/tmp/.hidden/x")
    (root / "tmp/systemd-private-1-nginx.service-x").mkdir()
    put(root, "/var/tmp/scratch")
    put(root, "/root/.ssh/authorized_keys", BUILD_KEY + "\n", 0o600)
    put(root, "/home/debian/.ssh/authorized_keys", f"{USER_KEY}\n{BUILD_KEY}\n", 0o600)
    put(root, "/srv/svc/.ssh/authorized_keys", f"{BUILD_KEY}\n{USER_KEY}\n", 0o640)
    return root


def run_script(root: Path, **options) -> subprocess.CompletedProcess:
    script = sysprep_script(Sysprep.Params(**options), root=str(root))
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True)


def test_the_script_generalizes_an_image_tree(image):
    inode = (image / "home/debian/.ssh/authorized_keys").stat().st_ino
    done = run_script(image)
    assert done.returncode == 0 and "fail" not in done.stdout, done.stderr
    assert sorted(line.split()[1] for line in done.stdout.splitlines() if line.startswith("done ")) == sorted(
        option.replace("_", "-") for option in OPTIONS)
    assert (image / "etc/machine-id").read_text() == "" and not os.path.lexists(image / "var/lib/dbus/machine-id")
    assert sorted(os.listdir(image / "etc/ssh")) == ["sshd_config"]
    unit = image / "etc/systemd/system/recipe-ssh-keygen.service"      # no cloud-init here: keys made at boot
    assert "ssh-keygen -A" in unit.read_text()
    assert os.readlink(image / "etc/systemd/system/multi-user.target.wants/recipe-ssh-keygen.service") == \
        "/etc/systemd/system/recipe-ssh-keygen.service"
    assert os.listdir(image / "var/lib/cloud") == ["seed"] and not (image / "var/log/cloud-init.log").exists()
    assert (image / "var/log/syslog").read_text() == "" and (image / "var/log/apt/history.log").read_text() == ""
    assert not (image / "var/log/syslog.1").exists() and not (image / "var/log/syslog.2.gz").exists()
    assert not (image / "var/log/journal/abc/system.journal").exists()
    assert os.listdir(image / "var/lib/apt/lists") == [] and os.listdir(image / "var/cache/apt/archives") == []
    assert not (image / "var/cache/apt/pkgcache.bin").exists()
    assert not (image / "root/.bash_history").exists() and not (image / "home/debian/.bash_history").exists()
    assert (image / "home/debian/.profile").read_text() == "keep me\n"
    assert os.listdir(image / "tmp") == ["systemd-private-1-nginx.service-x"] and os.listdir(image / "var/tmp") == []
    assert (image / "root/.ssh/authorized_keys").read_text() == ""
    user_keys = image / "home/debian/.ssh/authorized_keys"
    assert user_keys.read_text() == USER_KEY + "\n" and user_keys.stat().st_ino == inode
    assert user_keys.stat().st_mode & 0o777 == 0o600
    assert (image / "srv/svc/.ssh/authorized_keys").read_text() == USER_KEY + "\n"    # a home found in passwd
    assert sorted(line for line in done.stdout.splitlines() if line.startswith("key ")) == sorted(
        f"key {image}/{path}" for path in ("root/.ssh/authorized_keys", "home/debian/.ssh/authorized_keys",
                                           "srv/svc/.ssh/authorized_keys"))
    assert not (image / "var/tmp/recipe-zero").exists()
    again = run_script(image)                          # a second run finds nothing left, and fails on nothing
    assert again.returncode == 0 and "fail" not in again.stdout and "key " not in again.stdout


def test_options_turn_sections_off(image):
    off = {option: False for option in OPTIONS}
    done = run_script(image, **{**off, "build_keys": True})
    assert done.stdout.splitlines()[-1] == "done build-keys" and "done" not in "".join(done.stdout.splitlines()[1:-1])
    assert (image / "etc/machine-id").read_text() != "" and (image / "var/log/syslog").read_text() != ""
    assert BUILD_KEY not in (image / "home/debian/.ssh/authorized_keys").read_text()


def test_cloud_init_present_means_no_keygen_unit(image):
    put(image, "/usr/bin/cloud-init", "#!/bin/sh\n", 0o755)
    assert run_script(image).returncode == 0
    assert not (image / "etc/systemd/system/recipe-ssh-keygen.service").exists()


def test_live_script_uses_the_system_tools():
    script = sysprep_script(Sysprep.Params())
    assert "cloud-init clean --logs" in script and "journalctl --vacuum-time=1s" in script
    assert "apt-get clean" in script and "fstrim -av" in script
    assert 'of="$R/var/tmp/recipe-zero" bs=1M 2>/dev/null; sync; rm -f' in script and "count=" not in script
    assert "R=''" in script


def test_module_in_check_mode_changes_nothing(h):
    result = h.run("sysprep", {}, check=True)
    assert result.changed and "machine-id" in result.msg and len(h.connection.scripts) == 1
    assert "rm " not in h.connection.scripts[0]
    assert h.run("sysprep", {option: False for option in OPTIONS}).status == "ok"


class Answers:
    """A connection that answers with a fixed result: for what this machine cannot show (not being root)."""

    def __init__(self, stdout: str):
        self.stdout = stdout

    async def run(self, command, **kwargs):
        return CommandResult(0, self.stdout, "")


@pytest.mark.skipif(not shutil.which("setpriv") or os.geteuid() != 0, reason="needs root and setpriv")
@pytest.mark.parametrize("check", [False, True])
def test_not_root_is_refused_with_the_fix(h, check):
    h.connection = NobodyConnection()    # the real script, as nobody: it stops before cleaning anything
    harmless = {"tmp": False, "zero_free_space": False}   # what nobody could touch, were the guard ever broken
    result = h.run("sysprep", harmless, check=check)
    assert result.failed and "add become: true" in result.msg and "nobody" in result.msg
    assert result.data == {} and len(h.connection.scripts) == 1


def test_a_failing_section_is_reported():
    ctx = TaskContext(connection=Answers("whoami 0 root\ndone machine-id\nfail logs\n"), check=False, become=None,
                      find_file=None, render_text=None)
    result = asyncio.run(Sysprep().run(Sysprep.Params(), ctx))
    assert result.failed and "could not clean logs" in result.msg and result.data["cleaned"] == ["machine-id"]

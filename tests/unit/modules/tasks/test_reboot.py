"""reboot's whole sequence, with a boot id file that the 'reboot' command changes: it cannot reboot this machine."""
import os
import shutil
import time

import pytest

from modules.tasks.reboot import start_sh
from tests.unit.modules.tasks.conftest import NobodyConnection


def fake_boot(target, new_id="second-boot"):
    (target / "boot_id").write_text("first-boot\n")
    return {"boot_time_command": f"cat {target}/boot_id", "reboot_command": f"echo {new_id} > {target}/boot_id"}


def test_reboot_waits_for_a_new_boot_id(h, target):
    args = {**fake_boot(target), "reboot_timeout": 20, "test_command": f"test -f {target}/boot_id"}
    result = h.run("reboot", args)
    assert result.changed and result.status == "changed" and 1 <= result.data["elapsed"] <= 10
    assert h.connection.reconnects >= 1 and (target / "boot_id").read_text() == "second-boot\n"


def test_reboot_times_out_when_the_boot_id_never_changes(h, target):
    args = {**fake_boot(target), "reboot_command": "true", "reboot_timeout": 2}
    result = h.run("reboot", args)
    assert result.failed and "did not come back within 2s" in result.msg and "boot id did not change" in result.msg


def test_reboot_retries_test_command_until_the_timeout(h, target):
    args = {**fake_boot(target), "reboot_timeout": 3, "test_command": "echo not ready >&2; false"}
    result = h.run("reboot", args)
    assert result.failed and "test_command failed: not ready" in result.msg


def test_reboot_check_mode_does_nothing(h, target):
    args = fake_boot(target)
    result = h.run("reboot", args, check=True)
    assert result.changed and h.connection.scripts == [] and (target / "boot_id").read_text() == "first-boot\n"


def test_reboot_detaches():
    script = start_sh("cat /proc/sys/kernel/random/boot_id", "systemctl reboot || reboot", 0, "bye")
    assert "nohup sh -c" in script and script.rstrip().endswith("&") and "wall bye" in script


@pytest.mark.skipif(not shutil.which("setpriv") or os.geteuid() != 0, reason="needs root and setpriv")
def test_reboot_needs_root_and_starts_nothing_without(h, target):
    os.chmod(target, 0o777)
    args = {**fake_boot(target), "reboot_command": f"touch {target}/rebooted"}
    h.connection = NobodyConnection()
    result = h.run("reboot", args)
    time.sleep(1.5)
    assert result.failed and "add become: true" in result.msg and "nobody" in result.msg
    assert not (target / "rebooted").exists() and h.connection.reconnects == 0


@pytest.mark.parametrize("args", [{"reboot_timeout": -1}, {"bogus": 1}])
def test_reboot_rejects_bad_options(h, args):
    import voluptuous as vol
    with pytest.raises(vol.Invalid):
        h.params("reboot", args)


def test_ansible_forms(h):
    params = h.params("reboot", "reboot_timeout=900 pre_reboot_delay=0 post_reboot_delay=10")
    assert (params.reboot_timeout, params.pre_reboot_delay, params.post_reboot_delay) == (900.0, 0.0, 10.0)

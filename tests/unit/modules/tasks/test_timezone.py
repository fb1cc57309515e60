"""timezone against files in tmp_path (the module's path attributes moved there) and stand-ins for timedatectl,
dpkg-reconfigure and hwclock on PATH, so this machine's own zone and clock are only read (its zoneinfo files)."""
import os
from pathlib import Path

import pytest
import voluptuous as vol

from modules.tasks.timezone import FILE_NAME, RCS_UTC, Timezone, replaced

ZONEINFO = "/usr/share/zoneinfo"


def fake(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def etc(target, tmp_path, monkeypatch):
    """A Debian without systemd: timedatectl fails, as it does in a container."""
    log = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    fake(bin_dir, "timedatectl", "echo 'System has not been booted with systemd' >&2; exit 1\n")
    fake(bin_dir, "dpkg-reconfigure", f'echo "dpkg-reconfigure $*" >> {log}\n')
    fake(bin_dir, "hwclock", f'echo "hwclock $*" >> {log}\n'
                             f'case "$*" in *--utc*) m=UTC;; *) m=LOCAL;; esac; printf "0 0 0\\n0\\n$m\\n" '
                             f'> {target}/adjtime\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    for attr, name in (("timezone_file", "timezone"), ("localtime", "localtime"), ("rcs_file", "rcS"),
                       ("adjtime_file", "adjtime")):
        monkeypatch.setattr(Timezone, attr, str(target / name))
    (target / "timezone").write_text("Etc/UTC\n")
    (target / "localtime").symlink_to(f"{ZONEINFO}/Etc/UTC")
    return target


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls"
    return log.read_text().splitlines() if log.exists() else []


def test_debian_files_check_mode_change_and_second_run(h, etc, tmp_path):
    checked = h.run("timezone", {"name": "Europe/Paris"}, check=True)
    assert checked.changed and checked.data["diff"] == {"before": {"name": "Etc/UTC"},
                                                        "after": {"name": "Europe/Paris"}}
    assert (etc / "timezone").read_text() == "Etc/UTC\n" and calls(tmp_path) == []
    result = h.run("timezone", {"name": "Europe/Paris"})
    assert result.changed, result.msg
    assert (etc / "timezone").read_text() == "Europe/Paris\n"
    assert os.readlink(etc / "localtime") == f"{ZONEINFO}/Europe/Paris"
    assert calls(tmp_path) == ["dpkg-reconfigure --frontend noninteractive tzdata"]
    assert result.data["msg"] == f"Added 1 line and deleted 1 line(s) on {etc / 'timezone'}"
    assert result.data["diff"] == {"before": {"name": "Etc/UTC"}, "after": {"name": "Europe/Paris"}}
    again = h.run("timezone", {"name": "Europe/Paris"})
    assert again.status == "ok" and again.data["diff"]["before"] == again.data["diff"]["after"]


def test_a_localtime_pointing_elsewhere_is_fixed(h, etc):
    (etc / "localtime").unlink()
    (etc / "localtime").symlink_to(f"{ZONEINFO}/Asia/Tokyo")
    result = h.run("timezone", {"name": "Etc/UTC"}, check=True)
    assert result.changed and result.data["diff"]["before"] == {"name": "Asia/Tokyo"}
    (etc / "localtime").unlink()
    (etc / "localtime").write_bytes(Path(f"{ZONEINFO}/Etc/UTC").read_bytes())   # a copy, not a link
    assert h.run("timezone", {"name": "Etc/UTC"}).status == "ok"


def test_hwclock_in_rcs_and_adjtime(h, etc, tmp_path):
    (etc / "rcS").write_text("# defaults\nUTC=yes\nUTC=no\n")
    result = h.run("timezone", {"hwclock": "local"})
    assert result.changed and result.data["diff"] == {"before": {"hwclock": "UTC"}, "after": {"hwclock": "local"}}
    assert (etc / "rcS").read_text() == "# defaults\nUTC=no\n"
    assert calls(tmp_path)[-1] == "hwclock --systohc --localtime"
    assert h.run("timezone", {"rtc": "local"}).status == "ok"


def test_systemd_through_timedatectl(h, tmp_path, monkeypatch):
    state, log = tmp_path / "state", tmp_path / "calls"
    state.write_text("zone=Etc/UTC\nrtc=no\n")
    fake(tmp_path / "bin", "timedatectl",
         f". {state}\necho \"$*\" >> {log}\n"
         'case "$1" in status|"") printf "   Time zone: %s (UTC, +0000)\\nRTC in local TZ: %s\\n" $zone $rtc;;\n'
         f'set-timezone) echo "zone=$2" > {state}.new; grep rtc {state} >> {state}.new; mv {state}.new {state};;\n'
         f'set-local-rtc) grep zone {state} > {state}.new; echo "rtc=$2" >> {state}.new; mv {state}.new {state};;\n'
         "esac\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    result = h.run("timezone", {"name": "America/New_York", "hwclock": "local"})
    assert result.changed, result.msg
    tdc = tmp_path / "bin" / "timedatectl"
    assert result.data["msg"] == f"executed `{tdc} set-local-rtc yes`\nexecuted `{tdc} set-timezone America/New_York`"
    assert result.data["diff"] == {"before": {"hwclock": "UTC", "name": "Etc/UTC"},
                                   "after": {"hwclock": "local", "name": "America/New_York"}}
    assert h.run("timezone", {"name": "America/New_York", "hwclock": "local"}).status == "ok"


def test_bad_input(h, etc):
    unknown = h.run("timezone", {"name": "Mars/Olympus"})
    assert unknown.failed and 'given timezone "Mars/Olympus" is not available' in unknown.msg
    with pytest.raises(vol.Invalid, match="one of name or hwclock"):
        h.params("timezone", {})
    with pytest.raises(vol.Invalid):
        h.params("timezone", {"hwclock": "utc"})


def test_the_edit_keeps_other_lines():
    assert replaced("# c\nA\nB\n", FILE_NAME, "X\n") == "X\n"   # every line is a word, '#' too, as in Ansible
    assert replaced("# c\nUTC=no\nB\nUTC = yes\n", RCS_UTC, "UTC=yes\n") == "# c\nUTC=yes\nB\n"
    assert replaced(None, FILE_NAME, "X\n") == "X\n"

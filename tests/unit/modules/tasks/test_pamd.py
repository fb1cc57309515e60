"""pamd against a PAM service file in tmp_path (path:), as community.general.pamd edits it."""
import re

import pytest
import voluptuous as vol

SSHD = """# PAM configuration for the Secure Shell service

@include common-auth
account    required     pam_nologin.so
session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so close
session    optional     pam_motd.so  motd=/run/motd.dynamic
session    optional     pam_motd.so noupdate
session    required     pam_limits.so
"""
MARK = re.compile(r"^# Updated by Ansible - \d{4}-\d\d-\d\dT[\d:.]+$")


@pytest.fixture
def pam(target):
    (target / "sshd").write_text(SSHD)
    return target


def run(h, pam, check=False, **args):
    return h.run("pamd", {"name": "sshd", "path": str(pam), **args}, check=check)


def lines(pam):
    return (pam / "sshd").read_text().splitlines()


def test_absent_removes_every_matching_rule_and_marks_the_file(h, pam):
    """devsec.ssh_hardening's "Disable dynamic MOTD" task."""
    result = run(h, pam, type="session", control="optional", module_path="pam_motd.so", state="absent",
                 backup=True)
    assert result.changed and result.data["change_count"] == 2
    assert result.data["backupdest"] and (pam / "sshd").exists()
    got = lines(pam)
    assert got[0] == "# PAM configuration for the Secure Shell service" and MARK.match(got[1])
    # rules are re-rendered as Ansible renders them: type padded to 11, single spaces
    assert got[2:] == ["", "@include common-auth", "account    required pam_nologin.so",
                       "session    [success=ok ignore=ignore module_unknown=ignore default=bad] pam_selinux.so close",
                       "session    required pam_limits.so"]
    again = run(h, pam, type="session", control="optional", module_path="pam_motd.so", state="absent")
    assert again.status == "ok" and again.data["change_count"] == 0


def test_updated_changes_control_and_arguments(h, pam):
    args = dict(type="session", control="required", module_path="pam_limits.so", new_control="requisite",
                module_arguments=["conf=/etc/limits.conf"])
    result = run(h, pam, **args)
    assert result.changed and lines(pam)[-1] == "session    requisite pam_limits.so conf=/etc/limits.conf"
    assert run(h, pam, **{**args, "control": "requisite"}).status == "ok"


def test_before_and_after_insert_once(h, pam):
    args = dict(type="account", control="required", module_path="pam_nologin.so", new_type="auth",
                new_control="required", new_module_path="pam_faildelay.so", module_arguments="delay=2000000")
    assert run(h, pam, state="before", **args).changed
    assert run(h, pam, state="before", **args).status == "ok"
    got = lines(pam)
    index = got.index("account    required pam_nologin.so")
    assert got[index - 1] == "auth       required pam_faildelay.so delay=2000000"
    after = dict(args, type="session", control="required", module_path="pam_limits.so")
    assert run(h, pam, state="after", **after).changed and lines(pam)[-1].startswith("auth       required pam_fail")
    assert run(h, pam, state="after", **after).status == "ok"


def test_args_present_and_absent(h, pam):
    base = dict(type="session", control="optional", module_path="pam_motd.so")
    result = run(h, pam, state="args_present", module_arguments=["motd=/etc/motd", "noupdate"], **base)
    assert result.changed and result.data["change_count"] == 2
    assert "session    optional pam_motd.so motd=/etc/motd noupdate" in lines(pam)
    assert run(h, pam, state="args_present", module_arguments=["noupdate"], **base).status == "ok"
    gone = run(h, pam, state="args_absent", module_arguments=["noupdate"], **base)
    assert gone.data["change_count"] == 2 and lines(pam).count("session    optional pam_motd.so motd=/etc/motd") == 2


def test_check_mode_and_a_missing_file(h, pam):
    result = run(h, pam, check=True, type="session", control="optional", module_path="pam_motd.so", state="absent")
    assert result.changed and (pam / "sshd").read_text() == SSHD
    missing = h.run("pamd", {"name": "nope", "path": str(pam), "type": "auth", "control": "required",
                             "module_path": "pam_unix.so"})
    assert missing.failed and "Unable to open/read PAM module file" in missing.msg


def test_invalid_result_fails_and_writes_nothing(h, pam):
    bad = run(h, pam, type="session", control="required", module_path="pam_limits.so", new_control="sometimes")
    assert bad.failed and "Rule control, sometimes, is not valid" in bad.msg and (pam / "sshd").read_text() == SSHD


def test_options(h):
    with pytest.raises(vol.Invalid, match="needs new_type"):
        h.params("pamd", {"name": "x", "type": "auth", "control": "required", "module_path": "a.so",
                          "state": "after"})
    with pytest.raises(vol.Invalid, match="module_arguments"):
        h.params("pamd", {"name": "x", "type": "auth", "control": "required", "module_path": "a.so",
                          "state": "args_present"})
    with pytest.raises(vol.Invalid):
        h.params("pamd", {"name": "x", "type": "login", "control": "required", "module_path": "a.so"})

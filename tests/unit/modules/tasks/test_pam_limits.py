"""pam_limits against a limits file in tmp_path (dest:)."""
import pytest
import voluptuous as vol

LIMITS = "# /etc/security/limits.conf\n#*  soft  core  0\n*    hard    nofile   4096   # old note\n"


@pytest.fixture
def limits(target):
    path = target / "limits.conf"
    path.write_text(LIMITS)
    return path


def run(h, limits, check=False, **args):
    return h.run("pam_limits", {"dest": str(limits), **args}, check=check)


def test_new_limit_is_appended_tab_separated(h, limits):
    args = dict(domain="*", limit_type="soft", limit_item="core", value=0, comment="no cores")
    result = run(h, limits, **args)
    assert result.changed and result.msg == "*\tsoft\tcore\t0\t#no cores\n"
    assert limits.read_text() == LIMITS + "*\tsoft\tcore\t0\t#no cores\n"
    assert run(h, limits, **args).status == "ok"


def test_an_existing_limit_is_rewritten_keeping_its_comment(h, limits):
    assert run(h, limits, domain="*", limit_type="hard", limit_item="nofile", value="65536").changed
    assert limits.read_text().splitlines()[-1] == "*\thard\tnofile\t65536\t# old note"
    assert run(h, limits, domain="*", limit_type="hard", limit_item="nofile", value="65536").status == "ok"


def test_use_max_and_use_min(h, limits):
    assert run(h, limits, domain="*", limit_type="hard", limit_item="nofile", value="1024", use_max=True).status == "ok"
    assert "4096" in limits.read_text()
    assert run(h, limits, domain="*", limit_type="hard", limit_item="nofile", value="1024", use_min=True).changed
    assert "\t1024\t" in limits.read_text()


def test_check_mode_and_a_new_file(h, limits, target):
    assert run(h, limits, check=True, domain="@ops", limit_type="-", limit_item="nproc", value="unlimited").changed
    assert limits.read_text() == LIMITS
    new = target / "limits.d" / "90-app.conf"
    assert run(h, new, domain="app", limit_type="-", limit_item="nice", value="-5").changed
    assert new.read_text() == "app\t-\tnice\t-5\n"


def test_bad_values(h, limits):
    with pytest.raises(vol.Invalid, match="must be unlimited"):
        h.params("pam_limits", {"domain": "*", "limit_type": "hard", "limit_item": "nofile", "value": "lots"})
    with pytest.raises(vol.Invalid, match="mutually exclusive"):
        h.params("pam_limits", {"domain": "*", "limit_type": "hard", "limit_item": "nofile", "value": "1",
                                "use_max": True, "use_min": True})
    with pytest.raises(vol.Invalid):
        h.params("pam_limits", {"domain": "*", "limit_type": "hard", "limit_item": "files", "value": "1"})

"""cron with cron_file in tmp_path (an absolute path), so no real crontab is read or written."""
import pytest
import voluptuous as vol


def run(h, path, check=False, **args):
    return h.run("cron", {"cron_file": str(path), "user": "root", **args}, check=check)


def test_a_job_under_its_ansible_marker_then_ok(h, target):
    path = target / "backup"
    result = run(h, path, name="nightly backup", minute="30", hour="2", job="/usr/local/bin/backup")
    assert result.changed and path.read_text() == "#Ansible: nightly backup\n30 2 * * * root /usr/local/bin/backup\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert result.data["jobs"] == ["nightly backup"]
    assert run(h, path, name="nightly backup", minute="30", hour="2", job="/usr/local/bin/backup").status == "ok"


def test_a_changed_job_is_replaced_in_place(h, target):
    path = target / "jobs"
    path.write_text("MAILTO=root\n#Ansible: a\n* * * * * root true\n#Ansible: b\n@daily root b\n")
    assert run(h, path, name="a", special_time="hourly", job="true", disabled=True).changed
    assert path.read_text() == "MAILTO=root\n#Ansible: a\n#@hourly root true\n#Ansible: b\n@daily root b\n"


def test_an_unmarked_identical_line_gets_the_marker(h, target):
    path = target / "jobs"
    path.write_text("0 1 * * * root /bin/x\n")
    assert run(h, path, name="x", minute="0", hour="1", job="/bin/x").changed
    assert path.read_text() == "#Ansible: x\n0 1 * * * root /bin/x\n"


def test_absent_removes_the_job_and_an_empty_file(h, target):
    path = target / "jobs"
    path.write_text("#Ansible: a\n* * * * * root a\n#Ansible: b\n* * * * * root b\n")
    assert run(h, path, name="a", state="absent").changed
    assert path.read_text() == "#Ansible: b\n* * * * * root b\n"
    assert run(h, path, name="a", state="absent").status == "ok"
    assert run(h, path, name="b", state="absent", check=True).changed and path.exists()
    assert run(h, path, name="b", state="absent").changed and not path.exists()


def test_env_variables(h, target):
    path = target / "jobs"
    path.write_text("#Ansible: a\n* * * * * root a\n")
    assert run(h, path, name="PATH", env=True, job="/bin:/usr/bin").changed
    assert run(h, path, name="SHELL", env=True, job="/bin/sh", insertafter="PATH").changed
    assert path.read_text().splitlines()[:2] == ['PATH="/bin:/usr/bin"', 'SHELL="/bin/sh"']
    assert run(h, path, name="PATH", env=True, value="/bin:/usr/bin").status == "ok"
    assert run(h, path, name="X", env=True, job="1", insertbefore="NOPE").failed


def test_a_missing_final_newline_is_a_change(h, target):
    path = target / "jobs"
    path.write_text("#Ansible: a\n* * * * * root a")
    assert run(h, path, name="a", job="a").changed and path.read_text().endswith("root a\n")


def test_check_mode_shows_the_diff(h, target):
    path = target / "jobs"
    result = run(h, path, check=True, name="a", job="a")
    assert result.changed and not path.exists() and "+#Ansible: a" in result.diff


def test_options(h):
    for bad, word in (({"name": "a", "job": "x", "special_time": "daily", "hour": "1"}, "special_time"),
                      ({"name": "a", "job": "x", "cron_file": "f"}, "user"),
                      ({"name": "a"}, "needs job"),
                      ({"name": "a", "job": "x", "insertafter": "B"}, "env"),
                      ({"name": "a", "job": "x", "user": "r", "cron_file": "/etc/crontab"}, "/etc/crontab")):
        with pytest.raises(vol.Invalid, match=word):
            h.params("cron", bad)
    assert h.params("cron", {"name": "a", "value": "x", "dow": "1", "dom": "2"}).weekday == "1"

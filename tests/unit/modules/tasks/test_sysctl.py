"""sysctl against a sysctl_file in tmp_path, reload off: the machine's own kernel values are only read."""
import pytest
import voluptuous as vol

from modules.tasks.sysctl import fixed_lines

CONF = "# kernel settings\n  vm.swappiness = 60\nnet.ipv4.ip_forward=0\n\n; old\nvm.swappiness=10\n"


@pytest.fixture
def conf(target):
    path = target / "sysctl.conf"
    path.write_text(CONF)
    return path


def args(conf, **more):
    return {"sysctl_file": str(conf), "reload": False, **more}


def test_a_new_value_rewrites_the_file_as_ansible_does(h, conf):
    result = h.run("sysctl", args(conf, name="vm.swappiness", value=5))
    assert result.changed and "+vm.swappiness=5" in result.diff
    # stripped lines, key=value, the duplicate dropped, comments kept
    assert conf.read_text() == "# kernel settings\nvm.swappiness=5\nnet.ipv4.ip_forward=0\n\n; old\n"
    assert h.run("sysctl", args(conf, name="vm.swappiness", value="5")).status == "ok"


def test_a_missing_key_is_appended_and_booleans_are_1_or_0(h, conf):
    assert h.run("sysctl", args(conf, key="net.ipv6.conf.all.forwarding", val=True)).changed
    assert conf.read_text().endswith("net.ipv6.conf.all.forwarding=1\n")
    again = h.run("sysctl", args(conf, name="net.ipv6.conf.all.forwarding", value="yes"))
    assert again.status == "ok"


def test_the_same_value_with_other_spacing_is_left_alone(h, conf):
    assert h.run("sysctl", args(conf, name="net.ipv4.ip_forward", value="0")).status == "ok"
    assert conf.read_text() == CONF


def test_absent(h, conf):
    result = h.run("sysctl", args(conf, name="vm.swappiness", state="absent"))
    assert result.changed and "swappiness" not in conf.read_text()
    assert h.run("sysctl", args(conf, name="vm.swappiness", state="absent")).status == "ok"


def test_a_missing_file_is_created(h, target):
    path = target / "99-recipe.conf"
    assert h.run("sysctl", args(path, name="kernel.panic", value="10", mode="0600")).changed
    assert path.read_text() == "kernel.panic=10\n" and path.stat().st_mode & 0o777 == 0o600


def test_check_mode_changes_nothing(h, conf):
    result = h.run("sysctl", args(conf, name="vm.swappiness", value="1"), check=True)
    assert result.changed and conf.read_text() == CONF


def test_reload_compares_the_running_kernel_in_check_mode(h, target):
    """kernel.ostype is Linux on every Linux; check mode reads it and sets nothing."""
    path = target / "k.conf"
    path.write_text("kernel.ostype=Linux\n")
    assert h.run("sysctl", {"sysctl_file": str(path), "name": "kernel.ostype", "value": "Linux"},
                 check=True).status == "ok"
    path.write_text("kernel.ostype=Other\n")
    stale = h.run("sysctl", {"sysctl_file": str(path), "name": "kernel.ostype", "value": "Other"}, check=True)
    assert stale.changed and "Linux" in stale.msg and path.read_text() == "kernel.ostype=Other\n"


def test_bad_options(h, conf):
    with pytest.raises(vol.Invalid, match="needs a value"):
        h.params("sysctl", {"name": "vm.swappiness"})
    with pytest.raises(vol.Invalid, match="blank"):
        h.params("sysctl", {"name": " ", "value": "1"})
    with pytest.raises(vol.Invalid):
        h.params("sysctl", {"name": "a", "value": "1", "state": "gone"})


def test_fixed_lines():
    assert fixed_lines(["a = 1", "b=2", "a=3"], "b", None) == ["a=1"]

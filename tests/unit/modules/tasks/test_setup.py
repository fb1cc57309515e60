"""setup: the facts gathered again on the target (here: this machine through /bin/sh), as Ansible returns them."""
import pytest
import voluptuous as vol


def test_setup_returns_ansibles_facts_with_the_ansible_prefix(h):
    result = h.run("setup", {})
    assert result.status == "ok" and not result.changed
    facts = result.facts
    assert facts["ansible_os_family"] == "Debian" and facts["ansible_pkg_mgr"] == "apt"
    assert facts["ansible_distribution"] == "Debian" and facts["ansible_system"] == "Linux"
    assert facts["ansible_user_uid"] == 0 and isinstance(facts["ansible_memtotal_mb"], int)
    assert facts["gather_subset"] == ["all"] and facts["module_setup"] is True
    assert result.as_register()["ansible_facts"] == facts
    assert len(h.connection.scripts) == 1, "one round trip"


def test_gather_subset_and_filter(h):
    minimal = h.run("setup", {"gather_subset": "!all"}).facts
    assert "ansible_distribution" in minimal and "ansible_mounts" not in minimal
    assert "ansible_default_ipv4" not in minimal
    network = h.run("setup", {"gather_subset": ["!all", "network"]}).facts
    assert "ansible_interfaces" in network and "ansible_processor_count" not in network
    only = h.run("setup", {"filter": ["ansible_distribution*", "os_family"]}).facts
    assert set(only) == {"ansible_distribution", "ansible_distribution_version", "ansible_distribution_release",
                         "ansible_distribution_major_version", "ansible_distribution_minor_version",
                         "ansible_distribution_file_path", "ansible_distribution_file_variety",
                         "ansible_distribution_file_parsed", "ansible_os_family"}
    assert h.run("setup", "filter=ansible_kernel").facts == {"ansible_kernel": minimal["ansible_kernel"]}


def test_check_mode_gathers_too(h):
    assert h.run("setup", {"gather_subset": "min"}, check=True).facts["ansible_os_family"] == "Debian"


def test_bad_arguments_are_refused_before_anything_runs(h):
    with pytest.raises(vol.Invalid, match="unknown gather_subset 'netwrk': did you mean 'network'"):
        h.params("setup", {"gather_subset": ["netwrk"]})
    with pytest.raises(vol.Invalid, match="gather_timeout"):
        h.params("setup", {"gather_timeout": 0})
    with pytest.raises(vol.Invalid, match="extra keys|not allowed|unknown"):
        h.params("setup", {"fliter": "x"})
    assert h.params("setup", {"gather_timeout": "30", "fact_path": "/tmp/f"}).gather_timeout == 30

"""package_facts: the parsers on fixed listings, and the apt listing of this machine against Ansible's own."""
import shutil

import pytest
import voluptuous as vol

from modules.tasks.package_facts import collect, order, parse_apk, parse_apt, parse_pacman, parse_rpm
from tests.unit.modules.tasks.conftest import ansible_module


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="a Debian build machine: dpkg's database to compare")
def test_the_packages_of_this_machine_are_what_ansible_reports(h):
    """Both read the same dpkg database: the same names, versions, arches, sections (apt's) and origins."""
    ours = h.run("package_facts", {})
    theirs = ansible_module("package_facts", {"manager": "auto"})
    assert ours.status == "ok" and not ours.changed
    assert ours.facts["packages"] == theirs["ansible_facts"]["packages"]
    assert ours.data["ansible_facts"]["packages"]["dpkg"][0]["source"] == "apt"


def test_apt_rows_origins_and_sections():
    rows = ["installed\tcurl\t7.88.1-10\tamd64\tweb", "config-files\told\t1.0\tamd64\tutils",
            "half-configured\tlibc6:i386\t2.36-9\ti386\tlibs", "installed\tlocal\t0.1\tall\t"]
    files = ["http://deb.debian.org/debian bookworm/main amd64 Packages\tv=12,o=Debian,a=stable,c=main",
             "/var/lib/dpkg/status\ta=now"]
    sources = ["curl\thttp://deb.debian.org/debian bookworm/main amd64 Packages", "local\t/var/lib/dpkg/status"]
    sections = ["curl\tamd64\tnet"]
    assert parse_apt(rows, files, sources, sections) == [
        {"name": "curl", "version": "7.88.1-10", "arch": "amd64", "category": "net", "origin": "Debian"},
        {"name": "libc6:i386", "version": "2.36-9", "arch": "i386", "category": "libs", "origin": ""},
        {"name": "local", "version": "0.1", "arch": "all", "category": None, "origin": ""}]


def test_rpm_apk_pacman():
    assert parse_rpm(["bash\t5.1.8\t6.el9\t(none)\tx86_64", "gpg-pubkey\tabc\t123\t(none)\t(none)"]) == [
        {"name": "bash", "version": "5.1.8", "release": "6.el9", "epoch": "None", "arch": "x86_64"},
        {"name": "gpg-pubkey", "version": "abc", "release": "123", "epoch": "None", "arch": "None"}]
    assert parse_apk(["musl-1.2.4-r2", "odd"]) == [{"name": "musl", "version": "1.2.4", "release": "r2"},
                                                 {"name": "odd", "version": "", "release": ""}]
    pacman = ["Name            : bash", "Version         : 5.2-2", "Architecture    : x86_64",
              "Provides        : sh  shell=1", "Description     : The GNU", "                  Bourne Again shell",
              "", "Name            : zlib", "Version         : 1.3-1", "Architecture    : x86_64",
              "Provides        : None"]
    assert parse_pacman(pacman) == [
        {"name": "bash", "version": "5.2-2", "arch": "x86_64", "provides": ["sh", "shell"]},
        {"name": "zlib", "version": "1.3-1", "arch": "x86_64", "provides": None}]


def test_order_and_strategy():
    assert order(["yum", "auto", "rpm"])[:3] == ["rpm", "apk", "apt"]
    tags = {"found": ["apt", "rpm"], "apt": ["installed\ta\t1\tall\tx"], "rpm": ["b\t1\t1\t(none)\tnoarch"]}
    assert list(collect(["rpm", "apt"], "first", tags)) == ["b"]
    both = collect(["rpm", "apt"], "all", tags)
    assert both["a"][0]["source"] == "apt" and both["b"][0]["source"] == "rpm"


def test_an_unknown_manager_is_refused(h):
    with pytest.raises(vol.Invalid, match="Unsupported package managers requested: chocolatey"):
        h.params("package_facts", {"manager": ["apt", "chocolatey"]})


def test_a_manager_that_is_not_there_fails_clearly(h):
    if shutil.which("apk"):
        pytest.skip("this machine has apk")
    result = h.run("package_facts", {"manager": "apk"})
    assert result.failed and "Could not detect a supported package manager" in result.msg
    assert h.run("package_facts", {"manager": "portage"}).failed

"""apt and package: plans and command lines from known output, and, on this Debian machine, the real probe
with apt-get -s (check mode), which reads the machine's package state and changes nothing."""
import os
import shutil
import subprocess
import time

import pytest
import voluptuous as vol

from modules.tasks._packages import Plan, Request, probe_script
from modules.tasks._remote import tagged
from modules.tasks.apt import APT, AptModule, changes_counted, parse_report, parse_spec
from modules.tasks.package import BACKENDS, Manager

DPKG = ["pkg nginx-light amd64 installed 1.22.1-9", "pkg curl amd64 installed 7.88.1-10",
        "pkg libfoo amd64 config-files 1.0-1", "pkg libc6 amd64 installed 2.36-9", "pkg libc6 i386 installed 2.36-9"]
POLICY = ["policy nginx-light 1.22.1-9 1.22.1-9", "policy curl 7.88.1-10 7.88.1-10+deb12u5"]

INSTALL_OUTPUT = """Reading package lists...
Building dependency tree...
The following additional packages will be installed:
  libnginx-mod-http-echo nginx-common
Suggested packages:
  fcgiwrap nginx-doc
The following NEW packages will be installed:
  libnginx-mod-http-echo nginx-common nginx-light
The following packages will be upgraded:
  curl libcurl4
The following packages will be REMOVED:
  apache2* apache2-bin
2 upgraded, 3 newly installed, 2 to remove and 120 not upgraded.
Inst nginx-common (1.22.1-9 Debian:12.4/stable [all])
"""


def req(**kwargs) -> Request:
    kwargs.setdefault("names", ())
    kwargs["names"] = tuple(kwargs["names"])
    return Request(**kwargs)


def test_apt_plan_present_latest_absent():
    tags, _ = tagged("\n".join(DPKG + POLICY) + "\n")
    assert APT.plan(req(names=["nginx-light", "curl", "sl"]), tags) == Plan(install=("sl",))
    assert APT.plan(req(names=["nginx-light", "curl"], state="latest"), tags) == Plan(upgrade=("curl",))
    assert APT.plan(req(names=["nginx-light=1.22.1-9", "curl=7.0"]), tags) == Plan(install=("curl=7.0",))
    assert APT.plan(req(names=["curl", "libfoo", "sl"], state="absent"), tags) == Plan(remove=("curl",))
    assert APT.plan(req(names=["libfoo"], state="absent", purge=True), tags) == Plan(remove=("libfoo",))
    assert APT.plan(req(names=["libc6:i386", "libc6:armhf"]), tags) == Plan(install=("libc6:armhf",))
    assert not APT.plan(req(names=["libc6"]), tags)


def test_apt_plan_deb_upgrade_autoremove():
    tags, _ = tagged("deb hello 2.10-3\ndebpkg hello amd64 installed 2.10-2\n")
    assert APT.plan(req(deb="hello_2.10-3_amd64.deb"), tags).install == ("./hello_2.10-3_amd64.deb",)
    tags["debpkg"] = ["hello amd64 installed 2.10-3"]
    assert not APT.plan(req(deb="/tmp/hello.deb"), tags)
    plan = APT.plan(req(upgrade="dist", autoremove=True), {})
    assert plan.steps == ("dist upgrade", "autoremove") and plan.packages == []


def test_apt_command_lines():
    plan = Plan(install=("nginx-light", "./x.deb"), upgrade=("curl",), remove=("apache2",))
    commands = APT.commands(req(names=["x"], upgrade="safe", autoremove=True, purge=True), plan)
    assert commands[0].endswith("upgrade --with-new-pkgs")
    assert commands[1].endswith(" install -- nginx-light ./x.deb curl")   # recommends: as apt is configured
    assert commands[2].endswith("purge -- apache2") and commands[3].endswith("autoremove --purge")
    for command in commands:
        assert command.startswith("apt-get -y -q -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef "
                                  "-o Dpkg::Options::=--force-confold ")
    simulated = APT.commands(req(install_recommends=True, allow_downgrade=True), Plan(install=("a",)), check=True)
    assert " -s install --install-recommends --allow-downgrades -- a" in simulated[0]
    asked = APT.commands(req(install_recommends=False, only_upgrade=True, default_release="bookworm-backports",
                             dpkg_options="force-confnew", lock_timeout=5), Plan(install=("a",)))
    assert asked[0] == ("apt-get -y -q -o DPkg::Lock::Timeout=5 -o Dpkg::Options::=--force-confnew install "
                        "--no-install-recommends --only-upgrade -t bookworm-backports -- a")
    script = APT.action(req(), Plan(install=("a",)), check=False)
    assert script.startswith("export DEBIAN_FRONTEND=noninteractive")


def test_apt_report_parsing():
    report = parse_report(INSTALL_OUTPUT)
    assert report == {"installed": ["libnginx-mod-http-echo", "nginx-common", "nginx-light"],
                      "upgraded": ["curl", "libcurl4"], "removed": ["apache2", "apache2-bin"]}
    assert changes_counted(INSTALL_OUTPUT) == 7
    assert changes_counted("0 upgraded, 0 newly installed, 0 to remove and 120 not upgraded.") == 0


def test_apt_probe_script_runs_update_only_outside_check_mode():
    r = req(names=["nginx"], update_cache=True, cache_valid_time=3600, state="latest")
    assert "apt-get update" in APT.probe(r, check=False) and "-ge 3600" in APT.probe(r, check=False)
    assert "apt-get update" not in APT.probe(r, check=True)
    assert "apt-cache policy -- nginx" in APT.probe(r, check=True)


def test_apt_options():
    params = AptModule.params({"name": "nginx, curl=7.88", "upgrade": True, "cache_valid_time": 3600})
    assert params.name == ["nginx", "curl=7.88"] and params.upgrade == "safe"
    assert AptModule.request(params).update_cache
    assert AptModule.params("nginx").name == ["nginx"]
    assert parse_spec("libc6:i386=2.36").arch == "i386"


@pytest.mark.parametrize("args", [{}, {"name": "Nginx"}, {"name": "-rf"}, {"name": "a=1", "state": "latest"},
                                  {"deb": "/x.deb", "state": "absent"}, {"name": "a", "upgrade": "everything"}])
def test_apt_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("apt", args)


def test_apt_ansible_forms():
    params = AptModule.params("pkg=nginx,curl update_cache=yes cache_valid_time=86400 install_recommends=no")
    assert params.name == ["nginx", "curl"] and params.update_cache and params.cache_valid_time == 86400
    assert params.install_recommends is False
    named = AptModule.params("name=nginx update_cache=yes cache_valid_time=86400")   # name= is not the free form
    assert named.name == ["nginx"] and named.update_cache and named.cache_valid_time == 86400
    aliased = AptModule.params({"package": ["vim"], "default-release": "testing", "update-cache": "yes",
                                "allow_downgrades": "1", "force_apt_get": True, "lock_timeout": "30"})
    assert aliased.name == ["vim"] and aliased.default_release == "testing" and aliased.allow_downgrade
    assert aliased.update_cache
    assert AptModule.params({"name": "vim"}).install_recommends is None
    with pytest.raises(vol.Invalid, match="unknown option"):
        AptModule.params({"name": "vim", "policy_rc_d": 101})   # not done: refused, not ignored


def test_package_finds_the_manager_in_one_probe():
    script = probe_script(BACKENDS, Request(("vim",)), check=False)
    assert script.index("command -v apt-get") < script.index("command -v dnf") < script.index("command -v pacman")
    assert script.count("dpkg-query") == 1 and "rpm -q --quiet --whatprovides" in script


def test_other_managers_plans_and_commands():
    dnf = next(b for b in BACKENDS if b.tool == "dnf")
    assert isinstance(dnf, Manager)
    tags = {"have": ["httpd", "vim-enhanced"], "missing": ["htop"], "update": ["httpd.x86_64"]}
    plan = dnf.plan(Request(("httpd", "vim-enhanced", "htop"), "latest"), tags)
    assert plan == Plan(install=("htop",), upgrade=("httpd",))
    assert dnf.action(Request(), plan, check=False) == "dnf -y install htop && dnf -y upgrade httpd\n"
    assert dnf.action(Request(), plan, check=True) is None
    assert dnf.plan(Request(("httpd", "htop"), "absent"), tags) == Plan(remove=("httpd", "vim-enhanced"))
    assert dnf.plan(Request(("/usr/bin/vim",), "latest"), {"have": ["/usr/bin/vim"], "newer": [""]}).upgrade == \
        ("/usr/bin/vim",)
    apk = next(b for b in BACKENDS if b.tool == "apk")
    assert apk.action(Request(), Plan(remove=("nginx",)), check=False) == "apk del --no-progress nginx\n"


def test_a_manager_probe_runs_for_real(h, tmp_path, monkeypatch):
    """A stand-in 'apk' whose query says what is installed drives the real probe and plan."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apk").write_text(f'#!/bin/sh\n[ "$1" = info ] && {{ [ "$3" = musl ]; exit; }}\necho "$*" >> {fake}/log\n')
    (fake / "apk").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    result = h.run("package", {"name": ["musl", "nginx"], "use": "apk"}, check=True)
    assert result.changed and result.msg == "installed nginx" and result.data["packages"] == ["nginx"]
    assert not (fake / "log").exists() and len(h.connection.scripts) == 1
    assert h.run("package", {"name": ["musl"], "use": "apk"}).status == "ok"
    removed = h.run("package", {"name": ["musl", "nginx"], "state": "absent", "use": "apk"})
    assert (fake / "log").read_text() == "del --no-progress musl\n" and removed.data["packages"] == ["musl"]
    installed_ = h.run("package", {"name": ["musl", "nginx"], "use": "apk"})
    assert installed_.changed and (fake / "log").read_text().endswith("add --no-progress nginx\n")


def test_dnf_and_yum_run_the_dnf_backend(h, tmp_path, monkeypatch):
    """dnf and yum are package restricted to dnf/yum: a stand-in dnf and rpm drive the real probe and plan."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "rpm").write_text('#!/bin/sh\n[ "$4" = bash ]\n')   # rpm -q --quiet --whatprovides NAME
    (fake / "dnf").write_text(f'#!/bin/sh\necho "$*" >> {fake}/log\n')
    (fake / "apt-get").write_text("#!/bin/sh\nexit 1\n")            # there, but dnf never looks at it
    for tool in ("rpm", "dnf", "apt-get"):
        (fake / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    assert h.run("dnf", "name=bash state=installed").status == "ok"
    result = h.run("yum", {"pkg": ["bash", "httpd"], "state": "present"})
    assert result.changed and (fake / "log").read_text() == "-y install httpd\n"
    h.run("dnf", {"name": "bash", "state": "removed"})
    assert (fake / "log").read_text().endswith("-y remove bash\n")
    for bad in ({"name": "x", "use": "apt"}, {"name": "x", "enablerepo": "epel"}, {"name": "x", "state": "fixed"}):
        with pytest.raises(vol.Invalid):
            h.params("dnf", bad)


debian = pytest.mark.skipif(not shutil.which("apt-get") or not shutil.which("dpkg-query"), reason="not Debian")


def installed(name: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", name], capture_output=True, text=True)
    return out.stdout == "installed"


def available_not_installed() -> str | None:
    for name in ("sl", "cowsay", "fortune-mod", "hello", "figlet"):
        policy = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True).stdout
        if "Candidate:" in policy and "Candidate: (none)" not in policy and not installed(name):
            return name
    return None


@debian
def test_apt_on_this_machine_present_is_one_probe(h):
    result = h.run("apt", {"name": ["dash", "coreutils"]})
    assert result.status == "ok" and len(h.connection.scripts) == 1 and result.data["packages"] == []
    assert h.run("package", "dash").status == "ok" and len(h.connection.scripts) == 1
    assert h.run("apt", {"name": "no-such-package-here", "state": "absent"}).status == "ok"


@debian
def test_apt_check_mode_simulates_on_this_machine(h):
    name = available_not_installed()
    if name is None:
        pytest.skip("no small uninstalled package in this machine's apt lists")
    result = h.run("apt", {"name": name}, check=True)
    assert result.changed and name in result.data["packages"] and result.msg.startswith("installed ")
    assert " -s install" in h.connection.scripts[-1] and not installed(name)
    via_package = h.run("package", {"name": name}, check=True)
    assert via_package.changed and name in via_package.data["packages"] and not installed(name)


@debian
def test_apt_check_mode_remove_and_unknown_package(h):
    if not installed("zip"):
        pytest.skip("zip is not installed here")
    result = h.run("apt", {"name": "zip", "state": "absent"}, check=True)
    assert result.changed and "zip" in result.data["packages"] and installed("zip")   # and what depends on it
    unknown = h.run("apt", {"name": "no-such-package-here"}, check=True)
    assert unknown.failed and "no-such-package-here" in unknown.msg


@debian
def test_apt_deb_file_on_this_machine(h):
    debs = sorted(__import__("glob").glob("/var/cache/apt/archives/*.deb"))
    if not debs:
        pytest.skip("no .deb in the apt cache here")
    result = h.run("apt", {"deb": debs[0]}, check=True)
    package = subprocess.run(["dpkg-deb", "-f", debs[0], "Package"], capture_output=True, text=True).stdout.strip()
    version = subprocess.run(["dpkg-deb", "-f", debs[0], "Version"], capture_output=True, text=True).stdout.strip()
    have = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True).stdout
    if installed(package) and have == version:
        assert result.status == "ok" and len(h.connection.scripts) == 1
    else:
        assert not result.failed and h.connection.scripts[-1].count(" -s install") == 1
    missing = h.run("apt", {"deb": "/nonexistent/x.deb"})
    assert missing.failed and "/nonexistent/x.deb is not a file" in missing.msg


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """apt-get replaced by a script that logs its arguments and prints what the real one prints; dpkg-query is
    this machine's. The lists directory is a temporary one, so the real cache is never touched."""
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f"""#!/bin/sh
echo "$DEBIAN_FRONTEND $*" >> {log}
case " $* " in
  *" update "*) echo 'Hit:1 http://deb.debian.org/debian bookworm InRelease' >&2;;
  *" install "*" locked-pkg"*) echo 'E: Could not get lock /var/lib/dpkg/lock-frontend' >&2; exit 100;;
  *" install "*) printf 'The following NEW packages will be installed:\\n  sl\\n'
                 echo '0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.';;
  *) echo '0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.';;
esac
""")
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    lists = tmp_path / "lists"
    lists.mkdir()
    monkeypatch.setattr("modules.tasks.apt.LISTS", str(lists))
    monkeypatch.setattr("modules.tasks.apt.STAMP", str(tmp_path / "no-stamp"))
    return log, lists


@debian
def test_apt_action_wiring_with_a_stand_in_apt_get(h, fake_apt):
    log, lists = fake_apt
    if installed("sl"):
        pytest.skip("sl is installed here")
    result = h.run("apt", {"name": "sl", "update_cache": True})
    assert result.changed and result.data["packages"] == ["sl"] and result.data["cache_updated"] is True
    assert abs(result.data["cache_update_time"] - time.time()) < 60   # the lists were just updated
    update, install = log.read_text().splitlines()
    assert update.startswith("noninteractive update -q -o DPkg::Lock::Timeout=60")
    assert install == ("noninteractive -y -q -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef "
                       "-o Dpkg::Options::=--force-confold install -- sl")
    assert len(h.connection.scripts) == 2


@debian
def test_apt_cache_valid_time(h, fake_apt):
    log, lists = fake_apt
    assert h.run("apt", {"name": "dash", "cache_valid_time": 3600}).data["cache_updated"] is False   # fresh
    old = time.time() - 7200
    os.utime(lists, (old, old))
    assert h.run("apt", {"name": "dash", "cache_valid_time": 3600}).data["cache_updated"] is True
    assert lists.stat().st_mtime > old + 3600 and log.read_text().count(" update ") == 1


@debian
def test_apt_failure_says_why(h, fake_apt):
    result = h.run("apt", {"name": "locked-pkg"})
    assert result.failed and result.rc == 100 and "Could not get lock" in result.msg

"""Ansible's facts from the probe: the parsers on fixed probe outputs, then the probe on this machine
compared with what Ansible's own setup module gathers here."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.build.ansible_facts import BadSubset, ansible_facts, selected_collectors
from engine.build.facts import GATHER, PROBE_KEY, parse_facts

ANSIBLE = Path(sys.executable).parent / "ansible"

DEBIAN_OS_RELEASE = '''PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian'''
UBUNTU_OS_RELEASE = '''PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy'''


def grepped(files: dict[str, str]) -> str:
    """What the probe's `grep -sH ''` prints for these files."""
    return "\n".join(f"{path}:{line}" for path, text in files.items() for line in text.split("\n"))


def probe(files: dict[str, str] | None = None, **sections: str) -> dict:
    """parse_facts of a made-up probe output."""
    sections = {"uname": "Linux web1.example.org 6.1.0-18-amd64 x86_64\n#1 SMP Debian 6.1.76-1", **sections}
    text = "os_id=debian\n" + "".join(f"\n@@{name}\n{body}\n" for name, body in
                                      {**sections, "files": grepped(files or {})}.items())
    return parse_facts(text)


def test_debian_distribution_with_its_point_release_from_debian_version():
    facts = ansible_facts(probe({"/etc/os-release": DEBIAN_OS_RELEASE, "/etc/debian_version": "12.5"},
                                exists="/etc/os-release\n/etc/debian_version"), ["!all"])
    assert {k: facts[k] for k in ("distribution", "distribution_version", "distribution_major_version",
                                  "distribution_minor_version", "distribution_release", "os_family",
                                  "distribution_file_variety", "distribution_file_path")} == {
        "distribution": "Debian", "distribution_version": "12.5", "distribution_major_version": "12",
        "distribution_minor_version": "5", "distribution_release": "bookworm", "os_family": "Debian",
        "distribution_file_variety": "Debian", "distribution_file_path": "/etc/os-release"}
    assert facts["distribution_file_parsed"] is True


def test_ubuntu_keeps_its_os_release_version_and_is_debian_family():
    facts = ansible_facts(probe({"/etc/os-release": UBUNTU_OS_RELEASE, "/etc/debian_version": "bookworm/sid"}),
                          ["distribution"])
    assert (facts["distribution"], facts["distribution_version"], facts["distribution_release"],
            facts["os_family"]) == ("Ubuntu", "22.04", "jammy", "Debian")
    assert "distribution_minor_version" not in facts


def test_platform_hostname_fqdn_and_userspace():
    facts = ansible_facts(probe(longbit="64", fqdn="10.0.0.5      web1.example.org web1"), ["platform"])
    assert facts["system"] == "Linux" and facts["kernel"] == "6.1.0-18-amd64"
    assert facts["kernel_version"] == "#1 SMP Debian 6.1.76-1" and facts["architecture"] == "x86_64"
    assert (facts["hostname"], facts["nodename"], facts["fqdn"], facts["domain"]) == (
        "web1", "web1.example.org", "web1.example.org", "example.org")
    assert facts["userspace_bits"] == "64" and facts["userspace_architecture"] == "x86_64"


ADDR_PRIMARY = """1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
    inet6 ::1/128 scope host
2: ens3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000
    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff
    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic ens3
    inet6 fec0::5054:ff:fe12:3456/64 scope site dynamic mngtmpaddr
    inet6 fe80::5054:ff:fe12:3456/64 scope link"""
ADDR_SECONDARY = """2: ens3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000
    inet 10.0.2.16/24 brd 10.0.2.255 scope global secondary ens3:web"""
NET_FILES = {"/sys/class/net/lo/address": "00:00:00:00:00:00", "/sys/class/net/lo/mtu": "65536",
             "/sys/class/net/lo/type": "772", "/sys/class/net/lo/flags": "0x9",
             "/sys/class/net/lo/operstate": "unknown", "/sys/class/net/ens3/address": "52:54:00:12:34:56",
             "/sys/class/net/ens3/mtu": "1500", "/sys/class/net/ens3/type": "1", "/sys/class/net/ens3/flags": "0x1103",
             "/sys/class/net/ens3/operstate": "up", "/sys/class/net/ens3/speed": "-1"}


def test_network_facts_from_ip_output():
    facts = ansible_facts(probe(NET_FILES, bins="ip", netdirs=".\n..\nlo\nens3",
                                route4="8.8.8.8 via 10.0.2.2 dev ens3 src 10.0.2.15 uid 0\n    cache",
                                addr_primary=ADDR_PRIMARY, addr_secondary=ADDR_SECONDARY,
                                netlinks="pciid ens3 ../../../0000:00:03.0\nmodule ens3 /sys/module/e1000",
                                local4="local 10.0.2.15 dev ens3 table local proto kernel scope host src 10.0.2.15"),
                          ["!all", "network"])
    assert facts["default_ipv4"] == {
        "interface": "ens3", "address": "10.0.2.15", "gateway": "10.0.2.2", "broadcast": "10.0.2.255",
        "netmask": "255.255.255.0", "network": "10.0.2.0", "prefix": "24", "macaddress": "52:54:00:12:34:56",
        "mtu": 1500, "type": "ether", "alias": "ens3"}
    assert facts["default_ipv6"] == {}
    assert facts["interfaces"] == ["lo", "ens3", "ens3_web"]
    assert facts["all_ipv4_addresses"] == ["10.0.2.15", "10.0.2.16"]
    assert facts["all_ipv6_addresses"] == ["fec0::5054:ff:fe12:3456", "fe80::5054:ff:fe12:3456"]
    ens3 = facts["ens3"]
    assert ens3["ipv4"]["address"] == "10.0.2.15" and ens3["ipv4_secondaries"][0]["address"] == "10.0.2.16"
    assert ens3["ipv6"][1] == {"address": "fe80::5054:ff:fe12:3456", "prefix": "64", "scope": "link"}
    assert (ens3["active"], ens3["promisc"], ens3["speed"], ens3["pciid"], ens3["module"]) == (
        True, True, -1, "0000:00:03.0", "e1000")
    assert facts["ens3_web"]["ipv4_secondaries"][0]["address"] == "10.0.2.16"
    assert facts["lo"]["type"] == "loopback" and "macaddress" not in facts["lo"]
    assert facts["locally_reachable_ips"] == {"ipv4": ["10.0.2.15"], "ipv6": []}
    assert {"distribution", "system"} <= set(facts), "network brings the collectors it requires"


def test_without_ip_the_interfaces_and_default_route_come_from_sys_and_proc():
    route = "Iface\tDestination\tGateway \tFlags\nens3\t00000000\t0202000A\t0003\nens3\t0002000A\t00000000\t0001"
    facts = ansible_facts(probe({**NET_FILES, "/proc/net/route": route}, netdirs="lo\nens3"), ["network"])
    assert facts["default_ipv4"] == {"interface": "ens3", "gateway": "10.0.2.2"}
    assert facts["interfaces"] == ["lo", "ens3"] and facts["ens3"]["mtu"] == 1500
    assert "default_ipv6" not in facts and "all_ipv4_addresses" not in facts


def test_cpu_memory_uptime_and_mounts():
    cpuinfo = "\n".join(f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 0\n"
                        f"siblings\t: 4\ncore id\t\t: {i // 2}\ncpu cores\t: 2\nflags\t\t: fpu vme\n" for i in range(4))
    meminfo = "MemTotal:        2048000 kB\nMemFree:          512000 kB\nBuffers:   10240 kB\nCached:   102400 kB\n" \
              "SwapCached: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB"
    mtab = "/dev/vda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n/dev/vdb /srv/my\\040data xfs rw 0 2"
    facts = ansible_facts(probe({"/proc/cpuinfo": cpuinfo, "/proc/meminfo": meminfo, "/proc/uptime": "1234.56 99.0"},
                                nproc="4", mtab=mtab, statfs="/ 4096 4096 1000 250 100 40\n/srv/my\\040data ",
                                lsblk="/dev/vda1 0b9d-uuid\n/dev/vdb"), ["hardware"])
    assert (facts["processor_count"], facts["processor_cores"], facts["processor_threads_per_core"],
            facts["processor_vcpus"], facts["processor_nproc"]) == (1, 2, 2, 4, 4)
    assert facts["processor"][:3] == ["0", "GenuineIntel", "Xeon"] and facts["flags"] == ["fpu", "vme"]
    assert (facts["memtotal_mb"], facts["memfree_mb"], facts["swaptotal_mb"]) == (2000, 500, 0)
    assert facts["memory_mb"]["nocache"] == {"free": 610, "used": 1390}
    assert facts["uptime_seconds"] == 1234
    root, data = facts["mounts"]
    assert root == {"mount": "/", "device": "/dev/vda1", "fstype": "ext4", "options": "rw,relatime", "dump": 0,
                    "passno": 0, "size_total": 4096000, "size_available": 1024000, "block_size": 4096,
                    "block_total": 1000, "block_available": 250, "block_used": 750, "inode_total": 100,
                    "inode_available": 40, "inode_used": 60, "uuid": "0b9d-uuid"}
    assert data["mount"] == "/srv/my data" and data["uuid"] == "N/A" and "size_total" not in data
    assert facts["product_name"] == "NA"


def test_env_from_dash_and_bash_export_lists():
    dash = "export HOME='/root'\nexport MULTI='a\nb'\nexport QUOTE='it'\\''s'\nexport UNSET"
    bash = 'declare -x HOME="/home/x"\ndeclare -x PATH="/usr/bin:/bin"'
    assert ansible_facts(probe(env=dash), ["!all"])["env"] == {"HOME": "/root", "MULTI": "a\nb", "QUOTE": "it's"}
    assert ansible_facts(probe(env=bash), ["!all"])["env"] == {"HOME": "/home/x", "PATH": "/usr/bin:/bin"}


def test_service_mgr_pkg_mgr_selinux_apparmor_and_virtualization():
    facts = ansible_facts(probe({"/proc/1/comm": "systemd", "/proc/1/cgroup": "0::/init.scope",
                                 "/sys/devices/virtual/dmi/id/sys_vendor": "QEMU",
                                 "/sys/devices/virtual/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)",
                                 "/sys/devices/virtual/dmi/id/chassis_type": "1"},
                                exists="/usr/bin/apt-get\n/usr/bin/dnf-3\n/sys/devices/virtual/dmi/id/product_name"),
                          ["all"])
    assert facts["service_mgr"] == "systemd" and facts["pkg_mgr"] == "apt"
    assert facts["selinux"] == {"status": "disabled"} and facts["apparmor"] == {"status": "disabled"}
    assert (facts["virtualization_type"], facts["virtualization_role"]) == ("kvm", "guest")
    assert facts["virtualization_tech_guest"] == ["kvm"] and facts["system_vendor"] == "QEMU"
    assert facts["form_factor"] == "Other" and facts["bios_vendor"] == "NA"


def test_python_facts_describe_the_targets_python_and_are_left_out_without_one():
    facts = ansible_facts(probe(python="/usr/bin/python3\n3 11 2 final 0\ncpython\nTrue"), ["!all", "python"])
    assert facts["python"] == {"version": {"major": 3, "minor": 11, "micro": 2, "releaselevel": "final", "serial": 0},
                               "version_info": [3, 11, 2, "final", 0], "executable": "/usr/bin/python3",
                               "has_sslcontext": True, "type": "cpython"}
    assert facts["python_version"] == "3.11.2"
    bare = ansible_facts(probe(python=""), ["!all", "python"])
    assert "python" not in bare and "python_version" not in bare


def test_gather_subset_and_filter_keep_ansibles_meaning():
    facts = probe({"/etc/os-release": DEBIAN_OS_RELEASE}, bins="ip")
    minimal = ansible_facts(facts, ["!all"])
    assert "distribution" in minimal and "env" in minimal and "default_ipv4" not in minimal
    assert "mounts" not in minimal and "virtualization_type" not in minimal
    assert minimal["gather_subset"] == ["!all"] and minimal["module_setup"] is True
    assert "default_ipv4" in ansible_facts(facts, ["!all", "network"])
    assert "mounts" not in ansible_facts(facts, ["!hardware"])
    assert [c.name for c in selected_collectors(["!all", "!min", "os_family"])] == ["distribution"]
    with pytest.raises(BadSubset, match="Bad subset 'nope'"):
        ansible_facts(facts, ["nope"])
    assert set(ansible_facts(facts, ["!all"], ["ansible_distribution*"])) >= {"distribution", "distribution_release"}
    assert set(ansible_facts(facts, ["!all"], ["os_family"])) == {"os_family"}
    assert set(ansible_facts(facts, ["!all"], ["ansible_os_family", "kernel"])) == {"os_family", "kernel"}


# The differential test: the probe through /bin/sh here, and Ansible's setup module here, side by side.

VARYING = {"date_time", "uptime_seconds", "memfree_mb", "memory_mb", "loadavg", "mounts"}
SHELL_ADDED = {"_", "SHLVL", "PWD", "OLDPWD"}      # set by whichever shell ran the gatherer


def ansible_setup() -> dict:
    out = subprocess.run([str(ANSIBLE), "localhost", "-c", "local", "-m", "setup", "-e",
                          "ansible_python_interpreter=/usr/bin/python3"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    found = json.loads(out.stdout[out.stdout.index("{"):])["ansible_facts"]
    return {key.removeprefix("ansible_"): value for key, value in found.items()}


def probe_here() -> dict:
    out = subprocess.run(["/bin/sh", "-c", GATHER], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return ansible_facts(parse_facts(out.stdout))


@pytest.mark.skipif(not ANSIBLE.exists() or not os.path.exists("/usr/bin/python3"), reason="needs ansible-core")
def test_every_fact_equals_what_ansibles_setup_gathers_on_this_machine():
    ours, theirs = probe_here(), ansible_setup()
    shared = set(ours) & set(theirs)
    assert {"distribution", "os_family", "default_ipv4", "env", "user_uid", "service_mgr", "mounts"} <= shared
    differ = {}
    for key in sorted(shared - VARYING):
        mine, real = ours[key], theirs[key]
        if key == "env":
            mine, real = ({k: v for k, v in d.items() if k not in SHELL_ADDED} for d in (mine, real))
        if key in ("interfaces", "virtualization_tech_guest", "virtualization_tech_host"):
            mine, real = sorted(mine), sorted(real)      # Ansible's order is a set's, it varies run to run
        if mine != real:
            differ[key] = (mine, real)
    assert differ == {}
    assert set(ours) - set(theirs) <= {"userspace_architecture"}, "a fact Ansible does not give here"
    loose(ours, theirs)


def loose(ours: dict, theirs: dict) -> None:
    """The facts that change while both gather: close, not equal."""
    assert abs(int(ours["date_time"]["epoch"]) - int(theirs["date_time"]["epoch"])) < 120
    assert set(ours["date_time"]) == set(theirs["date_time"])
    assert {k: ours["date_time"][k] for k in ("tz", "tz_dst", "tz_offset")} == \
           {k: theirs["date_time"][k] for k in ("tz", "tz_dst", "tz_offset")}
    assert abs(ours["uptime_seconds"] - theirs["uptime_seconds"]) < 120
    assert abs(ours["memfree_mb"] - theirs["memfree_mb"]) < 2048
    assert ours["memory_mb"]["real"]["total"] == theirs["memory_mb"]["real"]["total"]
    assert set(ours["loadavg"]) == set(theirs["loadavg"])
    strip = {"size_available", "block_available", "block_used", "inode_available", "inode_used"}
    assert [{k: v for k, v in m.items() if k not in strip} for m in ours["mounts"]] == \
           [{k: v for k, v in m.items() if k not in strip} for m in theirs["mounts"]]


def test_the_minimal_probe_output_gives_facts_without_failing():
    facts = ansible_facts({PROBE_KEY: {}})
    assert facts["selinux"] == {"status": "disabled"} and facts["fips"] is False
    assert "distribution" not in facts and "default_ipv4" not in facts and facts["mounts"] == []

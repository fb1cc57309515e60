"""Ansible's system facts from the probe's sections: platform, distribution, lsb, user, env, date_time, dns,
cmdline, selinux/apparmor, fips, chroot, service_mgr, pkg_mgr, ssh host keys.

Each function takes the probe (a Probe) and returns the facts one of Ansible's collectors returns, with
Ansible's names and types; what the target did not give stays out.
"""
from __future__ import annotations

import datetime
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from engine.build.ansible_probe import DIST_FILES, DMI_DIR, FILES, PKG_MGR_PATHS

# Ansible's Distribution.OS_FAMILY_MAP, inverted: distribution -> os_family.
OS_FAMILY = {name: family for family, names in {
    "RedHat": ["RedHat", "RHEL", "Fedora", "CentOS", "Scientific", "SLC", "Ascendos", "CloudLinux", "PSBM",
               "OracleLinux", "OVS", "OEL", "Amazon", "Amzn", "Virtuozzo", "XenServer", "Alibaba", "EulerOS",
               "openEuler", "AlmaLinux", "Rocky", "TencentOS", "EuroLinux", "Kylin Linux Advanced Server", "MIRACLE"],
    "Debian": ["Debian", "Ubuntu", "Raspbian", "Neon", "KDE neon", "Linux Mint", "SteamOS", "Devuan", "Kali",
               "Cumulus Linux", "Pop!_OS", "Parrot", "Pardus GNU/Linux", "Uos", "Deepin", "OSMC",
               "Linux Mint Debian Edition"],
    "Suse": ["SuSE", "SLES", "SLED", "openSUSE", "openSUSE Tumbleweed", "SLES_SAP", "SUSE_LINUX", "openSUSE Leap",
             "ALP-Dolomite", "SL-Micro", "openSUSE MicroOS"],
    "Archlinux": ["Archlinux", "Antergos", "Manjaro"], "Mandrake": ["Mandrake", "Mandriva"],
    "Slackware": ["Slackware"], "Altlinux": ["Altlinux"], "SMGL": ["SMGL"], "Gentoo": ["Gentoo", "Funtoo"],
    "Alpine": ["Alpine"], "ClearLinux": ["Clear Linux OS", "Clear Linux Mix"],
}.items() for name in names}

STRIP_QUOTES = "'\"\\"


@dataclass(frozen=True)
class Probe:
    """The probe's sections, with the small lookups every collector needs."""

    sections: dict[str, str]
    exists: frozenset[str] = field(default=frozenset())
    bins: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(cls, sections: dict[str, str]) -> "Probe":
        sections = {**sections, **_file_sections(sections.get("files", ""))}
        return cls(sections, frozenset(sections.get("exists", "").split("\n")) - {""},
                   frozenset(sections.get("bins", "").split()))

    def uname(self) -> dict[str, str]:
        """{system, nodename, kernel, machine, kernel_version} from `uname -snrm; uname -v`."""
        lines = self.sections.get("uname", "").split("\n")
        words = lines[0].split()
        if len(words) != 4 or len(lines) < 2:
            return {}
        return dict(zip(("system", "nodename", "kernel", "machine"), words), kernel_version=lines[1])

    def text(self, name: str) -> str | None:
        """A section as Ansible's get_file_content gives a file: stripped, None when missing or empty."""
        value = self.sections.get(name, "").strip()
        return value or None

    def lines(self, name: str) -> list[str]:
        return (self.text(name) or "").splitlines()


def _file_sections(grepped: str) -> dict[str, str]:
    """The probe's `grep -sH '' FILE...` output as sections: FILES by name, release files as dist:<path>,
    and the DMI, interface, ssh key and fc_host files as path:line lines under dmi, netfiles, ssh_keys, fc_wwn."""
    by_path: dict[str, list[str]] = {}
    for line in grepped.split("\n"):
        path, sep, content = line.partition(":")
        if sep:
            by_path.setdefault(path, []).append(content)
    sections = {name: "\n".join(by_path[path]) for name, path in FILES.items() if path in by_path}
    sections.update({f"dist:{path}": "\n".join(by_path[path]) for path in DIST_FILES if path in by_path})
    groups = {"dmi": DMI_DIR + "/", "netfiles": "/sys/class/net/", "ssh_keys": "/etc/ssh/"}
    for name, prefix in groups.items():
        sections[name] = "\n".join(f"{path}:{content}" for path, lines in by_path.items() if path.startswith(prefix)
                                   for content in lines)
    sections["fc_wwn"] = "\n".join(content for path, lines in by_path.items()
                                   if path.startswith("/sys/class/fc_host/") for content in lines)
    sections["modules"] = "\n".join(line.split(" ")[0] for line in sections.get("modules", "").split("\n"))
    status = sections.get("self_status", "").split("\n")
    sections["ids"] = "\n".join(line for line in status if line.startswith(("Uid:", "Gid:")))
    sections["vxid"] = "\n".join(line for line in status if line.startswith("VxID:"))
    return sections


def platform_facts(probe: Probe) -> dict[str, Any]:
    uname = probe.uname()
    if not uname:
        return {}
    machine, node = uname["machine"], uname["nodename"]
    facts: dict[str, Any] = {key: uname[key] for key in ("system", "kernel", "kernel_version", "machine")}
    facts.update(host_facts(node, probe.lines("fqdn")))
    bits = probe.text("longbit") or ""
    facts["userspace_bits"] = bits
    facts["architecture"] = machine
    if machine == "x86_64":
        userspace = {"64": "x86_64", "32": "i386"}.get(bits)
        if userspace:
            facts["userspace_architecture"] = userspace
    python = python_facts(probe).get("python")
    if python:    # platform.python_version() of the module's Python, in Ansible
        facts["python_version"] = ".".join(str(part) for part in python["version_info"][:3])
    machine_id = probe.text("dbus_machine_id") or probe.text("etc_machine_id")
    if machine_id:
        facts["machine_id"] = machine_id.splitlines()[0]
    return facts


def python_facts(probe: Probe) -> dict[str, Any]:
    """The python collector's, of the target's Python where it has one (the one Ansible's interpreter discovery
    picks first): recipe runs none, but content reads ansible_python.executable. None: no fact, as no module."""
    lines = probe.lines("python")
    parts = lines[1].split() if len(lines) >= 4 else []
    if len(parts) != 5 or not all(part.isdigit() for part in (*parts[:3], parts[4])):
        return {}
    major, minor, micro, level, serial = int(parts[0]), int(parts[1]), int(parts[2]), parts[3], int(parts[4])
    return {"python": {"version": {"major": major, "minor": minor, "micro": micro, "releaselevel": level,
                                   "serial": serial},
                       "version_info": [major, minor, micro, level, serial], "executable": lines[0],
                       "has_sslcontext": lines[3] == "True", "type": lines[2]}}


def host_facts(node: str, fqdn_lines: list[str]) -> dict[str, Any]:
    """hostname, nodename, fqdn and domain, as Python's platform.node() and socket.getfqdn() give them."""
    fqdn = node
    if fqdn_lines:
        names = fqdn_lines[0].split()[1:]          # `getent hosts ADDR`: address, canonical name, aliases
        fqdn = next((name for name in names if "." in name), names[0] if names else node)
    return {"hostname": node.split(".")[0], "nodename": node, "fqdn": fqdn, "domain": ".".join(fqdn.split(".")[1:])}


def env_facts(probe: Probe) -> dict[str, Any]:
    """The login environment, from `export -p` (dash: export K='v'; bash: declare -x K="v")."""
    try:
        words = shlex.split(probe.sections.get("env", ""))
    except ValueError:
        return {"env": {}}
    env: dict[str, str] = {}
    for before, word in zip(["", *words], words):
        if before in ("export", "-x") and "=" in word:
            key, _, value = word.partition("=")
            env[key] = value
    return {"env": env}


def date_time_facts(probe: Probe) -> dict[str, Any]:
    parts = (probe.text("date") or "").split("|")
    if len(parts) != 13:
        return {}
    year, month, weekday, weekday_number, weeknumber, day, hour, minute, second, epoch, tz, tz_offset, nanos = parts
    micro = f"{int(nanos) // 1000:06d}" if nanos.isdigit() else "000000"
    utc = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc) if epoch.isdigit() else None
    facts = {
        "year": year, "month": month, "weekday": weekday, "weekday_number": weekday_number,
        "weeknumber": weeknumber, "day": day, "hour": hour, "minute": minute, "second": second,
        "epoch": epoch, "epoch_int": epoch, "date": f"{year}-{month}-{day}", "time": f"{hour}:{minute}:{second}",
        "iso8601_basic": f"{year}{month}{day}T{hour}{minute}{second}{micro}",
        "iso8601_basic_short": f"{year}{month}{day}T{hour}{minute}{second}",
        "tz": tz, "tz_dst": dst_name(probe.lines("tznames"), tz), "tz_offset": tz_offset,
    }
    if utc:
        facts["iso8601"] = utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        facts["iso8601_micro"] = utc.strftime("%Y-%m-%dT%H:%M:%S.") + micro + "Z"
    return {"date_time": facts}


def dst_name(tznames: list[str], tz: str) -> str:
    """Python's time.tzname[1]: of January's and July's zone names, the one with the larger offset."""
    zones = [line.split() for line in tznames if len(line.split()) == 2]
    if len(zones) != 2:
        return tz
    (jan, jan_off), (jul, jul_off) = zones
    return jul if int(jul_off) > int(jan_off) else jan


def dns_facts(probe: Probe) -> dict[str, Any]:
    dns: dict[str, Any] = {}
    for line in probe.lines("resolv.conf"):
        if line.startswith(("#", ";")) or not line.strip():
            continue
        tokens = line.split()
        if tokens[0] == "nameserver":
            dns.setdefault("nameservers", []).extend(tokens[1:])
        elif tokens[0] == "domain" and len(tokens) > 1:
            dns["domain"] = tokens[1]
        elif tokens[0] in ("search", "sortlist"):
            dns[tokens[0]] = tokens[1:]
        elif tokens[0] == "options":
            dns["options"] = {opt.split(":", 1)[0]: (opt.split(":", 1)[1] if ":" in opt else True)
                              for opt in tokens[1:]}
    return {"dns": dns}


def cmdline_facts(probe: Probe) -> dict[str, Any]:
    data = probe.text("cmdline")
    if not data:
        return {}
    try:
        pieces = shlex.split(data, posix=False)
    except ValueError:
        pieces = []
    cmdline: dict[str, Any] = {}
    proc: dict[str, Any] = {}
    for piece in pieces:
        key, sep, value = piece.partition("=")
        cmdline[key] = value if sep else True
        if not sep:
            proc[key] = True
        elif key in proc:                  # a repeated key= becomes a list in proc_cmdline only
            proc[key] = [*proc[key], value] if isinstance(proc[key], list) else [proc[key], value]
        else:
            proc[key] = value
    return {"cmdline": cmdline, "proc_cmdline": proc}


def lsb_facts(probe: Probe) -> dict[str, Any]:
    lsb: dict[str, str] = {}
    names = {"LSB Version:": "release", "Distributor ID:": "id", "Description:": "description",
             "Release:": "release", "Codename:": "codename"}
    for line in probe.lines("lsb_release"):
        if ":" in line:
            key = next((k for label, k in names.items() if label in line), None)
            if key:
                lsb[key] = line.split(":", 1)[1].strip()
    if not lsb:
        names = {"DISTRIB_ID": "id", "DISTRIB_RELEASE": "release", "DISTRIB_DESCRIPTION": "description",
                 "DISTRIB_CODENAME": "codename"}
        for line in probe.lines("dist:/etc/lsb-release"):
            key = next((k for label, k in names.items() if label in line), None)
            if key and "=" in line:
                lsb[key] = line.split("=", 1)[1].strip()
    if "release" in lsb:
        lsb["major_release"] = lsb["release"].split(".")[0]
    return {"lsb": {k: v.strip(STRIP_QUOTES) if v else v for k, v in lsb.items()}}


def user_facts(probe: Probe) -> dict[str, Any]:
    ids = {line.split(":")[0]: line.split()[1:] for line in probe.lines("ids") if len(line.split()) >= 3}
    passwd = probe.lines("passwd")
    facts: dict[str, Any] = {"user_id": probe.text("login") or ""}
    fields = passwd[0].split(":") if passwd else []
    if len(fields) >= 7:
        facts.update(user_uid=int(fields[2]), user_gid=int(fields[3]), user_gecos=fields[4], user_dir=fields[5],
                     user_shell=fields[6])
    if "Uid" in ids and "Gid" in ids:
        facts.update(real_user_id=int(ids["Uid"][0]), effective_user_id=int(ids["Uid"][1]),
                     real_group_id=int(ids["Gid"][0]),
                     effective_group_id=int(ids["Gid"][0]))   # sic: Ansible reports os.getgid() here
    return facts


def selinux_facts(probe: Probe) -> dict[str, Any]:
    if "/sys/fs/selinux/enforce" not in probe.exists:
        return {"selinux": {"status": "disabled"}}
    modes = {"1": "enforcing", "0": "permissive"}
    config = dict(line.split("=", 1) for line in probe.lines("selinux_config") if "=" in line)
    return {"selinux": {
        "status": "enabled", "policyvers": _int_or(probe.text("selinux_policyvers"), "unknown"),
        "mode": modes.get(probe.text("selinux_enforce") or "", "unknown"),
        "config_mode": config.get("SELINUX", "unknown").strip(), "type": config.get("SELINUXTYPE", "unknown").strip(),
    }}


def _int_or(value: str | None, default: Any) -> Any:
    return int(value) if value and value.isdigit() else default


def apparmor_facts(probe: Probe) -> dict[str, Any]:
    enabled = "/sys/kernel/security/apparmor" in probe.exists
    return {"apparmor": {"status": "enabled" if enabled else "disabled"}}


def fips_facts(probe: Probe) -> dict[str, Any]:
    return {"fips": probe.text("fips") == "1"}


def chroot_facts(probe: Probe) -> dict[str, Any]:
    lines = probe.lines("chroot")
    if lines and lines[0] != "debian_chroot=":
        return {"is_chroot": True}
    stats = lines[1:]
    if len(stats) == 2:
        return {"is_chroot": stats[0] != stats[1]}
    if not stats:
        return {}
    fs_type = probe.text("rootfs") or ""
    root_inode = 256 if "btrfs" in fs_type else 128 if "xfs" in fs_type else 2
    return {"is_chroot": stats[0].split(":")[-1] != str(root_inode)}


def service_mgr_facts(probe: Probe, system: str) -> dict[str, Any]:
    proc_1 = probe.text("proc1_comm") or probe.text("sbin_init")
    if proc_1 is not None:
        proc_1 = proc_1.rsplit("/", 1)[-1].strip()
        if proc_1 == "init" or proc_1.endswith("sh"):
            proc_1 = None    # many systems say init; a shell means a container: neither tells
    if proc_1:
        names = {"procd": "openwrt_init", "runit-init": "runit", "svscan": "svc", "openrc-init": "openrc"}
        return {"service_mgr": names.get(proc_1, proc_1)}
    return {"service_mgr": _linux_service_mgr(probe) if system == "Linux" else "service"}


def _linux_service_mgr(probe: Probe) -> str:
    systemctl = "systemctl" in probe.bins
    canaries = ("/run/systemd/system/", "/dev/.run/systemd/", "/dev/.systemd/")
    if systemctl and any(path in probe.exists for path in canaries):
        return "systemd"
    if "initctl" in probe.bins and "/etc/init/" in probe.exists:
        return "upstart"
    if "/sbin/openrc" in probe.exists:
        return "openrc"
    if systemctl and (probe.text("sbin_init") or "").rsplit("/", 1)[-1] == "systemd":
        return "systemd"
    if "/etc/init.d/" in probe.exists:
        return "sysvinit"
    if "/etc/dinit.d/" in probe.exists:
        return "dinit"
    return "service"


def pkg_mgr_facts(probe: Probe, os_family: str) -> dict[str, Any]:
    name = "unknown"
    for path, manager in PKG_MGR_PATHS:
        if path in probe.exists and not (os_family == "Altlinux" and path == "/usr/bin/pkg"):
            name = manager
    if os_family == "RedHat":
        name = _redhat_pkg_mgr(probe)
    elif os_family == "Debian":
        name = "apt"      # dnf or zypper installed on Debian does not make them its package manager
    elif os_family == "Altlinux" and name == "apt":
        name = "apt_rpm"
    if name == "apt" and probe.text("rpm_apt") == "yes":
        name = "apt_rpm"
    return {"pkg_mgr": name}


def _redhat_pkg_mgr(probe: Probe) -> str:
    if "/run/ostree-booted" in probe.exists:
        return "atomic_container"
    for path in ("/usr/bin/dnf", "/usr/bin/microdnf"):
        if path in probe.exists:
            return "dnf"   # Ansible says dnf5 when the binary resolves to /usr/bin/dnf5; the probe does not look
    return "unknown"


def ssh_pub_key_facts(probe: Probe) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for line in probe.lines("ssh_keys"):           # grep -H: /etc/ssh/ssh_host_<algo>_key.pub:<type> <key> ...
        path, _, content = line.partition(":")
        match = re.fullmatch(r"/etc/ssh/ssh_host_(dsa|rsa|ecdsa|ed25519)_key\.pub", path)
        words = content.split()
        if match and len(words) >= 2:
            facts[f"ssh_host_key_{match.group(1)}_public"] = words[1]
            facts[f"ssh_host_key_{match.group(1)}_public_keytype"] = words[0]
    return facts


def loadavg_facts(probe: Probe) -> dict[str, Any]:
    words = (probe.text("loadavg") or "").split()
    if len(words) < 3:
        return {}
    return {"loadavg": {"1m": float(words[0]), "5m": float(words[1]), "15m": float(words[2])}}


def iscsi_facts(probe: Probe) -> dict[str, Any]:
    match = re.search(r"^InitiatorName=(.*)$", probe.text("iscsi") or "", re.MULTILINE)
    return {"iscsi_iqn": match.group(1).strip() if match else ""}


def nvme_facts(probe: Probe) -> dict[str, Any]:
    lines = [line for line in probe.lines("hostnqn") if line.strip() and not line.startswith(("#", ";"))]
    return {"hostnqn": lines[0].strip() if lines else ""}


def fc_wwn_facts(probe: Probe) -> dict[str, Any]:
    return {"fibre_channel_wwn": [line.rstrip()[2:] for line in probe.lines("fc_wwn")]}

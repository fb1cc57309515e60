"""Ansible's distribution facts (distribution, _version, _major_version, _release, os_family, ...) from the
probe's copies of /etc/os-release and the other release files, after Ansible's Distribution collector.

Ansible first guesses with its bundled `distro` library (os-release, lsb_release, /etc/debian_version), then
walks a list of release files and lets the first one it can parse correct the guess. Both steps are here,
for the files a Linux guest has; the parsers of rarer ones (SUSE, CoreOS, Flatcar, Clear Linux) are not,
and such a guest gets the guess, with its os-release NAME as distribution.
"""
from __future__ import annotations

import re
import shlex
from typing import Any, Callable

from engine.build.ansible_facts_system import OS_FAMILY, STRIP_QUOTES, Probe

# Ansible's DistributionFiles.OSDIST_LIST: (path, name, allow_empty), tried in order.
OSDIST_LIST = (
    ("/etc/altlinux-release", "Altlinux", False), ("/etc/oracle-release", "OracleLinux", False),
    ("/etc/slackware-version", "Slackware", False), ("/etc/centos-release", "CentOS", False),
    ("/etc/redhat-release", "RedHat", False), ("/etc/vmware-release", "VMwareESX", True),
    ("/etc/openwrt_release", "OpenWrt", False), ("/etc/os-release", "Amazon", False),
    ("/etc/system-release", "Amazon", False), ("/etc/alpine-release", "Alpine", False),
    ("/etc/arch-release", "Archlinux", True), ("/etc/os-release", "Archlinux", False),
    ("/etc/os-release", "SUSE", False), ("/etc/SuSE-release", "SUSE", False),
    ("/etc/gentoo-release", "Gentoo", False), ("/etc/os-release", "Debian", False),
    ("/etc/lsb-release", "Debian", False), ("/etc/lsb-release", "Mandriva", False),
    ("/etc/sourcemage-release", "SMGL", False), ("/usr/lib/os-release", "ClearLinux", False),
    ("/etc/coreos/update.conf", "Coreos", False), ("/etc/os-release", "Flatcar", False),
    ("/etc/os-release", "NA", False),
)
SEARCH_STRING = {"OracleLinux": "Oracle Linux", "RedHat": "Red Hat", "Altlinux": "ALT",
                 "SMGL": "Source Mage GNU/Linux"}
OS_RELEASE_ALIAS = {"Archlinux": "Arch Linux"}
NORMALIZED_OS_ID = {"ol": "oracle", "opensuse-leap": "opensuse"}
NORMALIZED_LSB_ID = {"enterpriseenterpriseas": "oracle", "enterpriseenterpriseserver": "oracle",
                     "redhatenterpriseworkstation": "rhel", "redhatenterpriseserver": "rhel",
                     "redhatenterprisecomputenode": "rhel"}
RELEASE_REVERSED = re.compile(r"(?:[^)]*\)(.*)\()? *(?:STL )?([\d.+\-a-z]*\d) *(?:esaeler *)?(.+)")

Parsed = tuple[bool, dict[str, Any]]


def distribution_facts(probe: Probe) -> dict[str, Any]:
    if probe.uname().get("system") != "Linux":
        return {}
    facts = _guess(probe)
    for path, name, allow_empty in OSDIST_LIST:
        data = _dist_file(probe, path, allow_empty)
        if data is None:
            continue
        if allow_empty:
            facts.update(distribution=name, distribution_file_path=path, distribution_file_variety=name)
            break
        parsed, found = _parse_dist_file(name, data, path, facts, probe)
        if parsed:
            facts.update(distribution=name, distribution_file_path=path, distribution_file_variety=name,
                         distribution_file_parsed=True)
            facts.update(found)
            break
    facts["os_family"] = OS_FAMILY.get(facts["distribution"]) or facts["distribution"]
    return facts


def _dist_file(probe: Probe, path: str, allow_empty: bool) -> str | None:
    """The file as Ansible reads it: None when missing, or empty and not allowed to be."""
    text = probe.sections.get(f"dist:{path}", "").strip()
    if text:
        return text
    return "" if allow_empty and path in probe.exists else None


def os_release(probe: Probe, path: str = "/etc/os-release") -> dict[str, str]:
    """os-release as `distro` reads it: shell words KEY=value, keys lowercased."""
    info: dict[str, str] = {}
    try:
        words = shlex.split(probe.sections.get(f"dist:{path}", ""), comments=True)
    except ValueError:
        return info
    for word in words:
        key, sep, value = word.partition("=")
        if sep:
            info[key.lower()] = value
    if "version_codename" in info:
        info["codename"] = info["version_codename"]
    elif "ubuntu_codename" in info:
        info["codename"] = info["ubuntu_codename"]
    elif "version" in info:
        match = re.search(r"(\(\D+\))|,\s*(\D+)", info["version"])
        if match:
            info["codename"] = (match.group(1) or match.group(2)).strip("()").strip()
    return info


def lsb_release(probe: Probe) -> dict[str, str]:
    """`lsb_release -a` as `distro` reads it: {distributor_id, description, release, codename}."""
    info = {}
    for line in probe.lines("lsb_release"):
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip().lower().replace(" ", "_")] = value.strip()
    return info


def _release_content(line: str) -> dict[str, str]:
    match = RELEASE_REVERSED.match(line.strip()[::-1])
    if not match:
        return {}
    info = {"name": match.group(3)[::-1]}
    if match.group(2):
        info["version_id"] = match.group(2)[::-1]
    if match.group(1):
        info["codename"] = match.group(1)[::-1]
    return info


def _distro_id(osr: dict[str, str], lsb: dict[str, str]) -> str:
    if osr.get("id"):
        raw = osr["id"].lower().replace(" ", "_")
        return NORMALIZED_OS_ID.get(raw, raw)
    raw = lsb.get("distributor_id", "").lower().replace(" ", "_")
    return NORMALIZED_LSB_ID.get(raw, raw)


def _distro_version(probe: Probe, distro_id: str, osr: dict[str, str], lsb: dict[str, str]) -> str:
    versions = [osr.get("version_id", ""), lsb.get("release", ""),
                _release_content(osr.get("pretty_name", "")).get("version_id", ""),
                _release_content(lsb.get("description", "")).get("version_id", "")]
    if distro_id == "debian" or "debian" in osr.get("id_like", "").split():
        versions.append((probe.sections.get("dist:/etc/debian_version", "").split("\n") or [""])[0].rstrip())
    if distro_id not in ("centos", "debian"):
        return next((v for v in versions if v), "")
    best = ""
    for version in versions:       # the last of the most precise, as distro.version(best=True)
        if version.count(".") > best.count(".") or best == "":
            best = version
    return ".".join(best.split(".")[:2]) if distro_id == "centos" else best


def _codename(distro_id: str, osr: dict[str, str], lsb: dict[str, str]) -> str | None:
    codename = osr.get("version_codename") or osr.get("ubuntu_codename")
    if codename is None and distro_id == "ubuntu":
        codename = lsb.get("codename")
    if codename is None:
        codename = osr.get("codename") or lsb.get("codename") or None
    return codename


def _guess(probe: Probe) -> dict[str, Any]:
    osr, lsb = os_release(probe), lsb_release(probe)
    distro_id = _distro_id(osr, lsb)
    name = {"Amzn": "Amazon", "Rhel": "Redhat"}.get(distro_id.capitalize(), distro_id.capitalize()) or "OtherLinux"
    version = _distro_version(probe, distro_id, osr, lsb) or "NA"
    codename = _codename(distro_id, osr, lsb)
    return {"distribution": name, "distribution_version": version,
            "distribution_release": "NA" if codename is None else codename,
            "distribution_major_version": version.split(".")[0] or "NA"}


def _parse_dist_file(name: str, data: str, path: str, facts: dict[str, Any], probe: Probe) -> Parsed:
    data = data.strip(STRIP_QUOTES)
    if name in SEARCH_STRING:
        if SEARCH_STRING[name] in data:
            return True, {"distribution": name, "distribution_file_search_string": SEARCH_STRING[name]}
        return True, {"distribution": data.split()[0]}
    if name in OS_RELEASE_ALIAS:
        return (True, {"distribution": name}) if OS_RELEASE_ALIAS[name] in data else (False, {})
    parser = PARSERS.get(name)
    return parser(name, data, path, facts, probe) if parser else (False, {})


def _debian(name: str, data: str, path: str, facts: dict[str, Any], probe: Probe) -> Parsed:
    found: dict[str, Any] = {}
    if "Debian" in data or "Raspbian" in data:
        found["distribution"] = "Debian"
        release = re.search(r"PRETTY_NAME=[^(]+ \(?([^)]+?)\)", data)
        if release:
            found["distribution_release"] = release.group(1)
        for line in probe.lines("dist:/etc/debian_version"):
            match = re.search(r"(\d+)\.(\d+)", line.strip())
            if match:
                found["distribution_minor_version"] = match.group(2)
        return True, found
    simple = {"Ubuntu": "Ubuntu", "SteamOS": "SteamOS"}
    for marker, distribution in simple.items():
        if marker in data:
            return True, {"distribution": distribution}
    if path in ("/etc/lsb-release", "/etc/os-release") and ("Kali" in data or "Parrot" in data):
        found["distribution"] = "Kali" if "Kali" in data else "Parrot"
        release = re.search("DISTRIB_RELEASE=(.*)", data)
        if release:
            found["distribution_release"] = release.group(1)
        return True, found
    if "Devuan" in data:
        found["distribution"] = "Devuan"
        release = re.search(r"PRETTY_NAME=\"?[^(\"]+ \(?([^) \"]+)\)?", data)
        if release:
            found["distribution_release"] = release.group(1)
        version = re.search(r"VERSION_ID=\"(.*)\"", data)
        if version:
            found.update(distribution_version=version.group(1), distribution_major_version=version.group(1))
        return True, found
    return _debian_derivative(data)


def _debian_derivative(data: str) -> Parsed:
    found: dict[str, Any] = {}
    if "Mint" in data:
        found["distribution"] = "Linux Mint"
    elif "UOS" in data or "Uos" in data or "uos" in data:
        found["distribution"] = "Uos"
    elif "Deepin" in data or "deepin" in data:
        found["distribution"] = "Deepin"
    elif "LMDE" in data:
        return True, {"distribution": "Linux Mint Debian Edition"}
    else:
        return False, {}
    if found["distribution"] != "Linux Mint":
        release = re.search(r"VERSION_CODENAME=\"?([^\"]+)\"?", data)
        if release:
            found["distribution_release"] = release.group(1)
    version = re.search(r"VERSION_ID=\"(.*)\"", data)
    if version:
        found.update(distribution_version=version.group(1), distribution_major_version=version.group(1).split(".")[0])
    return True, found


def _amazon(name: str, data: str, path: str, facts: dict[str, Any], probe: Probe) -> Parsed:
    if "Amazon" not in data:
        return False, {}
    found: dict[str, Any] = {"distribution": "Amazon"}
    if path == "/etc/os-release":
        version = re.search(r"VERSION_ID=\"(.*)\"", data)
        if version:
            parts = version.group(1).split(".")
            found.update(distribution_version=version.group(1), distribution_major_version=parts[0],
                         distribution_minor_version=parts[1] if len(parts) > 1 else "NA")
    else:
        digits = [word for word in data.split() if word.isdigit()]
        found["distribution_version"] = digits[0] if digits else "NA"
    return True, found


def _alpine(name: str, data: str, path: str, facts: dict[str, Any], probe: Probe) -> Parsed:
    return True, {"distribution": "Alpine", "distribution_version": data}


def _slackware(name: str, data: str, path: str, facts: dict[str, Any], probe: Probe) -> Parsed:
    if "Slackware" not in data:
        return False, {}
    version = re.findall(r"\w+[.]\w+\+?", data)
    return True, {"distribution": name, **({"distribution_version": version[0]} if version else {})}


def _keyed_release(marker: str) -> Callable[..., Parsed]:
    """OpenWrt's and Mandriva's files: DISTRIB_RELEASE and DISTRIB_CODENAME in double quotes."""
    def parse(name: str, data: str, path: str, facts: dict[str, Any], probe: Probe) -> Parsed:
        if marker not in data:
            return False, {}
        found: dict[str, Any] = {"distribution": name}
        version = re.search('DISTRIB_RELEASE="(.*)"', data)
        if version:
            found["distribution_version"] = version.group(1)
        release = re.search('DISTRIB_CODENAME="(.*)"', data)
        if release:
            found["distribution_release"] = release.group(1)
        return True, found
    return parse


def _centos(name: str, data: str, path: str, facts: dict[str, Any], probe: Probe) -> Parsed:
    if "CentOS Stream" in data:
        return True, {"distribution_release": "Stream"}
    if "TencentOS Server" in data:
        return True, {"distribution": "TencentOS"}
    return False, {}


def _na(name: str, data: str, path: str, facts: dict[str, Any], probe: Probe) -> Parsed:
    found: dict[str, Any] = {}
    for line in data.splitlines():
        distribution = re.search("^NAME=(.*)", line)
        if distribution:
            found["distribution"] = distribution.group(1).strip('"')
        version = re.search("^VERSION=(.*)", line)
        if version and facts["distribution_version"] == "NA":
            found["distribution_version"] = version.group(1).strip('"')
    return True, found


PARSERS: dict[str, Callable[..., Parsed]] = {
    "Debian": _debian, "Amazon": _amazon, "Alpine": _alpine, "Slackware": _slackware,
    "OpenWrt": _keyed_release("OpenWrt"), "Mandriva": _keyed_release("Mandriva"), "CentOS": _centos, "NA": _na,
}

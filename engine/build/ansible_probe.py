"""The part of the connect-time probe that feeds Ansible's facts (engine.build.ansible_facts).

It runs in the same `sh -c` as recipe's own probe (engine.build.facts.GATHER), so
gathering stays one round trip. It prints sections, each `@@<name>` on a line of
its own followed by raw text (a file, a command's output); the Python side does
all the parsing, so the shell stays short and works with dash, busybox ash and
bash alike. Anything missing on the target (no `ip`, no `getent`, no /sys/class/dmi)
gives an empty section, which the parser turns into a missing key: never a failure.

The sections mirror what Ansible's fact collectors read
(ansible/module_utils/facts/): the same files, the same commands where they are cheap.
"""
from __future__ import annotations

MARK = "@@"

# Every interface file Ansible's LinuxNetwork reads.
NET_FILES = tuple(f"/sys/class/net/*/{name}" for name in
                  ("address", "mtu", "operstate", "type", "speed", "flags", "bonding/slaves", "bonding/mode",
                   "bonding/miimon", "bonding/lacp_rate", "bonding/primary", "bonding/all_slaves_active",
                   "bonding_slave/perm_hwaddr", "bridge/bridge_id", "bridge/stp_state"))

# Package managers Ansible's PkgMgrFactCollector looks for, in its order (the last one present wins).
PKG_MGR_PATHS = (
    ("/usr/bin/rpm-ostree", "atomic_container"), ("/usr/bin/yum", "dnf"), ("/usr/bin/dnf-3", "dnf"),
    ("/usr/bin/dnf5", "dnf5"), ("/usr/bin/apt-get", "apt"), ("/usr/bin/zypper", "zypper"),
    ("/usr/sbin/urpmi", "urpmi"), ("/usr/bin/pacman", "pacman"), ("/bin/opkg", "opkg"),
    ("/usr/pkg/bin/pkgin", "pkgin"), ("/opt/local/bin/pkgin", "pkgin"), ("/opt/tools/bin/pkgin", "pkgin"),
    ("/opt/local/bin/port", "macports"), ("/usr/local/bin/brew", "homebrew"), ("/opt/homebrew/bin/brew", "homebrew"),
    ("/sbin/apk", "apk"), ("/usr/sbin/pkg", "pkgng"), ("/usr/sbin/swlist", "swdepot"), ("/usr/bin/emerge", "portage"),
    ("/usr/sbin/pkgadd", "svr4pkg"), ("/usr/bin/pkg", "pkg5"), ("/usr/bin/xbps-install", "xbps"),
    ("/usr/local/sbin/pkg", "pkgng"), ("/usr/bin/swupd", "swupd"), ("/usr/sbin/sorcery", "sorcery"),
    ("/usr/bin/installp", "installp"),
)

# Paths whose mere existence some collector tests (virtual, service_mgr, apparmor, distribution, chroot).
EXISTS_PATHS = (
    "/sys/kernel/security/apparmor", "/proc/vz", "/proc/bc", "/proc/lve", "/.dockerenv", "/.dockerinit", "/proc/xen",
    "/dev/kvm", "/rhev", "/run/systemd/system/", "/dev/.run/systemd/", "/dev/.systemd/", "/etc/init/",
    "/sbin/openrc", "/etc/init.d/", "/etc/dinit.d/", "/sys/devices/virtual/dmi/id/product_name",
    "/run/ostree-booted", "/usr/bin/dnf", "/usr/bin/microdnf", "/sys/fs/selinux/enforce", "/etc/mtab",
    *(path for path, _ in PKG_MGR_PATHS),
)

# Distribution files Ansible's DistributionFiles reads (first line of the list that exists wins there).
DIST_FILES = ("/etc/os-release", "/etc/lsb-release", "/etc/debian_version", "/etc/altlinux-release",
              "/etc/oracle-release", "/etc/slackware-version", "/etc/centos-release", "/etc/redhat-release",
              "/etc/vmware-release", "/etc/openwrt_release", "/etc/system-release", "/etc/alpine-release",
              "/etc/arch-release", "/etc/SuSE-release", "/etc/gentoo-release", "/etc/sourcemage-release",
              "/usr/lib/os-release", "/etc/coreos/update.conf")

# Files read whole, as section name -> path (a section of that name holds the file's text).
FILES = {
    "resolv.conf": "/etc/resolv.conf", "meminfo": "/proc/meminfo", "cpuinfo": "/proc/cpuinfo",
    "cmdline": "/proc/cmdline", "uptime": "/proc/uptime", "loadavg": "/proc/loadavg",
    "fips": "/proc/sys/crypto/fips_enabled", "cgroup1": "/proc/1/cgroup", "systemd_container": "/run/systemd/container",
    "xen_capabilities": "/proc/xen/capabilities", "iscsi": "/etc/iscsi/initiatorname.iscsi",
    "hostnqn": "/etc/nvme/hostnqn", "selinux_config": "/etc/selinux/config",
    "selinux_policyvers": "/sys/fs/selinux/policyvers", "selinux_enforce": "/sys/fs/selinux/enforce",
    "dbus_machine_id": "/var/lib/dbus/machine-id", "etc_machine_id": "/etc/machine-id",
    "product_family": "/sys/devices/virtual/dmi/id/product_family", "proc1_comm": "/proc/1/comm",
    "proc_route": "/proc/net/route", "modules": "/proc/modules", "self_status": "/proc/self/status",
}

DMI_DIR = "/sys/devices/virtual/dmi/id"
DMI_FILES = ("bios_date", "bios_vendor", "bios_version", "board_asset_tag", "board_name", "board_serial",
             "board_vendor", "board_version", "chassis_asset_tag", "chassis_serial", "chassis_vendor",
             "chassis_version", "chassis_type", "product_name", "product_serial", "product_uuid", "product_version",
             "sys_vendor")

# What one `grep -sH '' FILE...` reads: every line as path:line, unreadable files silently left out.
# One process for some hundred files: forks are most of the probe's time.
GREPPED = (*DIST_FILES, *FILES.values(), *(f"{DMI_DIR}/{name}" for name in DMI_FILES), *NET_FILES,
           "/etc/ssh/ssh_host_*_key.pub", "/sys/class/fc_host/*/port_name")

# The environment first: the helpers below must not show in it (LC_ALL=C is ours, not the login's).
PROBE = r"""
printf '\n@@env\n'; export -p
s() { printf '\n@@%s\n' "$1"; }
has() { command -v "$1" >/dev/null 2>&1; }
LC_ALL=C; export LC_ALL
s uname; uname -snrm; uname -v
s longbit; getconf LONG_BIT 2>/dev/null
s nproc; nproc 2>/dev/null
d=$(date '+%Y|%m|%A|%w|%W|%d|%H|%M|%S|%s|%Z|%z|%N'); y=${d%%|*}
s date; echo "$d"
s tznames; for d in "$y-01-01" "$y-07-01"; do date -d "$d 12:00" '+%Z %z' 2>/dev/null; done
s files; grep -sH '' """ + " ".join(GREPPED) + r"""
s lsb_release; has lsb_release && lsb_release -a 2>/dev/null
s sbin_init; [ -L /sbin/init ] && readlink /sbin/init
s proc1_container; tr '\0' '\n' 2>/dev/null </proc/1/environ | grep 'container='
s exists; for p in """ + " ".join((*EXISTS_PATHS, *DIST_FILES)) + r"""; do [ -e "$p" ] && echo "$p"; done
s bins; for b in systemctl initctl ip getent findmnt lsblk; do has "$b" && echo "$b"; done
s python
for p in /usr/bin/python3 /usr/libexec/platform-python /usr/bin/python; do
  [ -x "$p" ] || continue
  "$p" -c 'import sys
print(sys.executable); print(*sys.version_info); print(sys.implementation.name)
try:
    import ssl; print(hasattr(ssl, "SSLContext"))
except ImportError:
    print(False)' 2>/dev/null
  break
done
u=${LOGNAME:-${USER:-${LNAME:-${USERNAME:-}}}}
[ -n "$u" ] || u=$(id -un 2>/dev/null)
s login; echo "$u"
s passwd
if has getent; then getent passwd "$u" || getent passwd "$(id -u)"
else grep "^$u:" /etc/passwd || awk -F: -v u="$(id -u)" '$3 == u' /etc/passwd; fi 2>/dev/null
s fqdn
if has getent; then
  a=$(getent ahosts "$(uname -n)" 2>/dev/null | awk 'NR == 1 { print $1 }')
  [ -n "$a" ] && getent hosts "$a"
fi
s chroot; echo "debian_chroot=${debian_chroot:-}"
stat -c '%d:%i' / /proc/1/root/. 2>/dev/null || { s rootfs; stat -f -c %T / 2>/dev/null; }
if has ip; then
  s route4; ip -4 route get 8.8.8.8 2>/dev/null
  s route6; ip -6 route get 2404:6800:400a:800::1012 2>/dev/null
  s addr_primary; ip addr show primary 2>/dev/null || ip addr show 2>/dev/null
  s addr_secondary; ip addr show secondary 2>/dev/null
  s local4; ip -4 route show table local 2>/dev/null
  s local6; ip -6 route show table local 2>/dev/null
fi
s netdirs; ls -f /sys/class/net 2>/dev/null || ls /sys/class/net 2>/dev/null
s netlinks
for d in /sys/class/net/*; do
  n=${d##*/}
  [ -e "$d/device" ] && echo "pciid $n $(readlink "$d/device")"
  [ -e "$d/device/driver/module" ] && echo "module $n $(readlink -f "$d/device/driver/module")"
  [ -e "$d/bridge" ] && echo "bridge $n" $(ls "$d/brif" 2>/dev/null)
  [ -e "$d/bonding" ] && echo "bonding $n"
  [ -e "$d/bonding_slave" ] && echo "bonding_slave $n"
done
mt=/proc/mounts; [ -e /etc/mtab ] && mt=/etc/mtab
s mtab; cat "$mt" 2>/dev/null
s statfs
while read -r dev mnt fs rest; do
  case $dev in /*|\\*|*:/*) ;; *) continue ;; esac
  [ "$fs" = none ] && continue
  m=$mnt
  case $m in *\\*) m=$(printf '%b' "$(printf '%s' "$m" | sed 's/\\\([0-7][0-7][0-7]\)/\\0\1/g')") ;; esac
  printf '%s %s\n' "$mnt" "$(stat -f -c '%S %s %b %a %c %d' "$m" 2>/dev/null)"
done <"$mt"
s findmnt; has findmnt && findmnt --list --noheadings --notruncate 2>/dev/null
s lsblk; has lsblk && lsblk --list --noheadings --paths --output NAME,UUID --exclude 2 2>/dev/null
s rpm_apt; [ -x /usr/bin/rpm ] && /usr/bin/rpm -q --whatprovides /usr/bin/apt-get >/dev/null 2>&1 && echo yes
s end
"""


def split_sections(text: str) -> dict[str, str]:
    """{section name: its raw text} from the probe's output; lines before the first section are left out."""
    sections: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.split("\n"):
        if line.startswith(MARK) and " " not in line:
            if name is not None:
                sections[name] = _trim("\n".join(lines))
            name, lines = line[len(MARK):], []
        elif name is not None:
            lines.append(line)
    if name is not None:
        sections[name] = _trim("\n".join(lines))
    sections.pop("end", None)
    return sections


def _trim(text: str) -> str:
    """The section without the blank line the next marker adds before itself."""
    return text[:-1] if text.endswith("\n") else text


def header(text: str) -> str:
    """What comes before the first section: recipe's own key=value lines."""
    head, _, _ = text.partition("\n" + MARK)
    return head

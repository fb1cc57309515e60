"""Ansible modules recipe does not run, named in content people bring: accepted by validate, refused if run.

A role written for many systems names modules for each (`pacman:` under `when: ansible_os_family ==
'Archlinux'`). Those tasks never run on a Debian build, so the role is valid; validate lists them as notes,
and a task that does reach one fails, pointing at the ansible_playbook task. A name that is neither a
module recipe has nor one of these (`cpoy:`) is still an error with a did-you-mean.
"""
from __future__ import annotations

import re

from engine.registry import TASK_MODULES

# ansible-core 2.19's modules, and the ones of ansible.posix and community.general roles use most.
ANSIBLE_MODULES = frozenset("""
add_host apt apt_key apt_repository assemble assert async_status blockinfile command copy cron deb822_repository
debconf debug dnf dnf5 dpkg_selections expect fail fetch file find gather_facts get_url getent git group group_by
hostname import_playbook import_role import_tasks include_role include_tasks include_vars iptables known_hosts
lineinfile meta mount_facts package package_facts pause ping pip raw reboot replace rpm_key script service
service_facts set_fact set_stats setup shell slurp stat subversion systemd systemd_service sysvinit tempfile template
unarchive uri user validate_argument_spec wait_for wait_for_connection yum yum_repository
acl at authorized_key firewalld mount patch seboolean selinux synchronize sysctl
alternatives apk archive capabilities cpanm cronvar crypttab filesystem flatpak flatpak_remote gem git_config
homebrew homebrew_cask homebrew_tap ini_file interfaces_file kernel_blacklist launchd locale_gen lvg lvol make
modprobe nmcli npm ohai open_iscsi openbsd_pkg opkg osx_defaults pacman pacman_key pam_limits pamd parted pear
pids pkg5 pkgin pkgng pkgutil portage portinstall puppet redhat_subscription rhsm_repository runit sefcontext
selogin seport snap solaris_zone sudoers svc swdepot sysrc timezone ufw urpmi xattr xfconf xml yarn zfs zypper
zypper_repository openssh_keypair openssl_privatekey x509_certificate docker_container docker_image
""".split())
FQCN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$")


def is_foreign_module(name: object) -> bool:
    """An Ansible module recipe does not have: a known module name, a Windows one, or any
    namespace.collection.module."""
    if not isinstance(name, str) or name in TASK_MODULES:
        return False
    return name in ANSIBLE_MODULES or name.startswith("win_") or bool(FQCN.match(name))


def foreign_hint(name: str) -> str:
    return (f"recipe does not run the Ansible module {name!r}: a task using it fails if it runs; run such "
            "content with the ansible_playbook task")


def foreign_lookup_hint(name: str) -> str:
    return (f"recipe does not have the lookup {name!r}: a task calling it fails if it runs; run such content "
            "with the ansible_playbook task")


__all__ = ["ANSIBLE_MODULES", "foreign_hint", "foreign_lookup_hint", "is_foreign_module"]

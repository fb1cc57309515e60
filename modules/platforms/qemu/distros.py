"""The distributions a bootstrap base can be made of: what debootstrap needs and what makes a cloud-style system."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Distro:
    name: str
    suite: str                     # the default suite
    mirror: str                    # the default mirror
    keyring: str
    packages: tuple[str, ...]      # what makes the tree a bootable cloud-style system
    components: tuple[str, ...] = ("main",)

    def sources(self, mirror: str, suite: str) -> str:
        """/etc/apt/sources.list for the guest."""
        components = " ".join(self.components)
        lines = [f"deb {mirror} {suite} {components}"]
        if suite not in ("sid", "unstable", "experimental"):
            lines.append(f"deb {mirror} {suite}-updates {components}")
            if re.match(r"https?://deb\.debian\.org/debian$", mirror):
                security = mirror.rsplit("/", 1)[0] + "/debian-security"
                lines.append(f"deb {security} {suite}-security {components}")
        return "\n".join(lines) + "\n"


DISTROS = {
    "debian": Distro(
        name="debian", suite="bookworm", mirror="http://deb.debian.org/debian",
        keyring="/usr/share/keyrings/debian-archive-keyring.gpg",
        packages=("linux-image-amd64", "initramfs-tools", "systemd-sysv", "udev", "openssh-server", "sudo",
                  "cloud-init", "cloud-guest-utils", "ifupdown", "isc-dhcp-client", "ca-certificates",
                  "e2fsprogs",
                  # GRUB's tools and images for BIOS and UEFI: the build makes the boot images with them, and
                  # update-grub (grub2-common's kernel hook) keeps grub.cfg current in the guest
                  "grub2-common", "grub-pc-bin", "grub-efi-amd64-bin",
                  # logind and hostnamectl/timedatectl need the system bus (debootstrap takes no Recommends)
                  "dbus", "libpam-systemd",
                  # debootstrap does not resolve virtual packages: python3-cryptography (cloud-init)
                  # needs python3-cffi-backend-api-*, which only this package provides
                  "python3-cffi-backend")),
}

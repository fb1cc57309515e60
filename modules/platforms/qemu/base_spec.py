"""What a qemu source's `base:` is, once validated: frozen descriptions, and a base resolved to a file."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.units import parse_size
from modules.platforms.qemu.distros import DISTROS


@dataclass(frozen=True)
class UrlBase:
    url: str
    checksum: str
    format: str | None = None


@dataclass(frozen=True)
class PathBase:
    path: Path
    format: str | None = None


@dataclass(frozen=True)
class BootstrapBase:
    distro: str = "debian"
    suite: str = "bookworm"
    packages: tuple[str, ...] = ()
    mirror: str = DISTROS["debian"].mirror
    size: str | None = None     # the base image's size; None: as small as its system allows

    @property
    def size_bytes(self) -> int:
        return parse_size(self.size) if self.size else 0


@dataclass(frozen=True)
class Netboot:
    """PXE through QEMU's own TFTP server: the folder it serves, and the file the firmware boots."""

    tftp_dir: Path
    bootfile: str = "pxelinux.0"


@dataclass(frozen=True)
class InstallerBase:
    """An OS installer run once into an empty disk, as Packer's iso_url + boot_command + http_directory: the
    installed disk is the base. Exactly one of iso, kernel (with initrd and append) or netboot boots it."""

    iso: UrlBase | PathBase | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    netboot: Netboot | None = None
    boot_command: tuple[str, ...] = ()
    boot_wait: float = 10.0              # seconds after QEMU starts, before the first key (Packer's default)
    boot_key_interval: float = 0.1       # seconds between keys (Packer's default for QEMU is 100ms)
    http_directory: Path | None = None
    http_content: tuple[tuple[str, str], ...] = ()   # (URL path, text), as Packer's http_content
    install_timeout: float = 3600.0
    size: str = "8G"                     # the disk the installer installs onto

    @property
    def size_bytes(self) -> int:
        return parse_size(self.size)


Base = UrlBase | PathBase | BootstrapBase | InstallerBase


@dataclass(frozen=True)
class ResolvedBase:
    """A base image on disk, to be used read-only (as a backing file)."""

    path: Path
    format: str
    virtual_size: int | None = field(default=None, compare=False)
    login: BaseLogin | None = None     # an installed base: how recipe logs in to it (no cloud-init)


@dataclass(frozen=True)
class BaseLogin:
    """How recipe logs in to an installed base: the key it authorized at the first login, and the host key it
    found there (trusted on first use), kept beside the cached image."""

    private_key: Path
    host_key: str


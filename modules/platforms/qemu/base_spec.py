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


Base = UrlBase | PathBase | BootstrapBase


@dataclass(frozen=True)
class ResolvedBase:
    """A base image on disk, to be used read-only (as a backing file)."""

    path: Path
    format: str
    virtual_size: int | None = field(default=None, compare=False)


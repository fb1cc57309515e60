"""What a qemu source's `base:` is, once validated: frozen descriptions, and a base resolved to a file."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def parse_size(value: Any) -> int:
    """Bytes of `4G`, `512M`, `1.5G`, `4GiB`, `1T` or a plain number of bytes (ValueError otherwise); units are
    binary, as qemu-img takes them."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        number, unit = value, ""
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(value), re.IGNORECASE)
        if not match:
            raise ValueError(f"{value!r} is not a size")
        number, unit = float(match.group(1)), match.group(2).upper()
    return int(number * (1 << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[unit]))

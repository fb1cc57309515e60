"""A qemu source's options, validated and frozen: what every step of a qemu build reads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QemuConfig:
    base: Any
    cpus: int = 2
    memory: int = 1024
    disk_size: str | None = None
    firmware: str = "bios"
    accelerator: str = "auto"
    qemu_args: tuple[str, ...] = ()
    shutdown_timeout: float = 120.0
    hostname: str | None = None

"""Fixtures shared by the integration tests that boot real VMs."""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time

import pytest

from modules.platforms.qemu.base import BootstrapBase, ResolvedBase, default_cache_dir, resolve_base
from modules.platforms.qemu.bootstrap import image_path


@pytest.fixture(scope="session")
def bootstrap_base() -> ResolvedBase:
    """The default bootstrap base (Debian bookworm, 4G), built once into the real cache dir and reused.

    The first run on a machine takes a few minutes (debootstrap from deb.debian.org); later runs,
    and every test of the session, find the image in <cache>/images/. Never write to it: boot an
    overlay (qemu-img create -f qcow2 -F qcow2 -b <path> overlay.qcow2).
    """
    if not image_path(BootstrapBase(), default_cache_dir()).is_file():
        if os.geteuid() != 0:
            pytest.skip("building a bootstrap base needs root (debootstrap)")
        if not shutil.which("debootstrap", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            pytest.skip("debootstrap is not installed")
    tail: list[str] = []
    built = []

    def log(line: str) -> None:
        if line.startswith("bootstrap: debootstrap"):
            built.append(line)
        tail.append(line)
        del tail[:-200]

    started = time.monotonic()
    try:
        resolved = asyncio.run(resolve_base(BootstrapBase(), default_cache_dir(), log=log))
    except BaseException:
        sys.stderr.write("\n".join(tail) + "\n")
        raise
    took = time.monotonic() - started
    sys.stderr.write(f"\nbootstrap base {resolved.path}: {'built in %.0f s' % took if built else 'cached'}\n")
    return resolved

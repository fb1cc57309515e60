"""What a build needs of a worker, what a worker offers, and the Celery queues that route one to the other.

A label is a word: a platform (`qemu`, `ssh`, `amazon`, `vagrant`), `kvm` (KVM that really runs guests, probed as
the qemu platform probes it), the machine's architecture (`x86_64`), or anything a person gives `--labels`.
A build needs its platform, and `kvm` plus the architecture when its source asks for `accelerator: kvm`.

Celery routes by queue, so every set of labels a build can need is a queue (`recipe.kvm+qemu+x86_64`), and a
worker consumes the queue of every set its labels cover. A build's queue is then read only by workers that
have everything it needs, and a build whose worker dies goes back to a queue the others read.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import platform as host
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from engine.accelerator import choose_accelerator
from engine.recipe.model import Build
from engine.registry import PLATFORMS

QUEUE_PREFIX = "recipe."
MAX_NEEDS = 3            # platform, kvm, architecture: a worker consumes every set of its labels up to this size


def build_needs(build: Build) -> frozenset[str]:
    needs = {build.source.platform}
    if getattr(build.source.config, "accelerator", None) == "kvm":
        needs |= {"kvm", host_arch()}
    return frozenset(needs)


def queue_name(labels: Iterable[str]) -> str:
    return QUEUE_PREFIX + "+".join(sorted(labels))


def queues_for(labels: Iterable[str]) -> list[str]:
    """Every queue a worker with these labels serves: one per non-empty set of at most MAX_NEEDS of them."""
    offered = sorted(set(labels))
    return [queue_name(chosen) for size in range(1, min(MAX_NEEDS, len(offered)) + 1)
            for chosen in itertools.combinations(offered, size)]


def host_arch() -> str:
    return host.machine() or "unknown"


def usable_platforms() -> list[str]:
    """The registered platforms whose programs are all installed here."""
    return sorted(name for name in PLATFORMS.names()
                  if all(shutil.which(tool) for tool in PLATFORMS.get(name).host_tools))


def detect_labels(remembered: Path | None = None) -> frozenset[str]:
    """What this host offers: its architecture, its usable platforms, and kvm if KVM really runs a guest here."""
    labels = {host_arch(), *usable_platforms()}
    if "qemu" in labels and asyncio.run(choose_accelerator("auto", remembered=remembered)) == "kvm":
        labels.add("kvm")
    return frozenset(labels)


@dataclass(frozen=True)
class Capacity:
    """What one build takes on a worker by default: the platforms' default VM (2 vCPUs, 1 GiB) under TCG keeps
    about a core busy, QEMU adds its own memory, and a disk with its cache layers and exports wants room."""

    cores: float = 1.0
    memory: int = 1536 << 20
    disk: int = 10 << 30


def default_slots(folder: Path, per_build: Capacity = Capacity()) -> int:
    """Builds at once that this host's cores, memory and free disk (where builds write) allow; at least one."""
    cores = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    return max(1, min(int(cores / per_build.cores), memory // per_build.memory, free // per_build.disk))

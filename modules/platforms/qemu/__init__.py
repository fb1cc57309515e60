"""The qemu platform: boot a temporary VM from a base image, provision it, shut it down, export it.

  sources:
    local:
      platform: qemu
      base: {bootstrap: {distro: debian, suite: bookworm}}   # or {url:, checksum:}, {path:} or {installer: ...}
      cpus: 2
      memory: 1024
      disk_size: 4G               # a bootstrap base is grown to it (4G without it); at least 2G
      firmware: bios              # or uefi (OVMF)
      accelerator: auto           # kvm only when a probe guest really runs under it
      ssh: {user: debian}
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.build.platform import Platform
from engine.build.runner import Step
from engine.build.steps import GatherFacts, MakeWorkDir, Provision
from engine.recipe.model import Build, Recipe
from engine.recipe.schema import HintedInvalid, positive_number
from modules.platforms.qemu.base import BASE_SCHEMA, parse_base
from engine.units import parse_size
from modules.platforms.qemu.bootstrap import MIN_DISK_SIZE
from modules.platforms.qemu.config import QemuConfig
from modules.platforms.qemu.install_http import GUEST_HOST_ADDRESS, HTTP_PORT
from modules.platforms.qemu.layer_steps import FirstLayer, PlanLayers, RotateKeys, UseNewKeys
from modules.platforms.qemu.steps import (Boot, ConnectVm, CreateDisk, Export, PrepareBase, RunVerify, Shutdown,
                                          VerifyDisk, VmRun)

SIZE = re.compile(r"^\d+(\.\d+)?[KMGT]?$")


def disk_size(value: Any) -> str:
    if isinstance(value, str) and SIZE.match(value):
        return value
    raise HintedInvalid(f"{value!r} is not a disk size", hint='e.g. disk_size: 4G (K, M, G or T)')


class QemuPlatform(Platform, name="qemu"):
    description = "a local QEMU VM from a cloud image or a debootstrap base; exports qcow2, raw, ..."
    host_tools = ("qemu-system-x86_64", "qemu-img")
    schema = {
        vol.Required("base"): BASE_SCHEMA,
        vol.Optional("cpus", default=2): vol.All(int, vol.Range(min=1, max=64)),
        vol.Optional("memory", default=1024): vol.All(int, vol.Range(min=128)),
        vol.Optional("disk_size", default=None): vol.Any(None, disk_size),
        vol.Optional("firmware", default="bios"): vol.In(["bios", "uefi"]),
        vol.Optional("accelerator", default="auto"): vol.In(["auto", "kvm", "tcg"]),
        vol.Optional("qemu_args", default=[]): [str],
        vol.Optional("shutdown_timeout", default=120.0): positive_number,
        vol.Optional("hostname", default=None): vol.Any(None, str),
    }
    Config = QemuConfig
    # an installer base's boot_command and answer files name the HTTP server: {{ http_ip }}:{{ http_port }}
    template_vars = {"http_ip": GUEST_HOST_ADDRESS, "http_port": HTTP_PORT}

    @classmethod
    def check(cls, validated: dict[str, Any]) -> dict[str, Any]:
        """What validate can know of disk_size on a bootstrap base: not below the base's own size, nor below
        the size no Debian system fits in (the size of the built base itself is known only once it is built)."""
        installer = (validated.get("base") or {}).get("installer")
        ssh = validated.get("ssh") or {}
        if installer is not None and not (ssh.get("password") or ssh.get("private_key_file")):
            raise HintedInvalid("an installer base needs ssh.password (or ssh.private_key_file) for the first "
                                "login to the installed system", path=["ssh"], at_key="ssh" in validated,
                                hint="e.g. ssh: {user: debian, password: '{{ installer_password }}'}, the user and "
                                     "password the answer file sets up")
        bootstrap = (validated.get("base") or {}).get("bootstrap")
        wanted = validated.get("disk_size")
        if bootstrap is None or not wanted:
            return validated
        size = parse_size(wanted)
        if bootstrap.get("size") and size < parse_size(bootstrap["size"]):
            raise HintedInvalid(f"disk_size {wanted} is smaller than the bootstrap base's size {bootstrap['size']}",
                                path=["disk_size"], hint=f"use disk_size: {bootstrap['size']} or more, or drop "
                                                         "the base's size (it is then as small as its system)")
        if size < MIN_DISK_SIZE:
            raise HintedInvalid(f"disk_size {wanted} is too small for a Debian system", path=["disk_size"],
                                hint=f"use disk_size: {MIN_DISK_SIZE >> 30}G or more")
        return validated

    @classmethod
    def configure(cls, validated: dict[str, Any], base_dir: Path) -> QemuConfig:
        return QemuConfig(**{**validated, "base": parse_base(validated["base"], base_dir),
                             "qemu_args": tuple(validated["qemu_args"])})

    def steps(self, recipe: Recipe, build: Build) -> list[Step]:
        run = VmRun(build=build, config=build.source.config)
        boot = Boot(run)
        rotate = RotateKeys(run, boot)
        steps: list[Step] = [MakeWorkDir(), PrepareBase(run), PlanLayers(run), CreateDisk(run), boot,
                             ConnectVm(run, boot), rotate, FirstLayer(run), GatherFacts(), UseNewKeys(rotate),
                             Provision(), Shutdown(run), Export(run)]
        if recipe.verify:
            verify_boot = Boot(run, boot_name="verify", name="boot the image to verify it")
            steps += [VerifyDisk(run, verify_boot), verify_boot, ConnectVm(run, verify_boot), GatherFacts(),
                      RunVerify(), Shutdown(run)]
        return steps

"""Which ansible-playbook the `ansible_playbook` task runs, installing ansible-core when asked.

Looked for in order: PATH, then beside the Python running recipe (a venv with both installed), then recipe's
own install under the cache (`<cache>/ansible/core-<version>`). With `install: true` or an `ansible_version`
that none of them has, ansible-core is installed there with pip, once, under a lock, and the task says so.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.errors import BuildError
from engine.local_cache import default_cache_dir, file_lock
from engine.process import run_tool

VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")     # what ansible_version takes: 2.17 or 2.17.3
COMPLETE = ".complete"                         # written last: a venv without it was cut short, and is made again


@dataclass(frozen=True)
class AnsibleTool:
    playbook: Path          # the ansible-playbook executable
    version: str            # ansible-core's, as `--version` says it
    installed_now: bool = False

    @property
    def galaxy(self) -> Path:
        return self.playbook.with_name("ansible-galaxy")


def wanted(version: str | None, found: str) -> bool:
    """Whether ansible-core `found` is what `version` asks for: any, the same release, or that series."""
    return version is None or found == version or found.startswith(version + ".")


async def core_version(playbook: Path) -> str:
    output = await run_tool(playbook, "--version", what=f"{playbook} --version")
    match = re.search(r"\[core ([0-9][^\]]*)\]", output) or re.search(r"ansible-playbook ([0-9][\w.]*)", output)
    if not match:
        raise BuildError(f"{playbook} --version did not say which ansible-core it is: {output.strip()[:200]}")
    return match.group(1)


def candidates(cache: Path, version: str | None) -> list[Path]:
    found = [shutil.which("ansible-playbook"), Path(sys.executable).parent / "ansible-playbook",
             venv_dir(cache, version) / "bin" / "ansible-playbook"]
    paths = [Path(p) for p in found if p and os.access(p, os.X_OK)]
    return list(dict.fromkeys(paths))


def venv_dir(cache: Path, version: str | None) -> Path:
    return cache / "ansible" / f"core-{version or 'latest'}"


async def find_ansible(version: str | None, install: bool, log: Callable[[str], None],
                       cache: Path | None = None) -> AnsibleTool:
    cache = cache or default_cache_dir()
    seen = []
    for playbook in candidates(cache, version):
        found = await core_version(playbook)
        if wanted(version, found):
            return AnsibleTool(playbook, found)
        seen.append(f"{playbook} is ansible-core {found}")
    if not (install or version):
        raise BuildError("ansible-playbook is not installed on this host (not on PATH, nor beside recipe)",
                         hint="install ansible-core (pip install ansible-core), or set install: true and recipe "
                              f"installs it under {venv_dir(cache, None)}")
    return await install_ansible(cache, version, log, seen)


async def install_ansible(cache: Path, version: str | None, log: Callable[[str], None],
                          seen: list[str]) -> AnsibleTool:
    target = venv_dir(cache, version)
    requirement = f"ansible-core=={version}" if version and version.count(".") == 2 else \
        f"ansible-core=={version}.*" if version else "ansible-core"
    async with file_lock(target.with_name(target.name + ".lock"), f"installing {requirement}", log):
        playbook = target / "bin" / "ansible-playbook"
        if not (target / COMPLETE).is_file():
            reason = "; ".join(seen) if seen else "ansible-playbook is not on PATH"
            log(f"installing {requirement} into {target} ({reason})")
            await asyncio.to_thread(shutil.rmtree, target, True)
            await run_tool(sys.executable, "-m", "venv", target, what=f"making a venv in {target}")
            await run_tool(target / "bin" / "pip", "install", "-q", requirement, what=f"pip install {requirement}",
                           hint="the host needs to reach the Python package index, or install ansible-core yourself")
            (target / COMPLETE).write_text(requirement + "\n")
            return AnsibleTool(playbook, await core_version(playbook), installed_now=True)
    return AnsibleTool(playbook, await core_version(playbook))

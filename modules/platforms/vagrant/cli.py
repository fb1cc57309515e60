"""The vagrant command of one build: its project folder (the Vagrantfile, .vagrant/) and its VAGRANT_HOME.

Quick questions (plugins, boxes, status, ssh-config) go through python-vagrant, in a thread. The long
commands (box add, up, halt, destroy) run here as asyncio subprocesses, because python-vagrant's calls block
until vagrant ends: a Ctrl-C during a ten-minute `vagrant up` must stop it, a `vagrant halt` that hangs must
give up after its timeout. Their output lines are passed on as they come (a build's step status, build.log).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import vagrant

from engine.errors import BuildError

STOP_GRACE = 10.0          # seconds vagrant gets to stop on SIGTERM (it cleans up what it was making) before SIGKILL
TAIL_LINES = 25
PROGRESS = re.compile(r"Progress: (\d+)%")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")     # VAGRANT_NO_COLOR still leaves erase-line codes
INSTALL_HINT = "install Vagrant (Debian: apt-get install vagrant vagrant-libvirt)"
PLUGINS = {"libvirt": "vagrant-libvirt", "vmware_desktop": "vagrant-vmware-desktop"}   # virtualbox is built in


def executable() -> str:
    path = vagrant.get_vagrant_executable()
    if not path:
        raise BuildError("the vagrant command is not installed", hint=INSTALL_HINT)
    return path


@dataclass
class VagrantCli:
    project: Path                                 # holds the Vagrantfile; vagrant keeps its state in .vagrant/
    home: Path                                    # VAGRANT_HOME: boxes, the insecure key, plugin data
    on_line: Callable[[str], None] = lambda line: None
    on_progress: Callable[[str, int], None] = lambda what, percent: None
    tail: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "VAGRANT_HOME": str(self.home), "VAGRANT_CHECKPOINT_DISABLE": "1",
               "VAGRANT_NO_COLOR": "1"}
        for name in ("VAGRANT_CWD", "VAGRANT_DOTFILE_PATH", "VAGRANT_VAGRANTFILE"):   # ours is in project/
            env.pop(name, None)
        return env

    def library(self) -> vagrant.Vagrant:
        """python-vagrant on this project; a failing command's stderr is kept for the error message."""
        return vagrant.Vagrant(root=str(self.project), env=self.env(),
                               err_cm=lambda: contextlib.nullcontext(subprocess.PIPE))

    async def ask(self, what: str, call: Callable[[vagrant.Vagrant], Any], hint: str = "") -> Any:
        """A quick python-vagrant call, in a thread."""
        executable()
        try:
            return await asyncio.to_thread(call, self.library())
        except subprocess.CalledProcessError as exc:
            said = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            raise BuildError(f"vagrant {what} failed (exit {exc.returncode}): {said.strip()[-600:]}",
                             hint=hint) from None

    async def run(self, *args: str, what: str, timeout: float | None = None, hint: str = "") -> str:
        """vagrant with args in the project, to its end; its output. Stopped (SIGTERM, then SIGKILL to its
        process group) when cancelled or after timeout seconds, which is an error."""
        process = await asyncio.create_subprocess_exec(
            executable(), *args, cwd=self.project, env=self.env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        lines: list[str] = []
        try:
            await asyncio.wait_for(self._read(process, what, lines), timeout)
            await process.wait()
        except asyncio.TimeoutError:
            await stop(process)
            raise BuildError(f"vagrant {what} did not finish within {timeout:g}s; its last lines:\n"
                             + "\n".join(lines[-TAIL_LINES:]), hint=hint) from None
        finally:
            if process.returncode is None:        # cancelled (Ctrl-C): vagrant must not go on by itself
                await asyncio.shield(stop(process))
        if process.returncode != 0:
            raise BuildError(f"vagrant {what} failed (exit {process.returncode}); its last lines:\n"
                             + "\n".join(lines[-TAIL_LINES:]), hint=hint)
        return "\n".join(lines)

    async def _read(self, process: asyncio.subprocess.Process, what: str, lines: list[str]) -> None:
        """Lines as they come; a progress bar's carriage returns end lines too (and are not kept)."""
        assert process.stdout is not None
        pending = ""
        while True:
            chunk = await process.stdout.read(8192)
            if not chunk:
                break
            pending += chunk.decode(errors="replace")
            *complete, pending = re.split(r"[\r\n]", pending)
            for line in complete:
                self._line(line, what, lines)
        self._line(pending, what, lines)

    def _line(self, line: str, what: str, lines: list[str]) -> None:
        line = ANSI.sub("", line).rstrip()
        if not line.strip():
            return
        progress = PROGRESS.search(line)
        if progress:
            self.on_progress(what, int(progress.group(1)))
            return
        lines.append(line)
        del lines[:-200]
        self.on_line(line)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to vagrant's process group, then SIGKILL after STOP_GRACE."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), wait)
            return
        except asyncio.TimeoutError:
            continue

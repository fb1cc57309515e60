"""What the Vagrant tests share: names, the tools they need, the vagrant command."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.libvirt import tool

PREFIX = "recipe-test-vagrant-"
POOL = PREFIX + "pool"
NETWORK = PREFIX + "net"
SUBNET = "192.168.123.0/24"
POOL_DIR = Path("/var/lib/libvirt/images") / POOL
# the guest's serial console, for the error message of a boot that never reaches SSH; QEMU opens it as
# libvirt-qemu, which cannot enter pytest's temporary directories
CONSOLE_LOG = Path("/var/log/libvirt/qemu") / f"{PREFIX}default-console.log"
QEMU_LOG = Path("/var/log/libvirt/qemu") / f"{PREFIX}default.log"     # libvirt's log of the domain's QEMU
TOOLS = ("vagrant", "virsh", "libvirtd", "virtlogd", "dnsmasq", "iptables", "qemu-img", "qemu-system-x86_64")
DEBS_HINT = "`make deps` installs vagrant, vagrant-libvirt, libvirt-daemon-system, libvirt-clients, dnsmasq-base"


def report(request, line: str) -> None:
    """A line on the terminal now, whatever pytest captures (timings, what a killed run left behind)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        sys.stderr.write(line + "\n")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def require_tools() -> None:
    missing = [name for name in TOOLS if shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} ({DEBS_HINT})", pytrace=False)


@dataclass(frozen=True)
class Ran:
    """A finished vagrant command: its exit status and its output lines, each with when it came (s)."""

    returncode: int
    lines: list[tuple[float, str]]
    err_lines: list[tuple[float, str]]

    @property
    def stdout(self) -> str:
        return "".join(line + "\n" for _, line in self.lines if "Progress:" not in line)

    @property
    def stderr(self) -> str:
        return "".join(line + "\n" for _, line in self.err_lines)

    def first(self, text: str) -> float | None:
        """When the first stdout line holding text came."""
        return next((at for at, line in self.lines if text in line), None)


@dataclass
class Vagrant:
    """The vagrant command with VAGRANT_HOME in a temporary directory; a project directory per test."""

    home: Path
    env: dict[str, str]
    logs: Path
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 900, check: bool = True,
            what: str | None = None) -> "Ran":
        """vagrant with args, each output line stamped with the seconds since the start; a failure or a
        timeout (which kills vagrant and its children) quotes the output and the guest's console."""
        started = time.monotonic()
        process = subprocess.Popen([tool("vagrant"), *args], cwd=cwd or self.home, env=self.env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, errors="replace", start_new_session=True)
        streams: dict[str, list[tuple[float, str]]] = {"stdout": [], "stderr": []}

        def read(name: str) -> None:
            for line in getattr(process, name):   # universal newlines: a progress bar's \r ends a line too
                streams[name].append((time.monotonic() - started, line.rstrip("\n")))

        readers = [threading.Thread(target=read, args=(name,), daemon=True) for name in streams]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for reader in readers:
            reader.join(10)
        took = time.monotonic() - started
        ran = Ran(process.returncode, streams["stdout"], streams["stderr"])
        if what:
            self.timings[what] = took
        with open(self.logs / "vagrant.log", "a") as log:
            log.write(f"$ vagrant {' '.join(args)}  ({took:.1f} s, exit {ran.returncode})\n")
            log.writelines(f"{at:7.1f} {line}\n" for at, line in ran.lines + ran.err_lines
                           if "Progress:" not in line)
        command = f"vagrant {' '.join(args)} (in {cwd or self.home})"
        if timed_out:
            pytest.fail(f"{command} did not end within {timeout:.0f} s:\n{ran.stdout[-3000:]}\n"
                        f"{ran.stderr[-3000:]}{console_tail()}", pytrace=False)
        if check and ran.returncode != 0:
            pytest.fail(f"{command} failed ({ran.returncode}):\n{ran.stdout[-3000:]}\n"
                        f"{ran.stderr[-3000:]}{console_tail()}", pytrace=False)
        return ran

    def boxes(self) -> set[tuple[str, str, str]]:
        """`vagrant box list`, as (name, provider, version)."""
        found, current = set(), {}
        for line in self.run("box", "list", "--machine-readable").stdout.splitlines():
            parts = line.split(",", 3)
            if len(parts) == 4 and parts[2] in ("box-name", "box-provider", "box-version"):
                current[parts[2]] = parts[3]
                if parts[2] == "box-version":
                    found.add((current.get("box-name"), current.get("box-provider"), parts[3]))
        return found


def console_tail(lines: int = 30) -> str:
    """The end of the guest's serial console and of libvirt's QEMU log, for an error message."""
    text = ""
    for what, path in (("QEMU log", QEMU_LOG), ("guest console", CONSOLE_LOG)):
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            text += f"\n--- {what} ({path}), last {len(tail)} lines:\n" + "\n".join(tail)
    return text

"""Real `recipe worker` processes on a real redis-server, for the cluster tests and bench/cluster.py.

Each worker runs in a session of its own (so a test can SIGKILL its whole process group, as a lost host
would be), with its log in a file the test reads.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECIPE = str(Path(sys.executable).parent / "recipe")


@dataclass
class Worker:
    name: str
    labels: str
    output: Path | None           # a folder store; None with --store s3://... in extra
    log_path: Path
    broker: str
    extra: tuple[str, ...] = ()
    tmp: Path | None = None       # its TMPDIR: claims and work dirs of its own, that no other run sweeps
    process: subprocess.Popen | None = field(default=None, repr=False)
    _since: int = 0               # where this start's lines begin in the log

    def start(self, wait: bool = True) -> "Worker":
        command = [RECIPE, "worker", "--name", self.name, "--labels", self.labels, "--slots", "1",
                   *(["--output", str(self.output)] if self.output else []), *self.extra]
        self._since = self.log_path.stat().st_size if self.log_path.exists() else 0   # a restart: its own lines
        log = open(self.log_path, "ab")
        env = {**os.environ, "RECIPE_BROKER": self.broker}
        if self.tmp is not None:
            self.tmp.mkdir(parents=True, exist_ok=True)
            env["TMPDIR"] = str(self.tmp)
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env=env)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.endswith(" ready.") and self.name in line
                      for line in self.log()[self._since:].splitlines()):
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL of the worker and its pool processes: a host lost."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:          # its pool processes too: their locks go when they are gone
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def stop(self, timeout: float = 60) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def json_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            break                     # the line being written
    return events


def wait_for(condition, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def ssh_recipe(name: str, sshd: Any, tasks: str, extra: str = "") -> str:
    ssh = {"host": sshd.host, "port": sshd.port, "user": sshd.user, "private_key_file": str(sshd.client_key),
           "host_key": sshd.host_public_key}
    return f"name: {name}\nsources:\n  box:\n    platform: ssh\n    ssh: {json.dumps(ssh)}\n{extra}tasks:\n{tasks}"

"""Helpers the tests' servers and polls share."""
from __future__ import annotations

import socket
import subprocess
import time
from typing import Callable


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1, for a test's own server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def terminate(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(check: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """True once check() is, False if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True

"""A real redis-server on 127.0.0.1 (a random port), the cluster tests' broker.

Started from Debian's redis-server (the Makefile's TEST_DEBS) with its data in a
temporary folder and an append-only file, so a test can stop it and start it
again on the same port with its queues intact (a broker outage).
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    port: int
    folder: Path
    password: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs Debian's redis-server")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                   "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                   "--logfile", str(self.folder / "redis.log")]
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.folder / "redis.log"
                    raise RuntimeError("redis-server did not start: "
                                       + (log.read_text()[-2000:] if log.exists() else "no log")) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def flush(self) -> None:
        import redis
        redis.Redis.from_url(self.url).flushall()


@contextlib.contextmanager
def redis_server(password: str | None = None) -> Iterator[RedisServer]:
    folder = Path(tempfile.mkdtemp(prefix="recipe-redis-"))
    server = RedisServer(_free_port(), folder, password)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)

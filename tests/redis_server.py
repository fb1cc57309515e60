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

from tests.processes import free_port, terminate


@dataclass
class RedisServer:
    port: int
    folder: Path
    password: str | None = None
    tls: bool = False             # TLS only (no plain port), with a certificate of its own CA: self.folder/ca.pem
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.folder / 'ca.pem'}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _tls_options(self) -> list[str]:
        if not (self.folder / "ca.pem").exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-keyout", str(self.folder / "key.pem"), "-out", str(self.folder / "ca.pem"),
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True)
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.folder / "ca.pem"),
                "--tls-key-file", str(self.folder / "key.pem"), "--tls-ca-cert-file", str(self.folder / "ca.pem"),
                "--tls-auth-clients", "no"]

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs Debian's redis-server")
        ports = self._tls_options() if self.tls else ["--port", str(self.port)]
        command = [binary, *ports, "--bind", "127.0.0.1", "--dir", str(self.folder),
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
        if self.process is not None:
            terminate(self.process)
        self.process = None

    def flush(self) -> None:
        import redis
        redis.Redis.from_url(self.url).flushall()


@contextlib.contextmanager
def redis_server(password: str | None = None, tls: bool = False) -> Iterator[RedisServer]:
    folder = Path(tempfile.mkdtemp(prefix="recipe-redis-"))
    server = RedisServer(free_port(), folder, password, tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)

"""moto's server on 127.0.0.1 (EC2, S3, EBS direct over real HTTP), for the AWS tests.

A fake is allowed only for what cannot exist here (a real AWS account); the
client side is the real boto3 talking HTTP to this server.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.processes import free_port
from typing import Iterator

TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIATESTRECIPE000000", "AWS_SECRET_ACCESS_KEY": "recipe-test-secret",
                    "AWS_DEFAULT_REGION": "eu-west-1"}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto_server from the venv; its endpoint URL. Stopped afterwards."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    # its request log goes to a file: a pipe nobody reads fills up and stops the server mid-test
    log = tempfile.TemporaryFile()
    home = tempfile.TemporaryDirectory(prefix="recipe-moto-")     # its recorder writes a file in its cwd
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=home.name)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"moto_server did not start: {log.read().decode()[-2000:]}")
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        home.cleanup()


def reset(endpoint: str) -> None:
    """Forget every resource (between tests)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10)


def set_credentials() -> None:
    os.environ.update(TEST_CREDENTIALS)

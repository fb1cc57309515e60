"""An EC2 instance stand-in for the amazon tests: a real QEMU guest that the amazon platform reaches
through its ssh.host/ssh.port override, while every AWS call goes over HTTP to moto's server.

moto reports instances that cannot be reached, so two things a real instance does by itself are done
here, behind the same boto3 interface the platform uses (botocore event hooks, modules.aws.clients):
the public key the build imports is added to the guest's authorized_keys (cloud-init would fetch it
from the instance metadata), and GetConsoleOutput answers with the guest's host key block as
cloud-init prints it on a real console. Everything else moto answers itself.
"""
from __future__ import annotations

import asyncio
import base64
import http.server
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from engine.remote.ssh import Endpoint, SshSession
from modules.aws import clients
from engine.accelerator import choose_accelerator
from modules.platforms.qemu.machine import Machine, MachineSpec, free_port
from modules.platforms.qemu.seed import make_seed

USER = "debian"


@dataclass
class StandIn:
    """The running guest: where its sshd answers and the test's own key to it."""

    port: int
    key: Path
    host_key: str                       # "ssh-ed25519 AAAA..." the guest presents
    console_answers: int = 0            # GetConsoleOutput calls answered with the host key block
    keys_pushed: list[str] = field(default_factory=list)
    # Set by a test: how many GetConsoleOutput answers come before cloud-init has printed the keys (-1: it never
    # does), and whether the instance refuses Latest=true as a Xen one does (UnsupportedOperation).
    console_blank_answers: int = 0
    console_refuses_latest: bool = False
    console_requests: list[dict[str, Any]] = field(default_factory=list)
    console_reads: int = 0              # GetConsoleOutput calls answered, with the keys or not

    def ssh(self, command: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", "-i", str(self.key), "-p", str(self.port), "-o", "StrictHostKeyChecking=no",
                               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                               f"{USER}@127.0.0.1", command], input=stdin, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def ec2_guest(bootstrap_base, tmp_path_factory) -> Iterator[StandIn]:
    """One guest for the session (about a minute to boot under TCG), shared by every amazon test."""
    work = tmp_path_factory.mktemp("ec2-stand-in")
    disk = work / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", bootstrap_base.format, "-b",
                    str(bootstrap_base.path), str(disk)], check=True)
    seed = asyncio.run(make_seed(work / "seed", "standin", "standin", USER, "ec2-stand-in"))
    port = free_port()
    spec = MachineSpec(name="recipe-test-ec2-stand-in", disk=disk, console_log=work / "console.log", ssh_port=port,
                       accel=asyncio.run(choose_accelerator("auto")), cpus=1, memory=768, seed=seed.iso)
    machine = Machine(spec, work / "qemu.log")
    loop = asyncio.new_event_loop()      # QEMU's process belongs to one loop, from start to stop
    loop.run_until_complete(machine.start())
    try:
        session = SshSession(Endpoint(host="127.0.0.1", port=port, user=USER, private_key_file=str(seed.private_key),
                                      host_key=seed.host_public_key))
        loop.run_until_complete(_connect_once(session))
        yield StandIn(port=port, key=seed.private_key, host_key=seed.host_public_key)
    finally:
        loop.run_until_complete(machine.stop())
        loop.close()


async def _connect_once(session: SshSession) -> None:
    await session.connect(600)
    await session.close()


@pytest.fixture
def instance_stand_in(aws, ec2_guest) -> Iterator[StandIn]:
    """While a test runs, the guest gets the keys builds import and its host keys are on the console."""
    def push_key(params: dict[str, Any], **_: Any) -> None:
        public = params["PublicKeyMaterial"]
        public = public.decode() if isinstance(public, bytes) else public
        done = ec2_guest.ssh("umask 077; mkdir -p ~/.ssh; cat >> ~/.ssh/authorized_keys", stdin=public.encode() + b"\n")
        assert done.returncode == 0, done.stderr
        ec2_guest.keys_pushed.append(public.strip())

    def console(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        request = dict(params.get("body", {}))
        ec2_guest.console_requests.append(request)
        if ec2_guest.console_refuses_latest and request.get("Latest") == "true":
            raise ClientError({"Error": {"Code": "UnsupportedOperation",
                                         "Message": "This instance type does not support retrieving the latest "
                                                    "console logs."}}, "GetConsoleOutput")
        ec2_guest.console_reads += 1
        text = "[    3.1] cloud-init[301]: Cloud-init v. 22.4.2 running 'init'\n"
        if 0 <= ec2_guest.console_blank_answers < ec2_guest.console_reads:
            ec2_guest.console_answers += 1
            text += ("[   12.3] cloud-init[512]: Cloud-init v. 22.4.2 running 'modules:final'\n"
                     "-----BEGIN SSH HOST KEY KEYS-----\n"
                     f"{ec2_guest.host_key} root@ec2-stand-in\n"
                     "-----END SSH HOST KEY KEYS-----\n")
        return (AWSResponse("https://stand-in", 200, {}, None),
                {"InstanceId": request.get("InstanceId", ""),
                 "Output": base64.b64encode(text.encode()).decode(), "ResponseMetadata": {"HTTPStatusCode": 200}})

    hooks = [("before-parameter-build.ec2.ImportKeyPair", push_key), ("before-call.ec2.GetConsoleOutput", console)]
    ec2_guest.console_blank_answers, ec2_guest.console_refuses_latest, ec2_guest.console_reads = 0, False, 0
    ec2_guest.console_requests.clear()
    clients.EVENT_HOOKS.extend(hooks)
    try:
        yield ec2_guest
    finally:
        for hook in hooks:
            clients.EVENT_HOOKS.remove(hook)


@pytest.fixture
def fail_at() -> Iterator[Callable[[str], list[int]]]:
    """fail_at("RunInstances"): the next such call gets an AWS error (once); returns a list counting hits."""
    added: list[tuple[str, Callable[..., Any]]] = []

    def arm(operation: str) -> list[int]:
        hits: list[int] = []

        def fail(**_: Any) -> None:
            if not hits:
                hits.append(1)
                raise ClientError({"Error": {"Code": "InjectedFailure", "Message": f"{operation} failed (test)"}},
                                  operation)
        added.append((f"before-call.ec2.{operation}", fail))
        clients.EVENT_HOOKS.insert(0, added[-1])     # before the stand-in's own answers
        return hits

    yield arm
    for hook in added:
        clients.EVENT_HOOKS.remove(hook)


@pytest.fixture
def checkip() -> Iterator[str]:
    """A local stand-in for https://checkip.amazonaws.com: it answers the caller's address."""
    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = f"{self.client_address[0]}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()

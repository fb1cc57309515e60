"""get_url, unarchive, wait_for, reboot and a read-only apt/user/service, through the real `recipe` command and a
real OpenSSH server on 127.0.0.1: the persistent remote shell, stdin framing, SFTP uploads and reconnect.

Nothing outside the per-test directory changes: reboot is given a boot id file and a command that changes it,
and the package, user and service tasks only find things as they already are.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading

import pytest

from tests.integration.test_ssh_platform import recap, run, source_block

HEADER_SECRET = "Bearer t0ken-value-9f8e"


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    seen: list[dict] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            seen.append(dict(self.headers))
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", seen, httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


RECIPE = """\
name: system
vars:
  root: {root}
  url: {url}
  token: "{secret}"
secrets: [token]
{source}
tasks:
  - name: Download
    get_url: {{url: "{{{{ url }}}}/app.tar.gz", dest: "{{{{ root }}}}/app.tar.gz", checksum: "sha256:{sha}",
              headers: {{Authorization: "{{{{ token }}}}"}}, mode: "0640"}}
  - name: Unpack on the target
    unarchive: {{src: "{{{{ root }}}}/app.tar.gz", dest: "{{{{ root }}}}/remote", remote_src: true}}
  - name: Unpack from here
    unarchive: {{src: local.tgz, dest: "{{{{ root }}}}/local"}}
  - name: The web server is up
    wait_for: {{port: {port}, timeout: 10}}
  - name: A file appears
    wait_for: {{path: "{{{{ root }}}}/remote/app/VERSION", search_regex: "^1\\\\.0"}}
  - name: Installed already
    apt: {{name: dash}}
  - name: Root is root
    user: {{name: root, uid: 0}}
  - name: Reboot (a stand-in boot id, so nothing reboots)
    reboot: {{boot_time_command: "cat {{{{ root }}}}/boot_id",
              reboot_command: "echo $(cat {{{{ root }}}}/boot_id)x > {{{{ root }}}}/boot_id",
              reboot_timeout: 60}}
    register: rebooted
  - name: Still connected after the reconnect
    copy: {{content: "{{{{ rebooted.elapsed }}}}\\n", dest: "{{{{ root }}}}/elapsed"}}
    changed_when: false
"""


def test_system_modules_over_ssh_then_idempotent(tmp_path, sshd, web):
    www, url, seen, port = web
    data = tarball({"app/VERSION": b"1.0.3\n", "app/bin/run": b"#!/bin/sh\n"})
    (www / "app.tar.gz").write_bytes(data)
    root = tmp_path / "root"
    for sub in ("remote", "local"):
        (root / sub).mkdir(parents=True)
    (root / "boot_id").write_text("boot\n")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "local.tgz").write_bytes(tarball({"etc/app.conf": b"x=1\n"}))
    recipe = tmp_path / "system.yml"
    recipe.write_text(RECIPE.format(root=root, url=url, secret=HEADER_SECRET, source=source_block(sshd), port=port,
                                    sha=hashlib.sha256(data).hexdigest()))
    events = tmp_path / "events.jsonl"
    first = run(recipe, "--json", str(events), "-v")
    assert first.returncode == 0, first.stdout + first.stderr
    assert (root / "app.tar.gz").read_bytes() == data and (root / "app.tar.gz").stat().st_mode & 0o777 == 0o640
    assert (root / "remote" / "app" / "VERSION").read_text() == "1.0.3\n"
    assert (root / "local" / "etc" / "app.conf").read_text() == "x=1\n"
    assert (root / "boot_id").read_text() == "bootx\n" and int((root / "elapsed").read_text()) >= 1
    assert seen[0]["Authorization"] == HEADER_SECRET
    for text in (first.stdout, first.stderr, events.read_text()):
        assert HEADER_SECRET not in text
    ends = [json.loads(line) for line in events.read_text().splitlines() if '"task.end"' in line]
    assert [e["status"] for e in ends] == ["changed"] * 3 + ["ok"] * 4 + ["changed", "ok"]

    second = run(recipe)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second.stdout)["changed"] == 1, second.stdout    # only the reboot: it always reboots
    assert len(seen) == 1, "the file with the right checksum is not downloaded again"

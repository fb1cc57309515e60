"""The installer's HTTP server, with a real HTTP client: the recipe's content, the folder's files, nothing
outside the folder, and every request logged."""
from __future__ import annotations

import http.client

import pytest

from modules.platforms.qemu.install_http import InstallServer


@pytest.fixture
def served(tmp_path):
    (tmp_path / "site" / "d-i").mkdir(parents=True)
    (tmp_path / "site" / "d-i" / "late.sh").write_text("#!/bin/sh\necho late\n")
    (tmp_path / "secret.txt").write_text("outside the folder\n")
    lines: list[str] = []
    server = InstallServer(tmp_path / "site", {"/preseed.cfg": "d-i passwd/root-password password pw\n"},
                           log=lines.append)
    port = server.start()
    yield server, port, lines
    server.stop()


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    return response.status, response.read()


def test_content_files_and_nothing_outside_the_folder(served):
    server, port, lines = served
    assert get(port, "/preseed.cfg") == (200, b"d-i passwd/root-password password pw\n")
    assert get(port, "/d-i/late.sh?x=1") == (200, b"#!/bin/sh\necho late\n")
    assert get(port, "/../secret.txt")[0] == 404
    assert get(port, "/%2e%2e/secret.txt")[0] == 404
    assert get(port, "/missing.cfg") == (404, b"not found\n")
    assert get(port, "/preseed.cfg", "HEAD") == (200, b"")
    assert server.requests == [("/preseed.cfg", 200), ("/d-i/late.sh?x=1", 200), ("/../secret.txt", 404),
                               ("/%2e%2e/secret.txt", 404), ("/missing.cfg", 404), ("/preseed.cfg", 200)]
    assert lines[0] == "GET /preseed.cfg 200 (37 bytes)" and lines[4] == "GET /missing.cfg 404"


def test_it_stops_listening(served):
    server, port, _ = served
    server.stop()
    with pytest.raises(OSError):
        get(port, "/preseed.cfg")


def test_a_symlink_in_the_folder_is_followed(tmp_path):
    """The folder may link to a big file kept elsewhere (a system image); the URL still cannot climb out."""
    (tmp_path / "elsewhere.tar").write_bytes(b"x" * 3_000_000)
    site = tmp_path / "site"
    site.mkdir()
    (site / "rootfs.tar").symlink_to(tmp_path / "elsewhere.tar")
    server = InstallServer(site)
    port = server.start()
    try:
        status, body = get(port, "/rootfs.tar")
        assert status == 200 and body == b"x" * 3_000_000
        assert get(port, "/../elsewhere.tar")[0] == 404
    finally:
        server.stop()

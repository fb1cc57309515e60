"""get_url against a real HTTP server on 127.0.0.1, downloading with the real curl (and wget) of this machine."""
import hashlib
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest
import voluptuous as vol

from tests.unit.modules.tasks.conftest import mode_of

BODY = b"the payload\n" * 100
SHA256 = hashlib.sha256(BODY).hexdigest()


class Server:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/file.bin")
                    self.end_headers()
                    return
                path = server.root / self.path.lstrip("/").split("?")[0]
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def downloads(self, name: str = "/file.bin") -> int:
        return sum(1 for path, _ in self.requests if path == name)


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "file.bin").write_bytes(BODY)
    (root / "SHA256SUMS").write_text(f"{'0' * 64}  other.bin\n{SHA256} *file.bin\n")
    server = Server(root)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_download_then_ok_without_downloading_again(h, target, web):
    dest = target / "file.bin"
    args = {"url": f"{web.url}/file.bin", "dest": str(dest), "checksum": f"sha256:{SHA256}", "mode": "0640"}
    result = h.run("get_url", args)
    assert result.changed and dest.read_bytes() == BODY and mode_of(dest) == 0o640
    assert result.data == {"dest": str(dest), "url": args["url"], "checksum": f"sha256:{SHA256}"}
    assert os.listdir(target) == ["file.bin"] and len(h.connection.scripts) == 2
    again = h.run("get_url", args)
    assert again.status == "ok" and "checksum" in again.msg and web.downloads() == 1
    assert len(h.connection.scripts) == 1


def test_checksum_mismatch_fails_and_leaves_nothing(h, target, web):
    dest = target / "file.bin"
    result = h.run("get_url", {"url": f"{web.url}/file.bin", "dest": str(dest), "checksum": "sha256:" + "a" * 64})
    assert result.failed and "checksum mismatch" in result.msg and SHA256 in result.msg
    assert os.listdir(target) == []          # the temporary file went, and dest was never written


def test_checksum_mismatch_on_an_existing_file_replaces_it(h, target, web):
    dest = target / "file.bin"
    dest.write_bytes(b"old")
    os.chmod(dest, 0o600)
    result = h.run("get_url", {"url": f"{web.url}/file.bin", "dest": str(dest), "checksum": f"sha256:{SHA256}"})
    assert result.changed and dest.read_bytes() == BODY and mode_of(dest) == 0o600   # the old mode kept


def test_existing_file_is_kept_unless_forced(h, target, web):
    dest = target / "f"
    dest.write_bytes(b"mine")
    args = {"url": f"{web.url}/file.bin", "dest": str(dest)}
    assert h.run("get_url", args).status == "ok" and dest.read_bytes() == b"mine" and web.downloads() == 0
    forced = h.run("get_url", {**args, "force": True})
    assert forced.changed and dest.read_bytes() == BODY
    same = h.run("get_url", {**args, "force": True})   # downloaded again, but identical: no change
    assert same.status == "ok" and "up to date" in same.msg and os.listdir(target) == ["f"]


def test_dest_directory_takes_the_url_name_and_redirects_are_followed(h, target, web):
    result = h.run("get_url", {"url": f"{web.url}/moved", "dest": str(target)})
    assert result.changed and (target / "moved").read_bytes() == BODY
    assert result.data["dest"] == str(target / "moved")


def test_checksum_from_a_checksums_file(h, target, web):
    args = {"url": f"{web.url}/file.bin", "dest": str(target / "x"), "checksum": f"sha256:{web.url}/SHA256SUMS"}
    result = h.run("get_url", args)
    assert result.changed and result.data["checksum"] == f"sha256:{SHA256}"
    assert h.run("get_url", args).status == "ok" and web.downloads() == 1


def test_headers_and_password_are_sent_but_never_shown(h, target, web):
    args = {"url": f"{web.url}/file.bin", "dest": str(target / "f"), "headers": {"X-Token": "s3cret-value"},
            "url_username": "me", "url_password": "hunter22"}
    result = h.run("get_url", args)
    assert result.changed
    _, headers = web.requests[-1]
    assert headers["X-Token"] == "s3cret-value" and headers["Authorization"] == "Basic bWU6aHVudGVyMjI="
    shown = repr(result) + repr(h.params("get_url", args)) + "".join(h.connection.scripts)
    assert "s3cret-value" not in shown and "hunter22" not in shown and "bWU6aHVudGVyMjI" not in shown


def test_http_errors_fail_with_the_reason(h, target, web):
    result = h.run("get_url", {"url": f"{web.url}/missing", "dest": str(target / "f")})
    assert result.failed and "404" in result.msg and os.listdir(target) == []


def test_missing_directory_fails_and_check_mode_changes_nothing(h, target, web):
    assert h.run("get_url", {"url": f"{web.url}/file.bin", "dest": str(target / "no" / "f")}).failed
    check = h.run("get_url", {"url": f"{web.url}/file.bin", "dest": str(target / "f")}, check=True)
    assert check.changed and os.listdir(target) == [] and web.downloads() == 0


def test_only_attributes_change(h, target, web):
    dest = target / "f"
    dest.write_bytes(BODY)
    os.chmod(dest, 0o600)
    result = h.run("get_url", {"url": f"{web.url}/file.bin", "dest": str(dest), "checksum": f"sha256:{SHA256}",
                               "mode": "0644"})
    assert result.changed and "mode 0600 -> 0644" in result.msg and mode_of(dest) == 0o644 and web.downloads() == 0


@pytest.mark.skipif(not shutil.which("wget"), reason="no wget here")
def test_wget_when_there_is_no_curl(h, target, web, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"    # a PATH with everything the script needs, except curl
    bin_dir.mkdir()
    for tool in ("sh", "wget", "sha256sum", "stat", "chmod", "chown", "mv", "rm", "cat", "sed"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    result = h.run("get_url", {"url": f"{web.url}/file.bin", "dest": str(target / "f"), "checksum": f"sha256:{SHA256}",
                               "headers": {"X-A": "b"}})
    assert result.changed and (target / "f").read_bytes() == BODY and web.requests[-1][1]["X-A"] == "b"
    missing = h.run("get_url", {"url": f"{web.url}/missing", "dest": str(target / "g")})
    assert missing.failed and "404" in missing.msg


@pytest.mark.parametrize("args", [{"url": "file:///etc/passwd", "dest": "/x"}, {"url": "http://h/x"},
                                  {"url": "http://h/x", "dest": "/x", "checksum": "sha256:abc"},
                                  {"url": "http://h/x", "dest": "/x", "checksum": "crc32:abcd"},
                                  {"url": "http://h/x", "dest": "/x", "headers": {"A": "b\nC: d"}},
                                  {"url": "http://h/x", "dest": "/x", "url_password": "p"}])
def test_get_url_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("get_url", args)


def test_ansible_forms(h, target):
    params = h.params("get_url", f"url=http://example.com/f dest={target} mode=0640 force=yes timeout=30 "
                                 "username=u password=p")
    assert (params.mode, params.force, params.timeout) == ("0640", True, 30.0)
    assert (params.url_username, params.url_password) == ("u", "p")
    assert h.params("get_url", {"url": "http://example.com/f", "dest": str(target), "mode": 0o640}).mode == "0640"

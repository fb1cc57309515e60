"""The HTTP server an OS installer fetches its answer file from (Packer's http_directory and http_content):
a folder, and files whose content the recipe gives (rendered templates: a preseed, a kickstart, autoinstall
user-data), served only while the installer runs.

It listens on 127.0.0.1 alone: under QEMU's user networking the guest reaches it as 10.0.2.2 (slirp carries
the guest's connection to the host's loopback), and nothing off this host can. Every request goes to the
build log, with its status: an installer that never asked for its answer file says so there.
"""
from __future__ import annotations

import mimetypes
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

GUEST_HOST_ADDRESS = "10.0.2.2"          # the host, as a guest on QEMU's user network sees it


@dataclass
class InstallServer:
    directory: Path | None = None
    content: Mapping[str, str] = field(default_factory=dict)     # URL path ("/preseed.cfg") -> the file's text
    log: Callable[[str], None] = lambda line: None
    requests: list[tuple[str, int]] = field(default_factory=list)   # (path, status), in the order they came
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> int:
        """Listen on a free port of 127.0.0.1; the port."""
        handler = _handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="install-http", daemon=True)
        self._thread.start()
        return self._server.server_address[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def find(self, url_path: str) -> bytes | None:
        """What a request for url_path gets: the recipe's content first, then a file of the folder (never a
        path out of it)."""
        path = "/" + unquote(urlsplit(url_path).path).lstrip("/")
        if path in self.content:
            return self.content[path].encode()
        if self.directory is None:
            return None
        root = self.directory.resolve()
        target = (root / path.lstrip("/")).resolve()
        if target != root and root not in target.parents:
            return None
        if target.is_dir():
            target = target / "index.html"
        return target.read_bytes() if target.is_file() else None


def _handler(server: InstallServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:           # noqa: N802 - http.server's name
            self._answer(with_body=True)

        def do_HEAD(self) -> None:          # noqa: N802
            self._answer(with_body=False)

        def _answer(self, with_body: bool) -> None:
            body = server.find(self.path)
            status = 200 if body is not None else 404
            server.requests.append((self.path, status))
            server.log(f"{self.command} {self.path} {status}" + (f" ({len(body)} bytes)" if body is not None else ""))
            self.send_response(status)
            kind = mimetypes.guess_type(self.path)[0] or "application/octet-stream"
            self.send_header("Content-Type", kind if body is not None else "text/plain")
            payload = body if body is not None else b"not found\n"
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if with_body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:   # noqa: A002 - http.server's signature
            pass                                                       # the build log has every request

    return Handler

"""The HTTP server an OS installer fetches its answer file from (Packer's http_directory and http_content):
a folder, and files whose content the recipe gives (rendered templates: a preseed, a kickstart, autoinstall
user-data), served only while the installer runs.

It listens on 127.0.0.1 alone: under QEMU's user networking the guest reaches it as 10.0.2.2 (slirp carries
the guest's connection to the host's loopback), and nothing off this host can. Every request goes to the
build log, with its status: an installer that never asked for its answer file says so there.
"""
from __future__ import annotations

import mimetypes
import os
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

GUEST_HOST_ADDRESS = "10.0.2.2"          # the host, as a guest on QEMU's user network sees it
# What `{{ http_port }}` renders to with the recipe: the port is chosen when the installer boots, and with_port
# puts it in then. Private-use characters, so no text a user writes can hold it by chance.
HTTP_PORT = "\ue000http_port\ue000"


def with_port(text: str, port: int) -> str:
    return text.replace(HTTP_PORT, str(port))


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
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="install-http", daemon=True)
        self._thread.start()
        return self._server.server_address[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def find(self, url_path: str) -> bytes | Path | None:
        """What a request for url_path gets: the recipe's content first, then a file of the folder (never a
        path out of it), which is streamed (an installer may fetch a whole system)."""
        path = "/" + unquote(urlsplit(url_path).path).lstrip("/")
        if path in self.content:
            return self.content[path].encode()
        if self.directory is None:
            return None
        # the URL may not climb out of the folder; a symlink the folder holds is followed, as Packer's server does
        root = os.path.normpath(self.directory.absolute())
        target = Path(os.path.normpath(os.path.join(root, path.lstrip("/"))))
        if str(target) != root and not str(target).startswith(root + os.sep):
            return None
        if target.is_dir():
            target = target / "index.html"
        return target if target.is_file() else None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass        # a guest that hangs up mid-file (an installer giving up) is no traceback on recipe's stderr


def _handler(server: InstallServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:           # noqa: N802 - http.server's name
            self._answer(with_body=True)

        def do_HEAD(self) -> None:          # noqa: N802
            self._answer(with_body=False)

        def _answer(self, with_body: bool) -> None:
            found = server.find(self.path)
            size = found.stat().st_size if isinstance(found, Path) else len(found) if found is not None else 0
            status = 200 if found is not None else 404
            server.requests.append((self.path, status))
            server.log(f"{self.command} {self.path} {status}" + (f" ({size} bytes)" if found is not None else ""))
            self.send_response(status)
            kind = mimetypes.guess_type(self.path)[0] or "application/octet-stream"
            self.send_header("Content-Type", kind if found is not None else "text/plain")
            payload = b"not found\n" if found is None else found if isinstance(found, bytes) else None
            self.send_header("Content-Length", str(len(payload) if payload is not None else size))
            self.end_headers()
            if not with_body:
                return
            if payload is not None:
                self.wfile.write(payload)
                return
            assert isinstance(found, Path)
            with open(found, "rb") as stream:
                shutil.copyfileobj(stream, self.wfile, 1 << 20)

        def log_message(self, format: str, *args: object) -> None:   # noqa: A002 - http.server's signature
            pass                                                       # the build log has every request

    return Handler

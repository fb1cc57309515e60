"""A real HTTP server on 127.0.0.1 (port 0, a thread) that serves Range requests, for the download tests.

Each file can be told to drop the connection after some bytes, to ignore
Range, to change its ETag, or to trickle slowly; every request is recorded.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    data: bytes
    etag: str = '"v1"'
    ranges: bool = True               # honour Range requests
    cut_after: int | None = None      # close the connection after this many body bytes (once)
    chunk_delay: float = 0.0          # seconds between 64 KiB chunks
    status: int = 200


@dataclass
class Request:
    path: str
    headers: dict
    status: int = 0
    sent: int = 0


@dataclass
class RangeServer:
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def start(self) -> "RangeServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):   # quiet
                pass

            def do_GET(self):
                request = Request(self.path, dict(self.headers))
                server.requests.append(request)
                served = server.files.get(self.path)
                if served is None:
                    request.status = 404
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if served.status != 200:
                    request.status = served.status
                    self.send_response(served.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, start = served.data, 0
                wanted = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                partial = served.ranges and wanted and (if_range is None or if_range == served.etag)
                if partial:
                    match = re.fullmatch(r"bytes=(\d+)-", wanted)
                    start = int(match.group(1))
                    if start >= len(data):
                        request.status = 416
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    request.status = 206
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    request.status = 200
                    self.send_response(200)
                if served.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", served.etag)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                limit = len(body)
                cut = served.cut_after is not None
                if cut:
                    limit = min(limit, served.cut_after)
                    served.cut_after = None
                for offset in range(0, limit, 65536):
                    piece = body[offset:min(offset + 65536, limit)]
                    try:
                        self.wfile.write(piece)
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    request.sent += len(piece)
                    if served.chunk_delay:
                        time.sleep(served.chunk_delay)
                if cut:
                    self.close_connection = True
                    self.connection.shutdown(2)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def gets(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

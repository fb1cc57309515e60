"""The uri case's web server: HTTP on a unix socket (no port to share with the other tool's run), with no Date
or Server header, so both tools' registered results can be compared whole. Usage: uri-server.py SOCKET"""
import base64
import http.server
import json
import os
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def send_response(self, code, message=None):   # without the Server and Date headers the base class adds
        self.send_response_only(code, message)

    def reply(self, code, body=b"", ctype="text/plain", extra=()):
        self.send_response(code)
        if ctype:
            self.send_header("Content-Type", ctype)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        size = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(size) if size else b""
        if self.path == "/json":
            return self.reply(200, b'{"a": 1, "b": [1, 2]}', "application/json")
        if self.path == "/text":
            return self.reply(200, "h\u00e9llo\n".encode(), "text/plain; charset=utf-8")
        if self.path == "/redirect":
            return self.reply(302, b"", None, [("Location", "/json")])
        if self.path == "/missing":
            return self.reply(404, b"nothing here\n", "text/plain")
        if self.path == "/auth":
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"me:pw").decode():
                return self.reply(401, b"who?", "text/plain", [("WWW-Authenticate", 'Basic realm="r"')])
            return self.reply(200, b'{"user": "me"}', "application/json")
        if self.path == "/cookie":
            return self.reply(200, b"c", "text/plain", [("Set-Cookie", "b=2; Path=/"), ("Set-Cookie", "a=1")])
        if self.path == "/cached":        # as a static file that has not changed since any date asked about
            if self.headers.get("If-Modified-Since"):
                return self.reply(304, b"", None)
            return self.reply(200, b"fresh\n", "text/plain")
        if self.path == "/echo":
            echo = {"method": self.command, "body": data.decode(), "content_type": self.headers.get("Content-Type"),
                    "agent": self.headers.get("User-Agent"), "token": self.headers.get("X-Token")}
            return self.reply(200, json.dumps(echo).encode(), "application/json")
        return self.reply(404, b"", None)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingUnixStreamServer):
    def get_request(self):                 # a unix socket's peer has no address; http.server wants one
        request, _ = super().get_request()
        return request, ("local", 0)


if __name__ == "__main__":
    path = sys.argv[1]
    if os.path.exists(path):
        os.unlink(path)
    Server(path, Handler).serve_forever()

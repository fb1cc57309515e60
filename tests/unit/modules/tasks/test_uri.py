"""uri against a real HTTP server on 127.0.0.1, requested with this machine's real curl, compared with Ansible's
own uri module (the oracle) making the same requests to the same server."""
import asyncio
import base64
import http.server
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate

import pytest
import voluptuous as vol
from ansible.module_utils.urls import mask_url as ansible_mask_url
from ansible.modules.uri import form_urlencoded as ansible_form_urlencoded

from engine.registry import TASK_MODULES
from modules.tasks.uri import form_urlencoded, jar_cookies, mask_url
from tests.unit.modules.tasks.conftest import ansible_module, leftovers, mode_of

VOLATILE = {"date", "elapsed", "failed", "skipped"}   # the clock; and keys Ansible's one-line output leaves out


class Server:
    """JSON, text, redirects, errors, basic auth, cookies, downloads, and an echo of what a request carried."""

    def __init__(self):
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self, code, body=b"", ctype="text/plain", extra=()):
                self.send_response(code)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for name, value in extra:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):   # a client that timed out has gone
                        pass

            def handle_any(self):
                size = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(size) if size else b""
                server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                        "body": data})
                path = self.path
                if path == "/json":
                    return self.reply(200, b'{"a": 1, "b": [1, 2]}', "application/json")
                if path == "/text":
                    return self.reply(200, "h\u00e9llo\n".encode(), "text/plain; charset=utf-8")
                if path == "/redirect":
                    return self.reply(302, b"", None, [("Location", "/json")])
                if path == "/redirect307":
                    return self.reply(307, b"", None, [("Location", "/echo")])
                if path == "/missing":
                    return self.send_error(404)
                if path == "/boom":
                    return self.reply(500, b'{"error": "boom"}', "application/json")
                if path == "/auth":
                    if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"me:pw").decode():
                        return self.reply(401, b"who?", "text/plain", [("WWW-Authenticate", 'Basic realm="r"')])
                    return self.reply(200, b'{"user": "me"}', "application/json")
                if path == "/x/cookie":
                    cookies = ["z=1", "a=2; Path=/x", "m=3", "b=4; Path=/"]
                    return self.reply(200, b"c", "text/plain", [("Set-Cookie", c) for c in cookies])
                if path == "/multi":
                    return self.reply(200, b"m", "text/html", [("X-Multi", "1"), ("X-Multi", "2")])
                if path == "/created":
                    return self.reply(201, b"", None)
                if path == "/download":
                    return self.reply(200, b"report\n", "text/plain",
                                      [("Content-Disposition", 'attachment; filename="report.txt"')])
                if path == "/cached":   # as a static file server whose file has not changed since
                    if self.headers.get("If-Modified-Since"):
                        return self.reply(304, b"", None)
                    return self.reply(200, b"fresh\n", "text/plain")
                if path == "/slow":
                    time.sleep(3)
                    return self.reply(200, b"late", "text/plain")
                if path == "/echo":
                    echo = {"method": self.command, "body": data.decode(errors="replace"),
                            "content_type": self.headers.get("Content-Type"), "agent": self.headers.get("User-Agent"),
                            "token": self.headers.get("X-Token")}
                    return self.reply(200, json.dumps(echo).encode(), "application/json")
                return self.reply(200, b"other", "text/html")

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def seen(self, path: str) -> list[dict]:
        return [request for request in self.requests if request["path"] == path]


@pytest.fixture
def web():
    server = Server()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def comparable(value: dict, root: str = "") -> dict:
    out = {key: item for key, item in value.items() if key not in VOLATILE}
    if root and "path" in out:
        out["path"] = out["path"].replace(root, "<dir>")
    return out


def with_url(args: dict, base: str) -> dict:
    return {**args, "url": args["url"].replace("WEB", base)}


# (name, args, whether the request fails); WEB stands for the server's address
CASES = [
    ("json", {"url": "WEB/json"}, False),
    ("text", {"url": "WEB/text", "return_content": True}, False),
    ("redirect", {"url": "WEB/redirect"}, False),
    ("redirect-none", {"url": "WEB/redirect", "follow_redirects": "none"}, True),
    ("404", {"url": "WEB/missing"}, True),
    ("404-allowed", {"url": "WEB/missing", "status_code": [404, 200]}, False),   # the unread error body is `body`
    ("500-json", {"url": "WEB/boom", "return_content": True}, True),
    ("head", {"url": "WEB/json", "method": "HEAD"}, False),
    ("cookies", {"url": "WEB/x/cookie"}, False),
    ("repeated-header", {"url": "WEB/multi"}, False),
    ("auth", {"url": "WEB/auth", "user": "me", "password": "pw"}, False),
    ("auth-refused", {"url": "WEB/auth", "user": "me", "password": "wrong"}, True),
    ("json-body", {"url": "WEB/echo", "method": "POST", "body": {"k": "v", "n": [1, 2]}, "body_format": "json",
                   "headers": {"X-Token": "t0ken"}}, False),
    ("form-body", {"url": "WEB/echo", "method": "post", "body": [["a", "b c"], ["n", [1, None, 2]]],
                   "body_format": "form-urlencoded"}, False),
    ("post-no-body", {"url": "WEB/echo", "method": "POST"}, False),
    ("json-null", {"url": "WEB/echo", "body_format": "json"}, False),            # no body: Ansible sends null
    ("307-put", {"url": "WEB/redirect307", "method": "PUT", "body": "raw", "follow_redirects": "all"}, False),
    ("password-masked", {"url": "WEB/echo", "method": "POST", "body": "pw=hunter22", "url_username": "me",
                         "url_password": "hunter22", "force_basic_auth": True}, False),
    ("201", {"url": "WEB/created", "method": "POST", "status_code": "201,202"}, False),
]


@pytest.fixture(scope="module")
def oracle():
    """One server for the table, and Ansible's result for each case, asked for a few at a time."""
    server = Server()
    with ThreadPoolExecutor(4) as pool:
        expected = list(pool.map(lambda case: ansible_module("uri", with_url(case[1], server.url)), CASES))
    yield server, expected
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case[0] for case in CASES])
def test_same_as_ansible(h, oracle, index):
    server, expected = oracle
    _, args, fails = CASES[index]
    result = h.run("uri", with_url(args, server.url))
    assert result.failed == fails
    assert comparable(result.as_register()) == comparable(expected[index])


def test_credentials_in_the_url_and_a_refused_connection_as_ansible(h, web):
    for args in ({"url": web.url.replace("//", "//me:pw@") + "/auth"},
                 {"url": f"http://127.0.0.1:{closed_port()}/x", "return_content": True}):
        expected = ansible_module("uri", args)
        assert comparable(h.run("uri", args).as_register()) == comparable(expected)


def test_creates_and_removes_skip_the_request_as_ansible(h, web, target):
    (target / "there").write_text("")
    for args in ({"url": f"{web.url}/json", "creates": str(target / "there")},
                 {"url": f"{web.url}/json", "removes": str(target / "absent")}):
        expected = ansible_module("uri", args)
        result = h.run("uri", args)
        assert result.status == "ok" and {k: result.data[k] for k in expected if k != "changed"} == \
            {k: v for k, v in expected.items() if k != "changed"}
    assert web.seen("/json") == []


def test_timeout_as_ansible(h, web):
    args = {"url": f"{web.url}/slow", "timeout": 1}
    expected = ansible_module("uri", args)
    result = h.run("uri", args)
    assert result.failed and result.msg == expected["msg"] == \
        "Status code was -1 and not [200]: Connection failure: timed out"


def test_dest_written_then_304_as_ansible(h, web, target):
    """The second run sends dest's mtime as If-Modified-Since; the server's 304 leaves dest alone."""
    results = {}
    for tool in ("ansible", "recipe"):
        (target / tool).mkdir()
        args = {"url": f"{web.url}/cached", "dest": str(target / tool / "f.txt"), "mode": "0600",
                "status_code": [200, 304]}
        run = (lambda a: ansible_module("uri", a)) if tool == "ansible" else (lambda a: h.run("uri", a).as_register())
        results[tool] = [comparable(run(args), str(target / tool)) for _ in range(2)]
        assert (target / tool / "f.txt").read_bytes() == b"fresh\n" and mode_of(target / tool / "f.txt") == 0o600
        assert os.listdir(target / tool) == ["f.txt"]
    assert results["recipe"] == results["ansible"]
    first, second = results["recipe"]
    assert first["changed"] and first["status"] == 200 and first["size"] == 6
    assert not second["changed"] and second["status"] == 304
    ims = [request["headers"].get("If-Modified-Since") for request in web.seen("/cached")]
    mtimes = [formatdate((target / tool / "f.txt").stat().st_mtime, usegmt=True) for tool in ("ansible", "recipe")]
    assert ims == [None, mtimes[0], None, mtimes[1]]


def test_dest_directory_error_body_and_missing_parent_as_ansible(h, web, target):
    for tool in ("ansible", "recipe"):
        (target / tool).mkdir()
    cases = [{"url": f"{web.url}/download", "dest": "DIR/"},                 # Content-Disposition's name
             {"url": f"{web.url}/json", "dest": "DIR"},                      # the URL's name, and json
             {"url": f"{web.url}/missing", "dest": "DIR/err", "status_code": 404},   # written empty, as Ansible
             {"url": f"{web.url}/missing", "dest": "DIR/not"}]               # not written
    for args in cases:
        expected = ansible_module("uri", {**args, "dest": args["dest"].replace("DIR", str(target / "ansible"))})
        result = h.run("uri", {**args, "dest": args["dest"].replace("DIR", str(target / "recipe"))})
        assert comparable(result.as_register(), str(target / "recipe")) == \
            comparable(expected, str(target / "ansible"))
    assert sorted(os.listdir(target / "recipe")) == sorted(os.listdir(target / "ansible")) == \
        ["err", "json", "report.txt"]
    assert (target / "recipe" / "err").read_bytes() == b"" and (target / "recipe" / "json").read_bytes() == \
        (target / "ansible" / "json").read_bytes()
    nowhere = h.run("uri", {"url": f"{web.url}/json", "dest": str(target / "no" / "such")})
    assert nowhere.failed and "failed to copy" in nowhere.msg and "does not exist" in nowhere.msg


def test_dest_same_content_is_not_replaced_but_reported_changed(h, web, target):
    """As Ansible: the file is only renamed into place when its bytes differ, yet the task says changed."""
    dest = target / "json"
    dest.write_bytes(b'{"a": 1, "b": [1, 2]}')
    inode = dest.stat().st_ino
    result = h.run("uri", {"url": f"{web.url}/json", "dest": str(dest), "force": True, "mode": "0640"})
    assert result.changed and dest.stat().st_ino == inode and mode_of(dest) == 0o640
    request = web.seen("/json")[0]
    assert request["headers"].get("Cache-Control") == "no-cache" and "If-Modified-Since" not in request["headers"]
    assert os.listdir(target) == ["json"]


def test_secrets_travel_on_stdin_never_in_the_script(h, web):
    args = {"url": f"{web.url}/echo", "method": "POST", "body": "the-body-s3cret", "url_username": "me",
            "url_password": "hunter22", "force_basic_auth": True, "headers": {"X-Token": "token-v4lue"}}
    result = h.run("uri", args)
    script = "\n".join(h.connection.scripts)
    for secret in ("the-body-s3cret", "hunter22", "token-v4lue", base64.b64encode(b"me:hunter22").decode()):
        assert secret not in script
    request = web.seen("/echo")[0]
    assert request["body"] == b"the-body-s3cret" and request["headers"]["X-Token"] == "token-v4lue"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"me:hunter22").decode()
    assert "hunter22" not in json.dumps(result.as_register())


def test_a_large_binary_body_is_staged_and_removed(h, web):
    data = bytes(range(256)) * 400          # NUL bytes, and over the inline limit
    local = h.file("files", "blob.bin", data)
    result = h.run("uri", {"url": f"{web.url}/echo", "method": "PUT", "src": local.name})
    assert result.status == "ok" and web.seen("/echo")[0]["body"] == data
    assert h.connection.uploads and leftovers(h) == []


def test_src_on_the_target_and_a_missing_one(h, web, target):
    (target / "payload.json").write_text('{"from": "target"}')
    args = {"url": f"{web.url}/echo", "method": "POST", "src": str(target / "payload.json"), "remote_src": True,
            "headers": {"Content-Type": "application/json"}}
    result = h.run("uri", args)
    assert result.data["json"]["body"] == '{"from": "target"}' and result.data["json"]["content_type"] == \
        "application/json"
    missing = h.run("uri", {**args, "src": str(target / "nope")})
    assert missing.failed and missing.msg == f"Unable to open source file {target / 'nope'}"
    assert len(web.seen("/echo")) == 1


def test_check_mode_skips_as_ansible_does(h, web):
    result = h.run("uri", {"url": f"{web.url}/json"}, check=True)
    assert result.skipped and result.msg == "This action (uri) does not support check mode."
    assert web.requests == []


def test_without_curl_the_message_names_curl_and_wget(h, web, tmp_path):
    empty = tmp_path / "nobin"
    empty.mkdir()
    ctx = h.context()
    ctx.environment = {"PATH": str(empty)}
    params = h.params("uri", {"url": f"{web.url}/json"})
    result = asyncio.run(TASK_MODULES.get("uri")().run(params, ctx))
    assert result.failed and "curl" in result.msg and "wget" in result.msg and web.requests == []


@pytest.mark.parametrize("args, words", [
    ({"body_format": "form-multipart", "body": {"a": "b"}}, "form-multipart is not supported"),
    ({"use_gssapi": True}, "use_gssapi is not supported"),
    ({"unredirected_headers": ["Authorization"]}, "unredirected_headers is not supported"),
    ({"body": "x", "src": "f"}, "mutually exclusive: body|src"),
    ({"body": {"a": 1}}, "a raw body must be a string"),
    ({"method": "G-T"}, "Parameter 'method' needs to be a single word in uppercase"),
])
def test_refused_options_say_why(h, args, words):
    with pytest.raises(vol.Invalid) as caught:
        h.params("uri", {"url": "http://127.0.0.1/", **args})
    assert words in str(caught.value)


def test_option_forms_as_ansible_takes_them(h):
    p = h.params("uri", {"url": "http://u:hunter22@x/", "method": "patch", "status_code": "200, 201", "user": "u",
                         "password": "hunter22", "timeout": "5"})
    assert (p.method, p.status_code, p.url_username, p.url_password, p.timeout) == ("PATCH", [200, 201], "u",
                                                                                      "hunter22", 5)
    assert "hunter22" not in repr(p)


@pytest.mark.parametrize("body", [
    {"a": "b c", "n": [1, None, 2], "t": True}, [["x", "1"], ["x", "2"]], [("k", {"d": 1})], "already=encoded", None,
])
def test_form_urlencoded_as_ansible_encodes(body):
    assert form_urlencoded(body) == ansible_form_urlencoded(body)


@pytest.mark.parametrize("url", ["http://h/p", "http://me@h/p", "https://me:s3cret@h:8443/p?q=1", "http://:pw@h/"])
def test_mask_url_as_ansible(url):
    assert mask_url(url) == ansible_mask_url(url)


def test_cookie_jar_order_is_python_cookiejar_order():
    # curl's jar, newest first: the same cookies Python's jar iterates as a, b (path /) then z (path /x)
    jar = ["# Netscape HTTP Cookie File", "", "h\tFALSE\t/x/\tFALSE\t0\tz\t3", "#HttpOnly_h\tFALSE\t/\tFALSE\t0\tb\t2",
           "h\tFALSE\t/\tFALSE\t0\ta\t1"]
    assert jar_cookies(jar) == (("a", "1"), ("b", "2"), ("z", "3"))


def test_leaves_no_temporary_files(h, web, target, tmp_path):
    private = tmp_path / "tmpdir"
    private.mkdir()
    ctx = h.context()
    ctx.environment = {"TMPDIR": str(private)}      # where the request script's mktemp -d goes
    module = TASK_MODULES.get("uri")()
    for args in ({"url": f"{web.url}/missing", "dest": str(target / "x")},
                 {"url": f"{web.url}/json", "return_content": True, "dest": str(target / "j")}):
        result = asyncio.run(module.run(h.params("uri", args), ctx))
        assert result.data["status"] in (404, 200)
    assert os.listdir(private) == [] and os.listdir(target) == ["j"]

"""uri: an HTTP(S) request made from the target with curl; its response registered as Ansible's uri registers it.

curl, and only curl, makes the request: the module needs the response's status line, every header and
the body apart, whatever the status, which BusyBox's wget cannot give and GNU wget gives only in
stderr prose; a target without curl fails with a message that says so. Everything curl is told travels
on the script's stdin as a curl config (`-K -`): the URL, the password, header values and the body
never appear in the script text, and the password is masked in the result as Ansible masks it.

One round trip makes the request. With dest the body is downloaded beside dest under a hidden name,
and a second script renames it into place (or drops it when dest already holds the same bytes), so
dest is always the old file or the whole new one; a dest that is a directory takes the name the
response gives (Content-Disposition, else the URL's), and needs one more probe. dest's mtime goes as
If-Modified-Since (unless force), so a second run may get 304, as in Ansible.

Not supported, and refused with a message: body_format form-multipart, use_gssapi, unredirected_headers.
decompress is accepted and has no effect: neither urllib nor this curl call asks for gzip.
"""
from __future__ import annotations

import base64
import email.message
import email.utils
import json
import posixpath
import re
import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import boolean, integer, one_or_more, string
from modules.tasks._attrs import Attrs, Stat, new_mode
from modules.tasks._content import stat_data, with_flags
from modules.tasks._remote import (ATTRIBUTES, FileAttributes, CONTENT, INLINE_LIMIT, UMASK_SH, failure, first, maybe,
                                   place_commands, q, quiet, stage, stat_sh, tagged, text, unstage)
from modules.tasks.get_url import headers as header_map

REDIRECTS = ("all", "no", "none", "safe", "urllib2", "yes")
FORMATS = ("form-urlencoded", "json", "raw", "form-multipart")
JSON_CANDIDATES = {"json", "javascript"}
NO_LOG = "********"
# curl's write-out: status, redirects followed, seconds, final Content-Type; then the final URL
WRITE_OUT = "%{http_code} %{num_redirects} %{time_total} %{content_type}\\n%{url_effective}"


def method(value: Any) -> str:
    value = text(value).upper()
    if not re.fullmatch(r"[A-Z]+", value):
        raise vol.Invalid("Parameter 'method' needs to be a single word in uppercase, like GET or POST.")
    return value


def status_codes(value: Any) -> list[int]:
    """Ansible's list of ints: 200, [200, 201] or "200,201"."""
    return one_or_more(integer)(value.split(",") if isinstance(value, str) else value)


def names(value: Any) -> list[str]:
    """Ansible's list of strings: a list, or one comma-separated string."""
    return one_or_more(string)(value.split(",") if isinstance(value, str) else value)


def mask_url(url: str) -> str:
    """The URL with its user and password hidden, as Ansible's mask_url shows it."""
    parts = urllib.parse.urlparse(url)
    if not parts.username and not parts.password:
        return url
    if parts.password:
        netloc = parts.netloc.replace(f"{parts.username}:{parts.password}@", "****:****@")
    else:
        netloc = parts.netloc.replace(f"{parts.username}@", "****@")
    return urllib.parse.urlunparse(parts._replace(netloc=netloc))


def form_urlencoded(body: Any) -> Any:
    """A mapping or a list of pairs as application/x-www-form-urlencoded text, as Ansible's uri encodes it."""
    if isinstance(body, str) or not isinstance(body, (dict, list, tuple)):
        return body
    pairs = []
    for key, values in (body.items() if isinstance(body, dict) else body):
        if isinstance(values, str) or not isinstance(values, (dict, list, tuple)):
            values = [values]
        pairs += [(str(key), str(value)) for value in values if value is not None]
    return urllib.parse.urlencode(pairs, doseq=True)


def conf(option: str, value: str | bytes | None = None) -> bytes:
    """One line of a curl config file; a value is quoted with the escapes curl's parser knows."""
    if value is None:
        return option.encode() + b"\n"
    raw = value.encode() if isinstance(value, str) else value
    for plain, escaped in ((b"\\", b"\\\\"), (b'"', b'\\"'), (b"\n", b"\\n"), (b"\r", b"\\r"), (b"\t", b"\\t"),
                           (b"\v", b"\\v")):
        raw = raw.replace(plain, escaped)
    return option.encode() + b' = "' + raw + b'"\n'


def no_log(value: Any, secret: str | None) -> Any:
    """value with the password hidden in every string, as Ansible's remove_values hides a no_log option."""
    if not secret:
        return value
    if isinstance(value, dict):
        return {key: no_log(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [no_log(item, secret) for item in value]
    if isinstance(value, str):
        return "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" if value == secret else value.replace(secret, NO_LOG)
    return value


@dataclass(frozen=True)
class Response:
    """What the request script saw: curl's exit status and message, and the last response, if one came."""

    rc: int
    status: int                                 # 0: no response at all
    redirects: int
    seconds: float
    url: str                                    # curl's final URL
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()   # the final response's, in order
    cookies: tuple[tuple[str, str], ...] = ()
    error: str = ""
    body: bytes | None = None                   # only when the script was asked to print it

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def message(self) -> email.message.Message:
        """The headers as urllib's response holds them, for its content-type and parameter parsing."""
        msg = email.message.Message()
        for name, value in self.headers:
            msg[name] = value
        return msg


def final_headers(lines: list[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The reason phrase and headers of the last response in curl's header dump (one block per response)."""
    blocks: list[list[str]] = []
    for line in (line.rstrip("\r") for line in lines):
        if line.startswith("HTTP/"):
            blocks.append([line])
        elif line and blocks:
            blocks[-1].append(line)
    if not blocks:
        return "", ()
    status_line, *fields = blocks[-1]
    parts = status_line.split(" ", 2)
    headers: list[tuple[str, str]] = []
    for line in fields:
        if line[0] in " \t" and headers:        # an obsolete folded line continues the header before
            headers[-1] = (headers[-1][0], f"{headers[-1][1]} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.lstrip(" \t")))
    return (parts[2] if len(parts) > 2 else ""), tuple(headers)


def jar_cookies(lines: list[str]) -> tuple[tuple[str, str], ...]:
    """(name, value) in the order Python's CookieJar iterates: by domain, then path, each first seen first.

    curl writes its jar newest first; a path is compared without its trailing slash, which curl's
    default path has and Python's has not.
    """
    domains: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for line in reversed(lines):
        if line.startswith("#HttpOnly_"):
            line = line[len("#HttpOnly_"):]
        elif line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) >= 7:
            path = fields[2].rstrip("/") or "/"
            domains.setdefault(fields[0], {}).setdefault(path, []).append((fields[5], fields[6]))
    return tuple(cookie for paths in domains.values() for cookies in paths.values() for cookie in cookies)


def parse_response(tags: dict[str, list[str]], encoded: str | None) -> Response:
    status, redirects, seconds = ((first(tags, "meta") or "").split(" ", 3) + ["", "", ""])[:3]
    reason, headers = final_headers(tags.get("h", []))
    error = " ".join(re.sub(r"^curl: \(\d+\) ", "", line) for line in tags.get("e", []) if line.strip())
    return Response(rc=int(first(tags, "rc") or 1), status=int(status) if status.isdigit() else 0,
                    redirects=int(redirects) if redirects.isdigit() else 0,
                    seconds=float(seconds) if re.fullmatch(r"[\d.]+", seconds) else 0.0,
                    url=first(tags, "final") or "", reason=reason, headers=headers,
                    cookies=jar_cookies(tags.get("c", [])), error=error,
                    body=base64.b64decode("".join(encoded.split())) if encoded is not None else None)


def request_failure(r: Response, unix_socket: str | None) -> str:
    """fetch_url's words for a request that got no response, from curl's exit status and message."""
    if r.rc == 6:
        reason = "[Errno -2] Name or service not known"
    elif r.rc == 7 and unix_socket:
        reason = f"Invalid Socket File ({unix_socket}): {r.error}"
    elif r.rc == 7:
        reason = "[Errno 111] Connection refused"
    elif r.rc == 28 and "too slow" in r.error:   # no answer within timeout: urllib's socket timed out reading
        return "Connection failure: timed out"
    elif r.rc == 28:
        reason = "timed out"
    else:
        reason = r.error or f"curl exit status {r.rc}"
    return f"Request failed: <urlopen error {reason}>"


def response_filename(r: Response, url: str) -> str:
    """The name a dest directory gives the body: Content-Disposition's filename, else the URL's last name."""
    name = r.message().get_param("filename", header="content-disposition")
    if isinstance(name, tuple):          # RFC 2231 (charset, language, value)
        name = email.utils.collapse_rfc2231_value(name)
    if name:
        return posixpath.basename(str(name))
    path = urllib.parse.urlparse(url).path
    return urllib.parse.unquote(posixpath.basename(path.rstrip("/"))) or "index.html"


def decode(content: bytes, charset: str) -> str:
    try:
        return content.decode(charset, errors="replace")
    except LookupError:                  # a charset Python does not know
        return content.decode("utf-8", errors="replace")


def response_fields(p: Uri.Params, url: str, r: Response) -> tuple[dict[str, Any], bytes | None, bool, str]:
    """fetch_url's fields as uri registers them (headers lowercased, '-' as '_'), and what of the body uri
    reads: (fields, the body read or None, whether it may be JSON, its charset)."""
    masked = mask_url(p.url)
    info: dict[str, Any] = {"url": masked, "status": -1}
    success = 200 <= r.status < 300
    if not r.status:
        info["msg"] = request_failure(r, p.unix_socket)
    elif success:
        joined: dict[str, str] = {}     # a repeated header's values joined, as fetch_url joins them
        for name, value in r.headers:
            joined[name.lower()] = f"{joined[name.lower()]}, {value}" if name.lower() in joined else value
        info.update(joined)
        info["cookies_string"] = "; ".join(f"{name}={value}" for name, value in r.cookies)
        info["cookies"] = dict(r.cookies)
        info.update(msg=f"OK ({r.header('Content-Length') or 'unknown'} bytes)",
                    url=mask_url(r.url if r.redirects else url), status=r.status)
    else:                               # urllib's HTTPError: the last of a repeated header wins
        info.update({name.lower(): value for name, value in r.headers})
        info.update(msg=f"HTTP Error {r.status}: {r.reason}", body=r.body or b"", status=r.status)
    message = r.message() if r.status else None
    content_type = (message.get_content_type() if message else "application/octet-stream").split(",")[0]
    charset = str((message.get_param("charset") if message else None) or "utf-8").split(",")[0]
    sub_type = content_type.partition("/")[2]
    maybe_json = (sub_type.partition("+")[2] if "+" in sub_type else sub_type).lower() in JSON_CANDIDATES
    content = None
    if maybe_json or p.return_content or info["status"] not in p.status_code:
        content = (r.body or b"") if success else info.pop("body", b"")
    if isinstance(info.get("body"), bytes):      # an error's body nobody read stays, as Ansible leaves it
        info["body"] = decode(info["body"], charset)
    data = {"redirected": info["url"] != masked, **info, "elapsed": int(r.seconds), "status": int(info["status"]),
            "changed": False}
    data = {key.replace("-", "_").lower(): value for key, value in data.items()}
    if "location" in data:
        data["location"] = urllib.parse.urljoin(masked, data["location"])
    return data, content, maybe_json, charset


class Uri(TaskModule, name="uri"):
    description = "Make an HTTP(S) request from the target with curl; register the status, headers and body"
    aliases = {"user": "url_username", "password": "url_password", "attr": "attributes"}
    schema = {
        vol.Required("url"): text,
        vol.Optional("method", default="GET"): method,
        vol.Optional("body", default=None): object,
        vol.Optional("body_format", default="raw"): vol.In(FORMATS),
        vol.Optional("src", default=None): maybe(text),
        vol.Optional("remote_src", default=False): boolean,
        vol.Optional("headers", default={}): header_map,
        vol.Optional("status_code", default=[200]): status_codes,
        vol.Optional("return_content", default=False): boolean,
        vol.Optional("dest", default=None): maybe(text),
        vol.Optional("creates", default=None): maybe(string),
        vol.Optional("removes", default=None): maybe(string),
        vol.Optional("force", default=False): boolean,
        vol.Optional("timeout", default=30): integer,
        vol.Optional("url_username", default=None): maybe(text),
        vol.Optional("url_password", default=None): maybe(text),
        vol.Optional("force_basic_auth", default=False): boolean,
        vol.Optional("use_netrc", default=True): boolean,
        vol.Optional("follow_redirects", default="safe"): vol.In(REDIRECTS),
        vol.Optional("validate_certs", default=True): boolean,
        vol.Optional("ca_path", default=None): maybe(text),
        vol.Optional("client_cert", default=None): maybe(text),
        vol.Optional("client_key", default=None): maybe(text),
        vol.Optional("ciphers", default=None): maybe(names),
        vol.Optional("unix_socket", default=None): maybe(text),
        vol.Optional("use_proxy", default=True): boolean,
        vol.Optional("http_agent", default="ansible-httpget"): string,
        vol.Optional("unredirected_headers", default=[]): names,
        vol.Optional("decompress", default=True): boolean,
        vol.Optional("use_gssapi", default=False): boolean,
        **ATTRIBUTES,
    }

    @dataclass(frozen=True)
    class Params(FileAttributes):
        url: str = field(repr=False)               # it may hold user:password@
        method: str = "GET"
        body: Any = field(default=None, repr=False)
        body_format: str = "raw"
        src: str | None = None
        remote_src: bool = False
        headers: dict[str, str] = field(default_factory=dict, repr=False)
        status_code: list[int] = field(default_factory=lambda: [200])
        return_content: bool = False
        dest: str | None = None
        creates: str | None = None
        removes: str | None = None
        force: bool = False
        timeout: int = 30
        url_username: str | None = None
        url_password: str | None = field(default=None, repr=False)
        force_basic_auth: bool = False
        use_netrc: bool = True
        follow_redirects: str = "safe"
        validate_certs: bool = True
        ca_path: str | None = None
        client_cert: str | None = None
        client_key: str | None = None
        ciphers: list[str] | None = None
        unix_socket: str | None = None
        use_proxy: bool = True
        http_agent: str = "ansible-httpget"
        unredirected_headers: list[str] = field(default_factory=list)
        decompress: bool = True
        use_gssapi: bool = False

        def __post_init__(self) -> None:
            if self.body is not None and self.src is not None:
                raise vol.Invalid("parameters are mutually exclusive: body|src", path=["src"])
            if self.body_format == "form-multipart":
                raise vol.Invalid("body_format form-multipart is not supported: build the multipart body yourself "
                                  "and send it with body_format raw and its Content-Type header",
                                  path=["body_format"])
            if self.body_format == "raw" and isinstance(self.body, (dict, list)):
                raise vol.Invalid("a raw body must be a string: use body_format json or form-urlencoded for "
                                  "a mapping or a list", path=["body"])
            if self.use_gssapi:
                raise vol.Invalid("use_gssapi is not supported: curl on the target would need Kerberos set up",
                                  path=["use_gssapi"])
            if self.unredirected_headers and self.follow_redirects not in ("none", "no"):
                raise vol.Invalid("unredirected_headers is not supported: curl sends every header it is given "
                                  "to each redirect", path=["unredirected_headers"])

        @property
        def follows(self) -> bool:
            """Whether redirects are followed, as Ansible's redirect handler decides for this method."""
            if self.follow_redirects in ("none", "no"):
                return False
            if self.follow_redirects == "safe":
                return self.method in ("GET", "HEAD")
            if self.follow_redirects == "urllib2":
                return self.method in ("GET", "HEAD", "POST")
            return True

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        if ctx.check:
            return Result(skipped=True, msg="This action (uri) does not support check mode.")
        try:
            body, headers = request_body(p)
        except (TypeError, ValueError) as exc:
            return Result(failed=True, msg=f"failed to parse body as form_urlencoded: {exc}", data={"elapsed": 0})
        if p.src and not p.remote_src:
            body = ctx.find_file(p.src, "files").read_bytes()
        url, user, password = credentials(p)
        staged = ""
        if body is not None and (len(body) > INLINE_LIMIT or b"\0" in body):   # curl's config lines hold no NUL
            staged = await stage(ctx, body)
        try:
            config = curl_config(p, url, user, password, headers, body, staged)
            res = await quiet(ctx, request_script(p, staged), stdin=config)
        finally:
            if staged:
                await unstage(ctx, staged)
        if not res.ok:
            return failure("could not make the request", res)
        tags, encoded = tagged(res.stdout)
        if "nocurl" in tags:
            return Result(failed=True, msg="uri needs curl on the target, and it has none (wget cannot stand in: "
                                           "it does not report a response's status and headers); install curl")
        if "skip" in tags:
            out = (f"skipped, since '{p.creates}' exists" if first(tags, "skip") == "creates"
                   else f"skipped, since '{p.removes}' does not exist")
            return Result(msg=out, data={"stdout": out, "stdout_lines": [out]})
        if "nosrc" in tags:
            return Result(failed=True, msg=f"Unable to open source file {p.src}", data={"elapsed": 0})
        response = parse_response(tags, encoded)
        if response.rc and response.status:     # a response, then a failure while reading it
            return Result(failed=True, msg=f"HTTP Error while fetching {mask_url(p.url)}: {response.error}")
        result = await self.respond(p, ctx, url, response, tags)
        return result.replace(msg=no_log(result.msg, p.url_password), data=no_log(dict(result.data), p.url_password))

    async def respond(self, p: Params, ctx: TaskContext, url: str, r: Response,
                      tags: dict[str, list[str]]) -> Result:
        """Ansible's uri result from the response: its fields, then dest written when the status allows."""
        data, content, maybe_json, charset = response_fields(p, url, r)
        path = None
        if r.status and p.dest is not None:
            path = posixpath.join(p.dest, response_filename(r, r.url)) if "isdir" in tags else p.dest
            data["path"] = path
        text_content = decode(content, charset) if content is not None else None
        if text_content is not None and maybe_json:
            try:
                data["json"] = json.loads(text_content)
            except ValueError:
                pass
        if path is not None:
            # an HTTPError's body Ansible did not read is written as nothing: its stream is closed by then
            unread = not 200 <= r.status < 300 and content is None
            written, problem = await self.place(p, ctx, path, data, tags, empty=unread)
            if problem:
                return problem
            data["changed"] = written
        failed = data["status"] not in p.status_code
        if failed:
            data["msg"] = f"Status code was {data['status']} and not {p.status_code}: {data.get('msg', '')}"
        if p.return_content:
            data["content"] = text_content
        changed = data.pop("changed")
        result = Result(changed=changed, failed=failed, msg=data["msg"], data=data)
        return await with_flags(ctx, result, path, p.attributes) if changed and path else result

    async def place(self, p: Params, ctx: TaskContext, path: str, data: dict[str, Any],
                    tags: dict[str, list[str]], empty: bool) -> tuple[bool, Result | None]:
        """Write the downloaded body at path when the status says to, and add path's file fields to data;
        (whether it was written, a failed Result or None)."""
        tmp = first(tags, "tmp")
        umask = int(first(tags, "umask") or "022", 8)
        existing = Stat.parse(first(tags, "stat"))
        if "isdir" in tags:                 # the name came with the response: look at that file now
            res = await quiet(ctx, stat_sh(q(path)))
            existing = Stat.parse(first(tagged(res.stdout)[0], "stat"))
        if tmp is None:
            data.update(stat_data(existing) if existing else {})
            return False, None
        if "nodir" in tags:
            msg = (f"failed to copy the response to {path}: the directory {posixpath.dirname(path)} does not exist. "
                   f"{data.get('msg', '')}")
            return False, Result(failed=True, msg=msg, data={**data, "msg": msg})
        attrs = Attrs(p.mode, p.owner, p.group)
        same = " && ".join(['rm -f "$t"', *attrs.commands(q(path))])
        replace = " && ".join(place_commands('"$t"', path, new_mode(attrs, existing, umask), attrs, existing))
        script = (f"t={q(tmp)}\ntrap 'rm -f \"$t\"' EXIT\n" + (': > "$t" || exit\n' if empty else "") +
                  f'if [ -f {q(path)} ] && a=$(sha1sum < "$t") && b=$(sha1sum < {q(path)}) && [ "$a" = "$b" ]; '
                  f"then {same}; else {replace}; fi || exit\n" + stat_sh(q(path), "after"))
        res = await quiet(ctx, script)
        if not res.ok:
            problem = failure(f"failed to copy the response to {path}", res)
            return False, problem.replace(data={**data, "msg": problem.msg})
        after = Stat.parse(first(tagged(res.stdout)[0], "after"))
        data.update(stat_data(after) if after else {})
        return True, None


def request_body(p: Uri.Params) -> tuple[bytes | None, dict[str, str]]:
    """The body to send (None: none) and the headers, with body_format's encoding and Content-Type."""
    headers = dict(p.headers)
    named = {name.lower() for name in headers}
    body = p.body
    if p.body_format == "json":
        if not isinstance(body, str):    # a string is taken as JSON already; anything else, even null, is dumped
            body = json.dumps(body)
        if "content-type" not in named:
            headers["Content-Type"] = "application/json"
    elif p.body_format == "form-urlencoded":
        body = form_urlencoded(body)
        if "content-type" not in named:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
    if body is None:
        return None, headers
    return (body if isinstance(body, str) else text(body)).encode(), headers


def credentials(p: Uri.Params) -> tuple[str, str | None, str]:
    """(the URL requested, user, password) as Ansible's _configure_auth: url_username, else the URL's
    user:password@, which is then taken out of the URL."""
    if p.url_username:
        return p.url, p.url_username, p.url_password or ""
    parts = urllib.parse.urlparse(p.url)
    if "@" not in parts.netloc:
        return p.url, None, ""
    userinfo, netloc = parts.netloc.split("@", 1)
    user, _, password = userinfo.partition(":")
    return (urllib.parse.urlunparse(parts._replace(netloc=netloc)), urllib.parse.unquote(user),
            urllib.parse.unquote(password))


def curl_config(p: Uri.Params, url: str, user: str | None, password: str, headers: dict[str, str],
                body: bytes | None, staged: str) -> bytes:
    """curl's options as a config for `-K -`: the request as urllib would make it for Ansible."""
    t = str(p.timeout)
    lines = [conf("url", url), conf("http1.1"), conf("max-redirs", "10"), conf("proto-redir", "=http,https,ftp"),
             conf("connect-timeout", t), conf("speed-time", t), conf("speed-limit", "1"),
             conf("user-agent", p.http_agent), conf("header", "Expect:")]   # urllib never waits for 100-continue
    named = {name.lower() for name in headers}
    if "accept" not in named:
        lines.append(conf("header", "Accept:"))            # urllib sends none; curl's */* could change the answer
    if p.force:
        lines.append(conf("header", "Cache-Control: no-cache"))
    if body is None and p.src is None and p.method in ("POST", "PUT", "PATCH"):
        body = b""                                          # http.client's Content-Length: 0, with no type
        if "content-type" not in named:
            lines.append(conf("header", "Content-Type:"))
    for name, value in headers.items():
        lines.append(conf("header", f"{name}: {value}" if value else f"{name};"))   # "X;" sends an empty value
    if p.method == "HEAD":
        lines.append(conf("head"))
    elif body is not None or p.src is not None:
        if p.method != "POST":                              # POST is what data means; -X would survive a 302
            lines.append(conf("request", p.method))
        if p.src is not None and p.remote_src:
            lines.append(conf("data-binary", "@" + p.src))
        elif staged:
            lines.append(conf("data-binary", "@" + staged))
        else:
            lines.append(conf("data-raw", body))
    elif p.method != "GET":
        lines.append(conf("request", p.method))
    if p.follows:
        lines.append(conf("location"))
    if user is not None:
        lines += [conf("user", f"{user}:{password}"), conf("basic" if p.force_basic_auth else "anyauth")]
    elif p.use_netrc:
        lines.append(conf("netrc-optional"))
    if not p.validate_certs:
        lines.append(conf("insecure"))
    for option, value in (("cacert", p.ca_path), ("cert", p.client_cert), ("key", p.client_key),
                          ("unix-socket", p.unix_socket), ("ciphers", ":".join(p.ciphers or []) or None)):
        if value:
            lines.append(conf(option, value))
    if not p.use_proxy:
        lines.append(conf("noproxy", "*"))
    return b"".join(lines)


def request_script(p: Uri.Params, staged: str) -> str:
    """The one script that makes the request and prints what it got as tagged lines, the body last (base64)
    when Ansible would read it: return_content, a status not asked for, an error status, or JSON."""
    lines = ["LC_ALL=C; export LC_ALL", "command -v curl >/dev/null 2>&1 || { echo nocurl; exit 0; }",
             "w=$(mktemp -d) || exit", f"trap 'rm -rf \"$w\" {q(staged) if staged else ''}' EXIT"]
    if p.creates:
        lines.append(f"[ -e {q(p.creates)} ] && {{ echo 'skip creates'; exit 0; }}")
    if p.removes:
        lines.append(f"[ -e {q(p.removes)} ] || {{ echo 'skip removes'; exit 0; }}")
    if p.src is not None and p.remote_src:
        lines.append(f"{{ [ -f {q(p.src)} ] && [ -r {q(p.src)} ]; }} || {{ echo nosrc; exit 0; }}")
    lines.append('o="$w/body"; set --')
    if p.dest is not None:
        hidden = f".recipe-uri-{secrets.token_hex(4)}"
        directory = posixpath.dirname(p.dest) or "."
        lines += [f"d={q(p.dest)}",
                  f'if [ -d "$d" ]; then o="$d/{hidden}"; echo isdir',
                  f"elif [ -d {q(directory)} ]; then o={q(posixpath.join(directory, hidden))}",
                  "else echo nodir; fi",
                  # If-Modified-Since by hand: curl's -z would also drop a 200's body older than the date
                  *([] if p.force else ['[ -f "$d" ] && set -- -H "If-Modified-Since: '
                                        '$(date -u -r "$d" \'+%a, %d %b %Y %H:%M:%S GMT\')"']),
                  stat_sh('"$d"').rstrip("\n"), UMASK_SH.rstrip("\n"),
                  f"trap 'rm -rf \"$w\" \"$o\" {q(staged) if staged else ''}' EXIT"]
    codes = " ".join(str(code) for code in p.status_code)
    lines += [
        f"m=$(curl -sS -K - -o \"$o\" -D \"$w/h\" -c \"$w/c\" -w '{WRITE_OUT}' \"$@\" 2>\"$w/e\")",
        "rc=$?",
        '{ read -r code redirects seconds ctype; IFS= read -r final; } <<EOF\n$m\nEOF',
        'printf \'rc %s\\nmeta %s %s %s\\nfinal %s\\n\' "$rc" "$code" "$redirects" "$seconds" "$final"',
        "sed 's/^/e /' \"$w/e\"; sed 's/^/h /' \"$w/h\" 2>/dev/null; sed 's/^/c /' \"$w/c\" 2>/dev/null",
        # HEAD: curl puts the headers where the body goes. No body at all: curl writes no file
        ': > "$o" 2>/dev/null' if p.method == "HEAD" else '[ -f "$o" ] || : > "$o" 2>/dev/null',
        f'case " {codes} " in *" $code "*) ok=1;; *) ok=;; esac',
    ]
    if p.dest is not None:   # a body to write stays for the second script, which renames it into place
        lines.append('if [ -n "$ok" ] && [ "$code" != 304 ]; then printf \'tmp %s\\n\' "$o"; '
                     f"trap 'rm -rf \"$w\" {q(staged) if staged else ''}' EXIT; fi")
    lines += [f"need={'1' if p.return_content else ''}", "[ -n \"$ok\" ] || need=1",
              "case $code in 2??) ;; *) need=1;; esac",
              "case $ctype in *[jJ][sS][oO][nN]*|*[jJ][aA][vV][aA][sS][cC][rR][iI][pP][tT]*) need=1;; esac",
              f'if [ -n "$need" ] && [ -f "$o" ]; then echo {CONTENT}; base64 < "$o"; fi', "exit 0"]
    return "\n".join(lines) + "\n"

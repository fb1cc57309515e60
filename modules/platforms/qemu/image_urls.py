"""The urls of base images: which are accepted, how they are shown (never with a password), and the names
their files get in the cache."""
from __future__ import annotations

import hashlib
import re
import urllib.parse
import urllib.request
from pathlib import Path


def check_url(url: str, what: str = "url") -> str:
    """An http, https or file URL, else ValueError."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"the {what} is empty")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https", "file"):
        raise ValueError(f"{display_url(url)!r} is not an http://, https:// or file:/// url")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ValueError(f"{display_url(url)!r} names no host")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{url!r}: a file url names a local path, as file:///srv/image.qcow2")
        if not parts.path.startswith("/"):
            raise ValueError(f"{url!r}: a file url needs an absolute path, as file:///srv/image.qcow2")
    if not url_basename(url):
        raise ValueError(f"{display_url(url)!r} does not end with a file name")
    return url.strip()


def display_url(url: str) -> str:
    """The url without a user or password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=host))
    return url


def url_basename(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1]) if path else ""


def cache_name(url: str) -> str:
    """`<first 16 hex of sha256(url)>-<basename>`: unique per url, readable by humans."""
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9._+-]", "_", url_basename(url)).lstrip(".")[:100] or "image"
    return f"{key}-{readable}"


def local_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))

"""Base images fetched once into the cache: http(s) and file URLs, resumable, verified before named.

A download goes to `<images>/<name>.part` and gets its final name (an atomic
rename) only once its checksum matched, so a file with a final name is always
a whole, verified image. An interrupted download is continued with an HTTP
Range request (guarded by If-Range, so a changed file starts over). The digest
that was verified is kept beside the image (`<name>.verified`, with the size
and mtime it was computed for), so a cached image is trusted again without
reading it, until it is touched. A lock file per image keeps two builds, in
this process or another, from downloading the same file twice.

Only the standard library: urllib in a thread, with progress and log lines
handed back to the event loop.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from pathlib import Path
from typing import Callable

from engine.errors import BuildError
from engine.local_cache import file_lock
from modules.platforms.qemu.checksums import ALGORITHMS, ChecksumFile, Digest, digest_for, parse_checksum
from modules.platforms.qemu.image_urls import cache_name, check_url, display_url, local_path, url_basename

Progress = Callable[[str, int, "int | None"], None]
Log = Callable[[str], None]

CHUNK = 1 << 20
TIMEOUT = 30.0                 # seconds a connect or a read may stall
ATTEMPTS = 4                   # a dropped connection is resumed this many times in all
RETRY_DELAY = 1.0              # seconds before the first resume; doubled each time, at most 10
CHECKSUM_FILE_LIMIT = 16 << 20
USER_AGENT = "recipe (image builder)"
REPORT_INTERVAL = 0.25


# ---------------------------------------------------------------- threads

class _Reporter:
    """Progress and log calls from a worker thread, handed to the event loop (progress throttled)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, progress: Progress | None, log: Log | None):
        self.loop, self.progress, self.log_fn = loop, progress, log
        self.last = 0.0

    def __call__(self, phase: str, done: int, total: int | None, final: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if final or now - self.last >= REPORT_INTERVAL:
            self.last = now
            self.loop.call_soon_threadsafe(self.progress, phase, done, total)

    def log(self, message: str) -> None:
        if self.log_fn is not None:
            self.loop.call_soon_threadsafe(self.log_fn, message)


class Stopped(Exception):
    """The worker noticed the build was cancelled."""


async def in_thread(work: Callable[[threading.Event], object]) -> object:
    """Run work(stop) in a thread; on cancellation set stop and wait for the thread to notice."""
    stop = threading.Event()
    task = asyncio.ensure_future(asyncio.to_thread(work, stop))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()   # retrieved, so it is not reported as never retrieved
        raise


# ---------------------------------------------------------------- the cache

@dataclass(frozen=True)
class CacheEntry:
    """The files of one url in the images directory."""

    directory: Path
    name: str

    @property
    def final(self) -> Path:
        return self.directory / self.name

    @property
    def part(self) -> Path:
        return self.directory / f"{self.name}.part"

    @property
    def part_info(self) -> Path:
        return self.directory / f"{self.name}.part.json"

    @property
    def verified(self) -> Path:
        return self.directory / f"{self.name}.verified"

    @property
    def lock(self) -> Path:
        return self.directory / f"{self.name}.lock"

    def trusted_digests(self) -> dict[str, str]:
        """Digests recorded for the final file, if its size and mtime are still those recorded."""
        try:
            record = json.loads(self.verified.read_text())
            stat = self.final.stat()
        except (OSError, ValueError):
            return {}
        if not isinstance(record, dict) or record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
            return {}
        digests = record.get("digests")
        return {k: v for k, v in digests.items() if k in ALGORITHMS} if isinstance(digests, dict) else {}

    def record(self, digest: Digest, url: str, others: dict[str, str] | None = None) -> None:
        stat = self.final.stat()
        digests = {**(others or {}), digest.algorithm: digest.hexdigest}
        record = {"url": display_url(url), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "digests": digests}
        temporary = self.verified.with_name(self.verified.name + ".tmp")
        temporary.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(temporary, self.verified)

    def forget(self) -> None:
        for path in (self.final, self.verified):
            path.unlink(missing_ok=True)

    def discard_part(self) -> None:
        for path in (self.part, self.part_info):
            path.unlink(missing_ok=True)


def hash_file(path: Path, algorithm: str, report: Callable[[int], None] | None = None,
              stop: threading.Event | None = None) -> str:
    hasher = hashlib.new(algorithm)
    done = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            if stop is not None and stop.is_set():
                raise Stopped()
            hasher.update(chunk)
            done += len(chunk)
            if report:
                report(done)
    return hasher.hexdigest()


# ---------------------------------------------------------------- fetching

async def fetch_image(url: str, checksum: str | Digest | ChecksumFile, images_dir: Path,
                      progress: Progress | None = None, log: Log | None = None) -> Path:
    """The verified image at url, downloaded into images_dir unless it is there already."""
    url = check_url(url)
    wanted = parse_checksum(checksum) if isinstance(checksum, str) else checksum
    if isinstance(wanted, ChecksumFile):
        text = await fetch_text(wanted.url)
        wanted = digest_for(text, url_basename(url), source=f"checksum file {display_url(wanted.url)}")
    entry = CacheEntry(images_dir, cache_name(url))
    images_dir.mkdir(parents=True, exist_ok=True)
    async with file_lock(entry.lock, f"fetching {url_basename(url)}", log):
        loop = asyncio.get_running_loop()
        reporter = _Reporter(loop, progress, log)
        found = await in_thread(lambda stop: _cached(entry, wanted, url, reporter, stop))
        if found:
            return entry.final
        if log:
            log(f"downloading {display_url(url)} into {images_dir}")
        await in_thread(lambda stop: _Transfer(url, entry, wanted, reporter, stop).run())
    return entry.final


async def fetch_text(url: str, limit: int = CHECKSUM_FILE_LIMIT) -> str:
    """A small text file (a checksum file) from an http(s) or file url."""
    url = check_url(url, what="checksum file url")

    def read(stop: threading.Event) -> str:
        try:
            if url.startswith("file:"):
                with open(local_path(url), "rb") as stream:
                    data = stream.read(limit + 1)
            else:
                request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
                with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                    data = response.read(limit + 1)
        except (OSError, HTTPException) as exc:
            raise BuildError(f"cannot read the checksum file {display_url(url)}: {_reason(exc)}",
                             hint="check the checksum: file:<url>, or give the digest itself (sha256:<hex>)") from None
        if len(data) > limit:
            raise BuildError(f"{display_url(url)} is larger than {limit >> 20} MiB: not a checksum file",
                             hint="checksum: file: takes the url of a SHA256SUMS-style file")
        return data.decode("utf-8", errors="replace")

    return await in_thread(read)  # type: ignore[return-value]


def _cached(entry: CacheEntry, wanted: Digest, url: str, reporter: _Reporter, stop: threading.Event) -> bool:
    """Whether the final file is there and is the wanted image; a wrong one is removed."""
    if not entry.final.exists():
        entry.verified.unlink(missing_ok=True)
        return False
    trusted = entry.trusted_digests()
    known = trusted.get(wanted.algorithm)
    if known is None:
        total = entry.final.stat().st_size
        reporter.log(f"verifying the cached {entry.final.name}")
        known = hash_file(entry.final, wanted.algorithm, lambda done: reporter("verify", done, total), stop)
        reporter("verify", total, total, final=True)
    if known == wanted.hexdigest:
        if trusted.get(wanted.algorithm) != known:
            entry.record(wanted, url, trusted)
        return True
    reporter.log(f"the cached {entry.final.name} has another checksum ({wanted.algorithm}:{known[:16]}...); "
                 "downloading it again")
    entry.forget()
    return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename}"
    return str(exc) or type(exc).__name__


class _Transfer:
    """One download into entry.part, resumed where it stopped, verified, then renamed."""

    def __init__(self, url: str, entry: CacheEntry, wanted: Digest, report: _Reporter, stop: threading.Event):
        self.url, self.entry, self.wanted, self.report, self.stop = url, entry, wanted, report, stop
        self.hasher = wanted.hasher()
        self.hashed = 0           # bytes of the .part file fed to the hasher
        self.total: int | None = None

    def run(self) -> None:
        self._download_with_retries()
        actual = self.hasher.hexdigest()
        if actual != self.wanted.hexdigest:
            self.entry.discard_part()
            raise BuildError(
                f"the download of {display_url(self.url)} does not match its checksum: expected "
                f"{self.wanted}, got {self.wanted.algorithm}:{actual}",
                hint="the file changed upstream or the checksum in the recipe is wrong; the download was "
                     "deleted and nothing was cached")
        os.replace(self.entry.part, self.entry.final)
        self.entry.part_info.unlink(missing_ok=True)
        self.entry.record(self.wanted, self.url)

    # -- the loop over attempts

    def _download_with_retries(self) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self.url.startswith("file:"):
                    self._copy_local()
                else:
                    self._download_http()
                return
            except Stopped:
                raise
            except BuildError:
                raise
            except (OSError, HTTPException) as exc:
                if isinstance(exc, urllib.error.HTTPError) and exc.code < 500 and exc.code != 408:
                    raise self._failure(exc) from None
                if isinstance(exc, FileNotFoundError) or attempt == ATTEMPTS:
                    raise self._failure(exc) from None
                self.report.log(f"download of {url_basename(self.url)} interrupted ({_reason(exc)}); "
                                f"resuming (attempt {attempt + 1} of {ATTEMPTS})")
                if self.stop.wait(min(RETRY_DELAY * 2 ** (attempt - 1), 10.0)):
                    raise Stopped() from None

    def _failure(self, exc: BaseException) -> BuildError:
        kept = self.entry.part.exists() and self.entry.part.stat().st_size > 0
        return BuildError(f"cannot download {display_url(self.url)}: {_reason(exc)}",
                          hint="check the url and the network" +
                               ("; what was downloaded is kept and resumed next time" if kept else ""))

    # -- the .part file

    def _offset(self) -> int:
        """Bytes already in .part, all of them fed to the hasher."""
        try:
            size = self.entry.part.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < self.hashed:   # shorter than what was hashed: start again
            self._restart()
            return 0
        if size > self.hashed:
            with open(self.entry.part, "rb") as stream:
                stream.seek(self.hashed)
                while self.hashed < size:
                    chunk = stream.read(min(CHUNK, size - self.hashed))
                    if not chunk:
                        break
                    if self.stop.is_set():
                        raise Stopped()
                    self.hasher.update(chunk)
                    self.hashed += len(chunk)
                    self.report("verify", self.hashed, size)
        return self.hashed

    def _restart(self) -> None:
        self.entry.discard_part()
        self.hasher = self.wanted.hasher()
        self.hashed = 0

    def _write(self, stream, mode: str, done: int) -> None:
        """Copy stream (a file or response) into .part, hashing as it goes."""
        read = getattr(stream, "read1", stream.read)
        with open(self.entry.part, mode) as out:
            while True:
                if self.stop.is_set():
                    raise Stopped()
                chunk = read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                self.hasher.update(chunk)
                self.hashed += len(chunk)
                done += len(chunk)
                self.report("download", done, self.total)
            out.flush()
            os.fsync(out.fileno())
        self.report("download", done, self.total, final=True)

    # -- file urls

    def _copy_local(self) -> None:
        source = local_path(self.url)
        size = source.stat().st_size
        self.total = size
        offset = self._offset()
        if offset > size:
            self._restart()
            offset = 0
        with open(source, "rb") as stream:
            stream.seek(offset)
            self._write(stream, "ab" if offset else "wb", offset)

    # -- http(s)

    def _download_http(self) -> None:
        offset = self._offset()
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        validator = self._validator() if offset else None
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        request = urllib.request.Request(self.url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=TIMEOUT)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                total = _content_range_total(exc.headers.get("Content-Range", ""))
                exc.close()
                if total == offset:      # the .part was whole already
                    self.total = total
                    return
                self.report.log(f"the server refused to resume {url_basename(self.url)}; starting again")
                self._restart()
                return self._download_http()
            raise
        with response:
            if offset and response.status == 206:
                start, total = _content_range(response.headers.get("Content-Range", ""))
                if start != offset:
                    raise HTTPException(f"the server resumed at byte {start}, not {offset}")
                self.total = total
                self.report.log(f"resuming {url_basename(self.url)} at {offset >> 20} MiB")
                self._write(response, "ab", offset)
            else:
                if offset:
                    self.report.log(f"the server cannot resume {url_basename(self.url)}; starting again")
                    self._restart()
                length = response.headers.get("Content-Length")
                self.total = int(length) if length and length.isdigit() else None
                self._save_validator(response.headers)
                self._write(response, "wb", 0)
        if self.total is not None and self.hashed < self.total:
            raise HTTPException(f"the connection closed after {self.hashed} of {self.total} bytes")

    def _validator(self) -> str | None:
        """The ETag (strong only) or Last-Modified the .part was started with."""
        try:
            info = json.loads(self.entry.part_info.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or info.get("url") != self.url:
            return None
        etag = info.get("etag")
        if isinstance(etag, str) and etag and not etag.startswith("W/"):
            return etag
        modified = info.get("last_modified")
        if isinstance(modified, str) and _http_date(modified):
            return modified
        return None

    def _save_validator(self, headers) -> None:
        info = {"url": self.url, "etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
        self.entry.part_info.write_text(json.dumps(info) + "\n")


def _http_date(text: str) -> bool:
    try:
        parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return False
    return True


def _content_range(header: str) -> tuple[int, int | None]:
    """(first byte, total or None) of `bytes <first>-<last>/<total|*>`."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", header or "")
    if not match:
        raise HTTPException(f"a partial answer without a valid Content-Range ({header!r})")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _content_range_total(header: str) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", header or "")
    return int(match.group(1)) if match else None

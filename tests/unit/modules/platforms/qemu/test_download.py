"""Downloads into the image cache: checksums, names, resume over a real HTTP server, file urls, locks."""
from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from engine.errors import BuildError
from modules.platforms.qemu import download
from modules.platforms.qemu.download import CacheEntry, fetch_image
from modules.platforms.qemu.image_urls import cache_name
from tests.unit.modules.platforms.qemu.range_server import RangeServer, Served

DATA = os.urandom(3 * 1024 * 1024 + 12345)
SHA256 = hashlib.sha256(DATA).hexdigest()
SHA512 = hashlib.sha512(DATA).hexdigest()


@pytest.fixture
def server():
    running = RangeServer().start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch):
    monkeypatch.setattr(download, "RETRY_DELAY", 0.0)


def fetch(url, checksum, images, **kwargs):
    return asyncio.run(fetch_image(url, checksum, images, **kwargs))


def final_names(images):
    """Files that look like finished images (no .part, no bookkeeping)."""
    return sorted(p.name for p in images.iterdir()
                  if not p.name.endswith((".part", ".part.json", ".lock", ".verified", ".tmp")))


# ---------------------------------------------------------------- http

def test_download_reports_progress_and_verifies(server, tmp_path):
    server.files["/img.qcow2"] = Served(DATA)
    seen = []
    path = fetch(server.url("/img.qcow2"), "sha256:" + SHA256, tmp_path,
                 progress=lambda phase, done, total: seen.append((phase, done, total)))
    assert path == tmp_path / cache_name(server.url("/img.qcow2"))
    assert path.read_bytes() == DATA
    assert seen[-1] == ("download", len(DATA), len(DATA))
    assert all(phase == "download" and total == len(DATA) for phase, _, total in seen)
    assert final_names(tmp_path) == [path.name]
    assert not CacheEntry(tmp_path, path.name).part.exists()


def test_a_dropped_connection_is_resumed_with_a_range_request(server, tmp_path):
    server.files["/img.qcow2"] = Served(DATA, cut_after=1_000_000)
    logs = []
    path = fetch(server.url("/img.qcow2"), "sha256:" + SHA256, tmp_path, log=logs.append)
    assert path.read_bytes() == DATA
    first, second = server.gets("/img.qcow2")
    assert first.status == 200 and first.sent == 1_000_000
    assert second.headers["Range"] == "bytes=1000000-" and second.headers["If-Range"] == '"v1"'
    assert second.status == 206 and second.sent == len(DATA) - 1_000_000
    assert any("resuming" in line for line in logs)


def test_a_part_left_by_an_earlier_run_is_continued(server, tmp_path):
    url = server.url("/img.qcow2")
    server.files["/img.qcow2"] = Served(DATA, cut_after=2_000_000)
    download.ATTEMPTS, saved = 1, download.ATTEMPTS
    try:
        with pytest.raises(BuildError) as error:
            fetch(url, "sha256:" + SHA256, tmp_path)
    finally:
        download.ATTEMPTS = saved
    assert "kept and resumed next time" in error.value.hint
    entry = CacheEntry(tmp_path, cache_name(url))
    assert entry.part.stat().st_size == 2_000_000 and final_names(tmp_path) == []
    path = fetch(url, "sha256:" + SHA256, tmp_path)
    assert path.read_bytes() == DATA
    assert server.gets("/img.qcow2")[-1].headers["Range"] == "bytes=2000000-"
    assert server.gets("/img.qcow2")[-1].sent == len(DATA) - 2_000_000


def test_a_changed_file_starts_over(server, tmp_path):
    url = server.url("/img.qcow2")
    entry = CacheEntry(tmp_path, cache_name(url))
    tmp_path.mkdir(exist_ok=True)
    entry.part.write_bytes(b"x" * 500_000)     # the start of an older version
    entry.part_info.write_text('{"url": "%s", "etag": "\\"v0\\""}' % url)
    server.files["/img.qcow2"] = Served(DATA, etag='"v1"')
    assert fetch(url, "sha256:" + SHA256, tmp_path).read_bytes() == DATA
    request, = server.gets("/img.qcow2")
    assert request.headers["If-Range"] == '"v0"' and request.status == 200


def test_a_server_without_ranges_starts_over(server, tmp_path):
    url = server.url("/img.qcow2")
    server.files["/img.qcow2"] = Served(DATA, ranges=False, cut_after=1_500_000)
    assert fetch(url, "sha256:" + SHA256, tmp_path).read_bytes() == DATA
    assert [r.status for r in server.gets("/img.qcow2")] == [200, 200]


def test_a_whole_part_is_finished_without_downloading(server, tmp_path):
    url = server.url("/img.qcow2")
    entry = CacheEntry(tmp_path, cache_name(url))
    entry.part.write_bytes(DATA)
    server.files["/img.qcow2"] = Served(DATA)
    assert fetch(url, "sha256:" + SHA256, tmp_path).read_bytes() == DATA
    assert [r.status for r in server.gets("/img.qcow2")] == [416]


def test_checksum_mismatch_deletes_the_download_and_names_nothing(server, tmp_path):
    server.files["/img.qcow2"] = Served(DATA)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(BuildError) as error:
        fetch(server.url("/img.qcow2"), wrong, tmp_path)
    assert "does not match its checksum" in error.value.message
    assert f"expected {wrong}, got sha256:{SHA256}" in error.value.message
    assert "deleted" in error.value.hint
    assert final_names(tmp_path) == []
    assert not list(tmp_path.glob("*.part"))


def test_http_errors_are_build_errors_with_a_hint(server, tmp_path):
    with pytest.raises(BuildError) as error:
        fetch(server.url("/missing.qcow2"), "sha256:" + SHA256, tmp_path)
    assert "HTTP 404" in error.value.message and error.value.hint
    assert len(server.gets("/missing.qcow2")) == 1      # a 404 is not retried
    server.files["/flaky.qcow2"] = Served(DATA, status=503)
    with pytest.raises(BuildError, match="HTTP 503"):
        fetch(server.url("/flaky.qcow2"), "sha256:" + SHA256, tmp_path)
    assert len(server.gets("/flaky.qcow2")) == download.ATTEMPTS


def test_a_cached_image_is_trusted_by_size_and_mtime(server, tmp_path, monkeypatch):
    url = server.url("/img.qcow2")
    server.files["/img.qcow2"] = Served(DATA)
    path = fetch(url, "sha256:" + SHA256, tmp_path)
    hashed = []
    real_hash = download.hash_file
    monkeypatch.setattr(download, "hash_file", lambda *a, **k: hashed.append(a[0]) or real_hash(*a, **k))
    assert fetch(url, "sha256:" + SHA256, tmp_path) == path
    assert hashed == [] and len(server.gets("/img.qcow2")) == 1
    os.utime(path, ns=(1, 1))            # touched: verified again (by reading it), not downloaded
    assert fetch(url, "sha256:" + SHA256, tmp_path) == path
    assert hashed == [path] and len(server.gets("/img.qcow2")) == 1
    assert fetch(url, "sha512:" + SHA512, tmp_path) == path     # another algorithm: computed once, then kept
    assert fetch(url, "sha512:" + SHA512, tmp_path) == path
    assert len(hashed) == 2


def test_a_corrupted_cached_image_is_downloaded_again(server, tmp_path):
    url = server.url("/img.qcow2")
    server.files["/img.qcow2"] = Served(DATA)
    path = fetch(url, "sha256:" + SHA256, tmp_path)
    with open(path, "r+b") as stream:
        stream.write(b"corrupt")
    assert fetch(url, "sha256:" + SHA256, tmp_path).read_bytes() == DATA
    assert len(server.gets("/img.qcow2")) == 2


def test_concurrent_builds_download_once(server, tmp_path):
    url = server.url("/img.qcow2")
    server.files["/img.qcow2"] = Served(DATA, chunk_delay=0.005)

    async def both():
        return await asyncio.gather(fetch_image(url, "sha256:" + SHA256, tmp_path),
                                    fetch_image(url, "sha256:" + SHA256, tmp_path))

    first, second = asyncio.run(both())
    assert first == second and first.read_bytes() == DATA
    assert len(server.gets("/img.qcow2")) == 1


def test_cancelling_stops_the_download_and_keeps_the_part(server, tmp_path):
    url = server.url("/img.qcow2")
    server.files["/img.qcow2"] = Served(DATA, chunk_delay=0.02)

    async def cancel_midway():
        task = asyncio.ensure_future(fetch_image(url, "sha256:" + SHA256, tmp_path))
        entry = CacheEntry(tmp_path, cache_name(url))
        while not (entry.part.exists() and entry.part.stat().st_size > 200_000):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return entry

    entry = asyncio.run(cancel_midway())
    assert 0 < entry.part.stat().st_size < len(DATA)
    assert final_names(tmp_path) == []
    server.files["/img.qcow2"].chunk_delay = 0
    assert fetch(url, "sha256:" + SHA256, tmp_path).read_bytes() == DATA     # the lock was released
    assert server.gets("/img.qcow2")[-1].status == 206


def test_checksum_file_over_http(server, tmp_path):
    server.files["/images/img.qcow2"] = Served(DATA)
    server.files["/images/SHA512SUMS"] = Served(f"{SHA512}  img.qcow2\n{'c' * 128}  other.qcow2\n".encode())
    path = fetch(server.url("/images/img.qcow2"), "file:" + server.url("/images/SHA512SUMS"), tmp_path)
    assert path.read_bytes() == DATA
    with pytest.raises(BuildError, match="cannot read the checksum file.*HTTP 404"):
        fetch(server.url("/images/img.qcow2"), "file:" + server.url("/nope/SHA512SUMS"), tmp_path / "other")


# ---------------------------------------------------------------- file urls

def test_file_urls_are_copied_into_the_cache_and_verified(tmp_path):
    source = tmp_path / "src" / "my image.raw"
    source.parent.mkdir()
    source.write_bytes(DATA)
    sums = tmp_path / "src" / "SHA256SUMS"
    sums.write_text(f"{SHA256} *my image.raw\n")
    images = tmp_path / "images"
    url = source.as_uri()
    seen = []
    path = fetch(url, f"file:{sums.as_uri()}", images, progress=lambda *args: seen.append(args))
    assert path.parent == images and path.name.endswith("-my_image.raw")
    assert path.read_bytes() == DATA and seen[-1] == ("download", len(DATA), len(DATA))
    assert fetch(url, "sha256:" + SHA256, images) == path


def test_a_file_url_part_is_resumed(tmp_path):
    source = tmp_path / "img.qcow2"
    source.write_bytes(DATA)
    images = tmp_path / "images"
    images.mkdir()
    entry = CacheEntry(images, cache_name(source.as_uri()))
    entry.part.write_bytes(DATA[:1_234_567])
    seen = []
    fetch(source.as_uri(), "sha256:" + SHA256, images, progress=lambda *args: seen.append(args))
    assert entry.final.read_bytes() == DATA
    assert any(phase == "verify" for phase, *_ in seen)
    assert min(done for phase, done, _ in seen if phase == "download") > 1_234_567


def test_a_missing_file_url_is_a_build_error(tmp_path):
    with pytest.raises(BuildError, match="no such file"):
        fetch((tmp_path / "nope.qcow2").as_uri(), "sha256:" + SHA256, tmp_path / "images")


def test_file_url_checksum_mismatch_names_nothing(tmp_path):
    source = tmp_path / "img.qcow2"
    source.write_bytes(DATA)
    images = tmp_path / "images"
    with pytest.raises(BuildError, match="does not match"):
        fetch(source.as_uri(), "sha512:" + "1" * 128, images)
    assert final_names(images) == [] and not list(images.glob("*.part"))

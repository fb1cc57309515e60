"""The `base:` option: its schema (every error, with a path and a hint), parsing, the cache dir, resolution."""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import BuildError
from engine.recipe.schema import strict, validate
from engine.local_cache import default_cache_dir
from modules.platforms.qemu.base import (BASE_SCHEMA, BootstrapBase, PathBase, ResolvedBase, UrlBase,
                                         parse_base, parse_size, resolve_base)

SHA = "sha256:" + "ab" * 32
SOURCE = strict({"base": BASE_SCHEMA}, what="option")


def problems(base):
    """(path, message, hint) of every problem the schema finds in `base:`."""
    _, found = validate(SOURCE, {"base": base})
    return [(p.path, p.message, p.hint) for p in found]


def valid(base):
    value, found = validate(SOURCE, {"base": base})
    assert found == []
    return value["base"]


# ---------------------------------------------------------------- accepted shapes

def test_url_base():
    assert valid({"url": "https://example.org/a.qcow2", "checksum": SHA}) == {
        "url": "https://example.org/a.qcow2", "checksum": SHA}
    assert valid({"url": "file:///srv/a.raw", "checksum": "file:file:///srv/SHA256SUMS", "format": "raw"})
    assert valid({"url": "http://h:8080/x/a.img", "checksum": "sha512:" + "0" * 128})


def test_path_base():
    assert valid({"path": "images/a.qcow2"}) == {"path": "images/a.qcow2"}
    assert valid({"path": "/a.raw", "format": "raw"}) == {"path": "/a.raw", "format": "raw"}


def test_bootstrap_base_gets_its_defaults():
    defaults = {"distro": "debian", "suite": "bookworm", "packages": [], "mirror": "http://deb.debian.org/debian",
                "size": None}            # no size: the base is as small as its system (builds grow it)
    assert valid({"bootstrap": {}}) == {"bootstrap": defaults}
    assert valid({"bootstrap": None}) == {"bootstrap": defaults}
    assert parse_base(valid({"bootstrap": {}})) == BootstrapBase() and BootstrapBase().size is None
    assert valid({"bootstrap": {"distro": "debian", "suite": "trixie", "packages": ["curl", "nginx-light", "curl"],
                                "mirror": "http://mirror.example/debian/", "size": "8G"}}) == {
        "bootstrap": {"distro": "debian", "suite": "trixie", "packages": ["curl", "nginx-light"],
                      "mirror": "http://mirror.example/debian", "size": "8G"}}


# ---------------------------------------------------------------- errors

def test_exactly_one_kind():
    (path, message, hint), = problems({"url": "https://e/a.qcow2", "checksum": SHA, "path": "/a"})
    assert path == "base.path" and message == "give one of url, path, bootstrap or installer, not url and path"
    (path, message, hint), = problems({})
    assert path == "base" and "a url (with a checksum), a path, a bootstrap or an installer" in message and "bootstrap" in hint
    (path, message, hint), = problems({"ulr": "https://e/a.qcow2"})
    assert path == "base.ulr" and "did you mean 'url'?" == hint
    (path, message, hint), = problems("https://e/a.qcow2")
    assert message == "expected a mapping, got a string"


def test_url_base_errors_are_all_reported():
    found = problems({"url": "ftp://e/a.qcow2", "format": "qcow", "sha": 1})
    by_path = {path: (message, hint) for path, message, hint in found}
    assert set(by_path) == {"base.url", "base.format", "base.sha", "base.checksum"}
    assert "not an http://, https:// or file:/// url" in by_path["base.url"][0]
    assert by_path["base.format"][1] == "did you mean 'qcow2'?"
    assert by_path["base.sha"][0] == "unknown option 'sha'"
    assert by_path["base.checksum"] == ("a url base needs a checksum",
                                        "add checksum: sha256:<hex>, or checksum: file:<url of SHA256SUMS>")


@pytest.mark.parametrize("checksum, message", [
    ("sha256:abc", "a sha256 digest has 64 hex digits, this one has 3"),
    ("md5:" + "0" * 32, "is not a checksum"),
    ("file:ftp://e/SUMS", "not an http://, https:// or file:/// url"),
    (42, "a checksum is a string"),
])
def test_bad_checksums(checksum, message):
    (path, text, hint), = problems({"url": "https://e/a.qcow2", "checksum": checksum})
    assert path == "base.checksum" and message in text and "sha256:<64 hex digits>" in hint


@pytest.mark.parametrize("url, message", [
    ("https:///a.qcow2", "names no host"),
    ("file://host/a.qcow2", "names a local path"),
    ("https://example.org/", "does not end with a file name"),
    ("/srv/a.qcow2", "not an http://"),
    (["x"], "expected a url (a string), got a list"),
])
def test_bad_urls(url, message):
    (path, text, _), = problems({"url": url, "checksum": SHA})
    assert path == "base.url" and message in text


def test_bootstrap_errors_are_all_reported_with_their_paths():
    found = problems({"bootstrap": {"distro": "debain", "suite": "Bookworm", "packages": ["ok", "Bad Name", 3],
                                    "mirror": "deb.debian.org", "size": "1G", "extra": True}})
    by_path = {path: (message, hint) for path, message, hint in found}
    assert set(by_path) == {"base.bootstrap.distro", "base.bootstrap.suite", "base.bootstrap.packages[1]",
                            "base.bootstrap.packages[2]", "base.bootstrap.mirror", "base.bootstrap.size",
                            "base.bootstrap.extra"}
    assert by_path["base.bootstrap.distro"][1] == "did you mean 'debian'?"
    assert "too small" in by_path["base.bootstrap.size"][0]
    assert "mirror url" in by_path["base.bootstrap.mirror"][0]
    (path, message, _), = problems({"bootstrap": {}, "format": "qcow2"})
    assert path == "base.format" and message == "unknown option 'format'"
    (path, message, _), = problems({"bootstrap": "debian"})
    assert path == "base.bootstrap" and "expected a mapping" in message


def test_parse_size():
    assert parse_size("4G") == 4 << 30
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("2t") == 2 << 40
    assert parse_size(4096) == 4096
    assert parse_size("1.5M") == 3 << 19          # fractions, as qemu-img takes them (disk_size: 1.5G)
    assert parse_size("512") == 512
    for bad in ("4.5.1G", "4X", "", "G", True):
        with pytest.raises(ValueError):
            parse_size(bad)


# ---------------------------------------------------------------- parsing

def test_parse_base(tmp_path):
    assert parse_base(valid({"url": "https://e/a.qcow2", "checksum": SHA})) == UrlBase("https://e/a.qcow2", SHA)
    assert parse_base(valid({"path": "a.qcow2"}), relative_to=tmp_path) == PathBase(tmp_path / "a.qcow2")
    assert parse_base(valid({"path": "/x/a.raw", "format": "raw"})) == PathBase(Path("/x/a.raw"), "raw")
    assert parse_base(valid({"path": "~/a.qcow2"})).path == Path.home() / "a.qcow2"
    parsed = parse_base(valid({"bootstrap": {"packages": ["curl", "jq"], "size": "6G"}}))
    assert parsed == BootstrapBase(packages=("curl", "jq"), size="6G")
    assert parsed.size_bytes == 6 << 30
    with pytest.raises(Exception):
        parsed.suite = "sid"     # frozen


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RECIPE_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "recipe"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "recipe"


# ---------------------------------------------------------------- resolution

def qemu_img(*args):
    subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True)


def resolve(base, cache):
    return asyncio.run(resolve_base(base, cache))


def test_path_bases_are_detected(tmp_path):
    qemu_img("create", "-q", "-f", "qcow2", tmp_path / "a.qcow2", "64M")
    qemu_img("create", "-q", "-f", "raw", tmp_path / "a.raw", "16M")
    resolved = resolve(PathBase(tmp_path / "a.qcow2"), tmp_path / "cache")
    assert resolved == ResolvedBase(tmp_path / "a.qcow2", "qcow2") and resolved.virtual_size == 64 << 20
    assert resolve(PathBase(tmp_path / "a.raw", "raw"), tmp_path / "cache").format == "raw"
    assert not (tmp_path / "cache").exists()        # a path is used where it is, never copied


def test_path_base_errors(tmp_path):
    qemu_img("create", "-q", "-f", "qcow2", tmp_path / "a.qcow2", "64M")
    with pytest.raises(BuildError) as error:
        resolve(PathBase(tmp_path / "a.qcow2", "raw"), tmp_path)
    assert error.value.message.endswith("is a qcow2 image, but format: raw was given")
    with pytest.raises(BuildError, match="does not exist"):
        resolve(PathBase(tmp_path / "nope.qcow2"), tmp_path)
    qemu_img("create", "-q", "-f", "vmdk", tmp_path / "a.vmdk", "16M")      # an appliance's disk is a fine base
    assert resolve(PathBase(tmp_path / "a.vmdk"), tmp_path).format == "vmdk"
    qemu_img("create", "-q", "-f", "vpc", tmp_path / "a.vhd", "16M")
    with pytest.raises(BuildError) as error:
        resolve(PathBase(tmp_path / "a.vhd"), tmp_path)
    assert "vpc format" in error.value.message and "qemu-img convert" in error.value.hint
    (tmp_path / "a.qcow2.gz").write_bytes(gzip.compress((tmp_path / "a.qcow2").read_bytes()))
    with pytest.raises(BuildError, match="gzip-compressed"):
        resolve(PathBase(tmp_path / "a.qcow2.gz"), tmp_path)


def test_url_bases_are_downloaded_into_the_images_cache(tmp_path):
    qemu_img("create", "-q", "-f", "qcow2", tmp_path / "a.qcow2", "64M")
    digest = hashlib.sha256((tmp_path / "a.qcow2").read_bytes()).hexdigest()
    resolved = resolve(UrlBase((tmp_path / "a.qcow2").as_uri(), "sha256:" + digest), tmp_path / "cache")
    assert resolved.format == "qcow2" and resolved.path.parent == tmp_path / "cache" / "images"


def test_a_downloaded_image_with_a_backing_file_is_refused(tmp_path):
    qemu_img("create", "-q", "-f", "qcow2", tmp_path / "a.qcow2", "64M")
    qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", tmp_path / "a.qcow2", tmp_path / "b.qcow2")
    digest = hashlib.sha256((tmp_path / "b.qcow2").read_bytes()).hexdigest()
    with pytest.raises(BuildError, match="refers to a backing file"):
        resolve(UrlBase((tmp_path / "b.qcow2").as_uri(), "sha256:" + digest), tmp_path / "cache")
    assert resolve(PathBase(tmp_path / "b.qcow2"), tmp_path / "cache").format == "qcow2"   # a local one may


def test_a_cached_bootstrap_image_is_used_as_it_is(tmp_path, monkeypatch):
    from modules.platforms.qemu import bootstrap
    wanted = BootstrapBase(packages=("curl",))
    image = bootstrap.image_path(wanted, tmp_path)
    image.parent.mkdir(parents=True)
    qemu_img("create", "-q", "-f", "qcow2", image, "64M")
    monkeypatch.setattr(bootstrap, "check_host", lambda *a: pytest.fail("a cached image needs no tools"))
    assert resolve(wanted, tmp_path) == ResolvedBase(image, "qcow2")


def test_module_has_no_side_effects_at_import(tmp_path):
    code = ("import os, sys; sys.path.insert(0, os.getcwd()); "
            "import modules.platforms.qemu.base, modules.platforms.qemu.download, modules.platforms.qemu.bootstrap")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   cwd=Path(__file__).resolve().parents[5])
    assert list(tmp_path.iterdir()) == []

"""checksum: values and checksum files: digests, the line for an image's name, and errors that say what is wrong."""
from __future__ import annotations

import hashlib

import pytest

from engine.errors import BuildError
from modules.platforms.qemu.checksums import (ChecksumFile, Digest, checksum_entries, digest_for, parse_checksum,
                                              parse_digest)

SHA256 = hashlib.sha256(b"an image").hexdigest()
SHA512 = hashlib.sha512(b"an image").hexdigest()


def test_parse_digest_accepts_sha256_and_sha512_in_any_case():
    assert parse_digest("sha256:" + SHA256.upper()) == Digest("sha256", SHA256)
    assert parse_digest("SHA512:" + SHA512) == Digest("sha512", SHA512)
    assert str(parse_digest("sha256:" + SHA256)) == "sha256:" + SHA256


@pytest.mark.parametrize("text, message", [
    ("md5:" + "0" * 32, "not a checksum"),
    (SHA256, "not a checksum"),
    ("sha256:" + "0" * 63, "64 hex digits, this one has 63"),
    ("sha512:" + SHA256, "128 hex digits"),
    ("sha256:" + "g" * 64, "not hexadecimal"),
])
def test_parse_digest_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_digest(text)


def test_parse_checksum_file_form():
    assert parse_checksum("file:https://example.org/SHA256SUMS") == ChecksumFile("https://example.org/SHA256SUMS")
    with pytest.raises(ValueError, match="not an http"):
        parse_checksum("file:ftp://example.org/SHA256SUMS")


def test_checksum_file_formats():
    text = "\n".join([
        "-----BEGIN PGP SIGNED MESSAGE-----",
        "Hash: SHA256",
        "",
        "# a comment",
        f"{SHA256}  debian-12-genericcloud-amd64.qcow2",
        f"{'a' * 64} *noble-server-cloudimg-amd64.img",
        f"SHA256 (Fedora-Cloud-Base.qcow2) = {'b' * 64}",
        f"{SHA512}  ./sub/dir/big.raw",
        "garbage line",
    ])
    entries = dict(checksum_entries(text))
    assert entries["debian-12-genericcloud-amd64.qcow2"] == Digest("sha256", SHA256)
    assert entries["noble-server-cloudimg-amd64.img"] == Digest("sha256", "a" * 64)
    assert entries["Fedora-Cloud-Base.qcow2"] == Digest("sha256", "b" * 64)
    assert digest_for(text, "big.raw") == Digest("sha512", SHA512)


def test_checksum_file_without_the_name_hints_at_a_close_one():
    with pytest.raises(BuildError) as error:
        digest_for(f"{SHA256}  debian-12-genericcloud-amd64.qcow2\n", "debian-12-genericloud-amd64.qcow2")
    assert "no checksum for 'debian-12-genericloud-amd64.qcow2'" in error.value.message
    assert "did you mean 'debian-12-genericcloud-amd64.qcow2'" in error.value.hint


def test_checksum_file_with_two_different_digests_for_a_name_is_an_error():
    with pytest.raises(BuildError, match="2 different checksums"):
        digest_for(f"{'a' * 64}  x.img\n{'b' * 64}  sub/x.img\n", "x.img")

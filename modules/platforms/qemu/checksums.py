"""What `checksum:` of a base image says, and the checksum files (SHA256SUMS and the like) it may point at.

`sha256:<hex>` and `sha512:<hex>` are digests; `file:<url>` is a checksum file
whose line for the image's name gives the digest. Both coreutils and BSD
lines are read.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from engine.errors import BuildError
from engine.recipe.schema import did_you_mean
from modules.platforms.qemu.image_urls import check_url

ALGORITHMS = {"sha256": 64, "sha512": 128}     # hex digits of each


@dataclass(frozen=True)
class Digest:
    """An expected digest: `sha256:<hex>` or `sha512:<hex>`."""

    algorithm: str
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"

    def hasher(self) -> "hashlib._Hash":
        return hashlib.new(self.algorithm)


@dataclass(frozen=True)
class ChecksumFile:
    """`file:<url>`: the digest is the line for the image's name in a SHA256SUMS-style file."""

    url: str

    def __str__(self) -> str:
        return f"file:{self.url}"


def parse_digest(text: str) -> Digest:
    """`sha256:<64 hex>` or `sha512:<128 hex>`; ValueError says what is wrong."""
    algorithm, sep, hexdigest = str(text).strip().partition(":")
    algorithm = algorithm.lower()
    if not sep or algorithm not in ALGORITHMS:
        raise ValueError(f"{text!r} is not a checksum: expected sha256:<hex>, sha512:<hex> or file:<url>")
    hexdigest = hexdigest.strip().lower()
    if not re.fullmatch(r"[0-9a-f]+", hexdigest or "-"):
        raise ValueError(f"the {algorithm} digest {hexdigest!r} is not hexadecimal")
    if len(hexdigest) != ALGORITHMS[algorithm]:
        raise ValueError(f"a {algorithm} digest has {ALGORITHMS[algorithm]} hex digits, this one has {len(hexdigest)}")
    return Digest(algorithm, hexdigest)


def parse_checksum(text: str) -> Digest | ChecksumFile:
    """What `checksum:` says: a digest, or `file:<url>` of a checksum file."""
    if not isinstance(text, str):
        raise ValueError(f"a checksum is a string such as sha256:<hex>, not {type(text).__name__}")
    if text.strip().lower().startswith("file:"):
        url = text.strip()[len("file:"):]
        check_url(url, what="checksum file url")
        return ChecksumFile(url)
    return parse_digest(text)


_GNU_LINE = re.compile(r"^\\?([0-9a-fA-F]{64}|[0-9a-fA-F]{128})\s[ *]?(.+)$")
_BSD_LINE = re.compile(r"^(SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$", re.IGNORECASE)


def checksum_entries(text: str) -> list[tuple[str, Digest]]:
    """Every (file name, digest) of a checksum file.

    Reads coreutils lines (`<hex>  name`, `<hex> *name`) and BSD lines
    (`SHA256 (name) = <hex>`); comments, PGP armour and other lines are skipped.
    """
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        gnu = _GNU_LINE.match(line)
        if gnu:
            hexdigest, name = gnu.group(1).lower(), gnu.group(2).strip()
            algorithm = "sha256" if len(hexdigest) == 64 else "sha512"
            entries.append((name, Digest(algorithm, hexdigest)))
            continue
        bsd = _BSD_LINE.match(line)
        if bsd and len(bsd.group(3)) == ALGORITHMS[bsd.group(1).lower()]:
            entries.append((bsd.group(2).strip(), Digest(bsd.group(1).lower(), bsd.group(3).lower())))
    return entries


def digest_for(text: str, name: str, source: str = "the checksum file") -> Digest:
    """The digest a checksum file gives for the file called name (compared by basename)."""
    entries = checksum_entries(text)
    found = {digest for entry, digest in entries if _basename(entry) == name}
    if not found:
        names = sorted({_basename(entry) for entry, _ in entries})
        hint = did_you_mean(name, names, "it lists: " + ", ".join(names[:8]) if names else "it has no checksum lines")
        raise BuildError(f"{source} has no checksum for {name!r}", hint=hint)
    if len(found) > 1:
        raise BuildError(f"{source} gives {len(found)} different checksums for {name!r}",
                         hint="use checksum: sha256:<hex> to say which file you mean")
    strongest = max(found, key=lambda d: ALGORITHMS[d.algorithm])
    return strongest


def _basename(name: str) -> str:
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]

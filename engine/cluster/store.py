"""Where a cluster build's artifacts go when it ends (the worker *delivers* them), and how the submitting machine
gets them into its own output folder (it *fetches* them).

Two stores: a folder on the worker (`recipe worker --output DIR`: artifacts stay in DIR/<run>/<build>/, read by a
submitter that shares the filesystem), and S3 (`recipe worker --store s3://bucket/prefix`: the build writes into a
local spool, its files are uploaded to s3://bucket/prefix/<run>/<build>/ and the spool copy removed). Either way a
fetched file gets its final name only once whole and checked against the SHA-256 the worker listed; a file
fetched from a folder is a copy, so the worker's stays as it was made.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Collection, Iterator, Protocol, Sequence

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from engine.artifacts.digest import CHUNK, sha256_file
from engine.errors import BuildError
from engine.local_cache import default_cache_dir

KINDS = ("folder", "s3")
SPOOL = "worker-spool"
S3_SCHEME = "s3://"
SHARE_HINT = "give workers --store s3://bucket/prefix, or share the folder (NFS) at the same path"
# lenient on purpose: S3-compatible stores (MinIO, Ceph) and legacy AWS buckets allow more than today's AWS rules
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")
_RETRIES = Config(retries={"max_attempts": 10, "mode": "standard"})
# what moving a file may raise, turned into a BuildError naming the file and the location
_TRANSFER_ERRORS = (OSError, BotoCoreError, ClientError, Boto3Error)


@dataclass(frozen=True)
class StoredFile:
    path: str        # POSIX, relative to the build folder
    size: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: dict) -> "StoredFile":
        try:
            made = cls(str(data["path"]), int(data["size"]), str(data["sha256"]))
        except (KeyError, TypeError, ValueError) as error:
            raise BuildError(f"a worker sent a malformed artifact entry {data!r}: {error}") from error
        _relative(made.path)
        return made


@dataclass(frozen=True)
class Location:
    kind: str        # "folder" | "s3"
    where: str       # absolute folder path on the worker, or s3://bucket/prefix/<run>/<build>
    worker: str      # the worker's name, for messages

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "worker": self.worker}

    @classmethod
    def from_json(cls, data: dict) -> "Location":
        """The location a worker sent; checked, since it comes over the wire."""
        try:
            made = cls(str(data["kind"]), str(data["where"]), str(data["worker"]))
        except (KeyError, TypeError) as error:
            raise BuildError(f"a worker sent a malformed artifact location {data!r}: {error}") from error
        if made.kind not in KINDS:
            raise BuildError(f"worker {made.worker} sent an artifact location of unknown kind {made.kind!r}")
        if made.kind == "folder" and not os.path.isabs(made.where):
            raise BuildError(f"worker {made.worker} sent a relative artifact folder {made.where!r}")
        if made.kind == "s3":
            _wire_s3(made)
        return made

    def __str__(self) -> str:
        return f"{self.where} on worker {self.worker}" if self.kind == "folder" else self.where


class Store(Protocol):
    root: Path          # where builds write, under a folder per run
    shown: str          # where finished artifacts go, for a person

    def spool(self, run_id: str) -> Path:
        """The folder a run's builds write into (RunOptions.output_dir); created."""

    def deliver(self, build_dir: Path, worker: str) -> tuple[Location, list[StoredFile]]:
        """Every regular file under build_dir, where the submitter finds it; build_dir missing: none."""


class FolderStore:
    """Artifacts stay on the worker, in <root>/<run>/<build>/ (Packer's habit: a builder's image is kept)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.shown = str(self.root)

    def spool(self, run_id: str) -> Path:
        folder = self.root / _name(run_id, "run id")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def deliver(self, build_dir: Path, worker: str) -> tuple[Location, list[StoredFile]]:
        return Location("folder", str(build_dir.resolve()), worker), inventory(build_dir)


class S3Store:
    """Builds write into a local spool; delivery uploads to s3://bucket/prefix/<run>/<build>/ and empties it.

    Endpoint, region and credentials are boto3's (AWS_ENDPOINT_URL, AWS_PROFILE, ...): never read here."""

    def __init__(self, url: str):
        self.bucket, self.prefix = parse_s3_url(url)
        self.root = default_cache_dir() / SPOOL
        self.shown = url

    @cached_property
    def _client(self) -> Any:
        # made on first use, not at construction: a worker may fork after opening its store
        return s3_client()

    def spool(self, run_id: str) -> Path:
        folder = self.root / _name(run_id, "run id")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def deliver(self, build_dir: Path, worker: str) -> tuple[Location, list[StoredFile]]:
        files = inventory(build_dir)
        key = _join(self.prefix, _name(build_dir.parent.name, "run id"), _name(build_dir.name, "build name"))
        location = Location("s3", f"{S3_SCHEME}{self.bucket}/{key}", worker)
        for stored in files:
            self._upload(build_dir, stored, key, location)
        _remove(build_dir, location)
        return location, files

    def _upload(self, build_dir: Path, stored: StoredFile, key: str, location: Location) -> None:
        # upload_file is boto3's managed transfer: multipart, in parallel, for big files
        try:
            self._client.upload_file(str(build_dir / stored.path), self.bucket, _join(key, stored.path),
                                     ExtraArgs={"Metadata": {"sha256": stored.sha256}})
        except _TRANSFER_ERRORS as error:
            raise BuildError(f"could not upload {stored.path} to {location}: {error}") from error


def open_store(output: Path | None, store: str | None) -> Store:
    """The worker's store: --store wins, else the --output folder (default ./output)."""
    if store:
        return S3Store(store)
    return FolderStore((output or Path("output")).resolve())


def s3_client() -> Any:
    # a session of its own: boto3's default session is not safe to share between threads
    return boto3.session.Session().client("s3", config=_RETRIES)


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket[/prefix] -> (bucket, prefix without leading, trailing or doubled slashes)."""
    if not url.startswith(S3_SCHEME):
        raise ValueError(f"{url!r} is not an S3 URL: expected s3://bucket or s3://bucket/prefix")
    bucket, _, prefix = url[len(S3_SCHEME):].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"{url!r}: {bucket!r} is not a bucket name (expected s3://bucket or s3://bucket/prefix)")
    parts = [part for part in prefix.split("/") if part]
    if any(part in (".", "..") for part in parts) or any(c in prefix for c in "?#\\\0"):
        raise ValueError(f"{url!r}: the prefix may not hold '.', '..', '?', '#', backslashes or NULs "
                         f"(expected s3://bucket or s3://bucket/prefix)")
    return bucket, "/".join(parts)


def inventory(build_dir: Path) -> list[StoredFile]:
    """Every regular file under build_dir, sorted, with size and SHA-256; none when the folder is missing
    (the build failed before making it). Symbolic links are not followed: what they point at is not the build's."""
    if not build_dir.exists():
        return []
    found = []
    for top, _folders, names in os.walk(build_dir, onerror=_raise):
        for name in names:
            path = Path(top) / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                found.append(StoredFile(path.relative_to(build_dir).as_posix(), info.st_size, sha256_file(path)))
    return sorted(found, key=lambda stored: stored.path)


def fetch(location: Location, files: Sequence[StoredFile], dest: Path, skip: Collection[str] = ()) -> list[Path]:
    """The files of a delivered build into dest (created), each checked; their local paths.

    skip: relative paths not to fetch (e.g. a build.log the submitter writes itself). A file already at dest
    with the same name is replaced (a rebuild)."""
    wanted = [(stored, _relative(stored.path)) for stored in files if stored.path not in skip]
    dest.mkdir(parents=True, exist_ok=True)
    if not wanted:
        return []
    get = _getter(location)
    return [_fetch_one(location, get, stored, relative, dest) for stored, relative in wanted]


# (the file's entry, its validated relative path, the temporary to write) -> None; the temporary whole and checked
Getter = Callable[[StoredFile, PurePosixPath, Path], None]


class _Corrupt(Exception):
    """What arrived is not what the worker listed."""


def _getter(location: Location) -> Getter:
    if location.kind == "folder":
        root = _readable_folder(location)
        return lambda stored, relative, temporary: _from_folder(root / relative, stored, temporary)
    if location.kind == "s3":
        bucket, key = _wire_s3(location)
        client = s3_client()
        return lambda stored, relative, temporary: _from_s3(client, bucket, _join(key, str(relative)), stored,
                                                            temporary)
    raise BuildError(f"artifact location of unknown kind {location.kind!r} from worker {location.worker}")


def _fetch_one(location: Location, get: Getter, stored: StoredFile, relative: PurePosixPath, dest: Path) -> Path:
    final = dest.joinpath(*relative.parts)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with _temporary(final) as temporary:
            get(stored, relative, temporary)
            os.replace(temporary, final)
    except (_Corrupt, *_TRANSFER_ERRORS) as error:
        raise BuildError(f"could not fetch {stored.path} from {location}: {error}") from error
    return final


@contextlib.contextmanager
def _temporary(final: Path) -> Iterator[Path]:
    """A temporary name beside final, gone afterwards whatever happened: a reader never sees half a file."""
    temporary = final.with_name(f".{final.name}.fetch-{os.getpid()}")
    temporary.unlink(missing_ok=True)         # left by an earlier fetch of a process with our pid, killed midway
    try:
        yield temporary
    finally:
        # after a successful os.replace it is gone, except when final already was the same inode (fetching a
        # folder into itself): rename(2) then leaves both names, and this extra link must go
        temporary.unlink(missing_ok=True)


def _readable_folder(location: Location) -> Path:
    root = Path(location.where)
    if not (root.is_dir() and os.access(root, os.R_OK | os.X_OK)):
        raise BuildError(f"the artifacts are on worker {location.worker} in {location.where}, which this machine "
                         f"cannot read", hint=SHARE_HINT)
    return root


def _from_folder(source: Path, stored: StoredFile, temporary: Path) -> None:
    # a copy, not a hard link: booting the fetched image in place must not change the one the worker keeps
    _copy_checked(source, temporary, stored)


def _copy_checked(source: Path, temporary: Path, stored: StoredFile) -> None:
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reader, temporary.open("xb") as writer:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    _check(stored, size, digest.hexdigest())


def _from_s3(client: Any, bucket: str, key: str, stored: StoredFile, temporary: Path) -> None:
    client.download_file(bucket, key, str(temporary))
    _check(stored, temporary.stat().st_size, _sha256(temporary))


def _sha256(path: Path) -> str:
    # not digest.sha256_file: its memory is keyed on (path, size, mtime), and a temporary rewritten within one
    # clock tick with the same size would be taken for the file it replaced
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check(stored: StoredFile, size: int, sha256: str) -> None:
    if size != stored.size:
        raise _Corrupt(f"{size} bytes arrived where the worker listed {stored.size}")
    if sha256 != stored.sha256:
        raise _Corrupt(f"its SHA-256 is {sha256} where the worker listed {stored.sha256}")


def _raise(error: OSError) -> None:
    # os.walk skips what it cannot read unless told otherwise: a delivery must not silently lose files
    raise error


def _remove(build_dir: Path, location: Location) -> None:
    try:
        shutil.rmtree(build_dir)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise BuildError(f"the artifacts are in {location}, but the local copy {build_dir} could not be removed: "
                         f"{error}") from error


def _wire_s3(location: Location) -> tuple[str, str]:
    try:
        return parse_s3_url(location.where)
    except ValueError as error:
        raise BuildError(f"worker {location.worker} sent a bad artifact location: {error}") from error


def _relative(path: str) -> PurePosixPath:
    """A relative path from the wire, refused unless it stays inside the folder it is relative to."""
    relative = PurePosixPath(path)
    if not path or "\0" in path or "\\" in path or relative.is_absolute() or ".." in relative.parts \
            or relative.parts in ((), (".",)):
        raise BuildError(f"refusing the artifact path {path!r}: it must be relative and stay inside its folder")
    return relative


def _name(text: str, what: str) -> str:
    """One component of a path or a key (a run id, a build name)."""
    if text in ("", ".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise BuildError(f"{text!r} is not a usable {what}")
    return text


def _join(*parts: str) -> str:
    return "/".join(part for part in parts if part)

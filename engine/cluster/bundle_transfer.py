"""A bundle through the broker: the submitter uploads it, a worker unpacks it (engine.cluster.bundle says what
a bundle holds).

`upload` stores each file's content once under `keys.blob(sha256)` (shared by every recipe and run that sends
the same bytes: a blob already there only has its expiry renewed) and then the manifest under
`keys.bundle(digest)`. A worker `materialize`s a digest into a folder of its cache, checking the manifest against
its digest and every blob against the manifest, and renames the folder into place only once it is whole.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator

from engine.cluster import keys
from engine.cluster.bundle import CHUNK, COMPLETE, EXECUTABLE, REGULAR, Bundle, BundleFile, read_chunks
from engine.errors import BuildError

if TYPE_CHECKING:
    import redis

BATCH_BYTES = 8 << 20           # small blobs go to and come from Redis in pipelines of about this many bytes
BATCH_KEYS = 512                # ... or of this many keys
_SHA256 = re.compile(r"[0-9a-f]{64}")


# -- upload ----------------------------------------------------------------------------------------


def upload(bundle: Bundle, client: "redis.Redis") -> None:
    """Store the bundle in the broker: the blobs it lacks, then the manifest; present blobs live a week more.

    Whether a blob is present is asked with a pipelined EXPIRE rather than EXISTS: it answers the same question
    and refreshes the expiry in one atomic step, so a blob cannot expire between the check and the refresh.
    The manifest goes last: a worker that finds it finds every blob it names.
    """
    by_digest = {f.sha256: f for f in bundle.files}     # the same content under two paths goes once
    missing = [by_digest[d] for d in _refresh(client, list(by_digest))]
    small = [f for f in missing if f.size <= CHUNK]
    for batch in _batches(small):
        pipe = client.pipeline(transaction=False)
        for file in batch:
            pipe.set(keys.blob(file.sha256), _small_content(bundle, file), ex=keys.BUNDLE_TTL)
        pipe.execute()
    for file in missing:
        if file.size > CHUNK:
            _upload_big(bundle, file, client)
    client.set(keys.bundle(bundle.digest), bundle.manifest(), ex=keys.BUNDLE_TTL)


def _refresh(client: "redis.Redis", digests: list[str]) -> list[str]:
    """The digests whose blob is not in Redis; the others' expiry pushed back to BUNDLE_TTL from now."""
    missing: list[str] = []
    for start in range(0, len(digests), BATCH_KEYS * 4):
        part = digests[start:start + BATCH_KEYS * 4]
        pipe = client.pipeline(transaction=False)
        for digest in part:
            pipe.expire(keys.blob(digest), keys.BUNDLE_TTL)
        missing += [digest for digest, present in zip(part, pipe.execute(), strict=True) if not present]
    return missing


def _batches(files: Iterable[BundleFile]) -> Iterator[list[BundleFile]]:
    """files grouped so that a pipeline carries about BATCH_BYTES or BATCH_KEYS at most."""
    batch: list[BundleFile] = []
    size = 0
    for file in files:
        if batch and (size + file.size > BATCH_BYTES or len(batch) >= BATCH_KEYS):
            yield batch
            batch, size = [], 0
        batch.append(file)
        size += file.size
    if batch:
        yield batch


def _small_content(bundle: Bundle, file: BundleFile) -> bytes:
    content = b"".join(read_chunks(bundle.root / file.path))
    if hashlib.sha256(content).hexdigest() != file.sha256:
        raise _changed(bundle, file)
    return content


def _upload_big(bundle: Bundle, file: BundleFile, client: "redis.Redis") -> None:
    """One big file, a chunk at a time, into a key of its own, renamed to the blob's name once whole and checked:
    a worker never reads half a blob, nor a blob whose file changed on the way."""
    partial = f"{keys.blob(file.sha256)}:upload:{uuid.uuid4().hex}"
    sha = hashlib.sha256()
    try:
        for index, chunk in enumerate(read_chunks(bundle.root / file.path)):
            sha.update(chunk)
            if index == 0:
                client.set(partial, chunk, ex=keys.BUNDLE_TTL)   # expires on its own if we die half way
            else:
                client.append(partial, chunk)
        if sha.hexdigest() != file.sha256:
            raise _changed(bundle, file)
        client.rename(partial, keys.blob(file.sha256))
        client.expire(keys.blob(file.sha256), keys.BUNDLE_TTL)
    finally:
        client.delete(partial)      # gone after the rename; left over after a failure


def _changed(bundle: Bundle, file: BundleFile) -> BuildError:
    return BuildError(f"{bundle.root / file.path} changed while the recipe's bundle was being sent",
                      hint="run again once the recipe's files stay still")


# -- materialize: the worker's side ----------------------------------------------------------------


def materialize(digest: str, client: "redis.Redis", cache_dir: Path) -> Path:
    """The local folder holding the bundle, cache_dir/<digest>/, fetched and checked unless already there.

    The files are written into a temporary sibling folder that is renamed into place once whole (with its
    COMPLETE marker written last): two processes fetching the same bundle at once each build their own copy,
    and the one whose rename loses throws its copy away and takes the winner's.
    """
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise BuildError(f"{digest!r} is not a bundle's digest (64 lowercase hexadecimal digits)")
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("materialize reads bytes: give it a Redis client made with decode_responses=False")
    target = cache_dir / digest
    if _complete(target):
        return target
    files = _manifest(digest, client)
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=cache_dir))
    try:
        _fetch_small(digest, [f for f in files if f.size <= CHUNK], client, work)
        for file in files:
            if file.size > CHUNK:
                _fetch_big(digest, file, client, work)
        (work / COMPLETE).write_bytes(b"")
        return _install(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)     # gone after a rename; a failed or losing copy otherwise


def _complete(folder: Path) -> bool:
    return (folder / COMPLETE).is_file()


def _manifest(digest: str, client: "redis.Redis") -> list[BundleFile]:
    data = client.get(keys.bundle(digest))
    if data is None:
        raise BuildError(f"bundle {digest} is not in the broker (expired after 7 days, or another broker)",
                         hint="submit the run again: the submitter sends the bundle with it")
    if hashlib.sha256(data).hexdigest() != digest:
        raise BuildError(f"bundle {digest}: its manifest in the broker does not match its digest",
                         hint="something other than recipe wrote to the broker's recipe: keys")
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise BuildError(f"bundle {digest}: its manifest is not JSON") from exc
    rows = document.get("files") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise BuildError(f"bundle {digest}: its manifest has no list of files")
    files = [_row(digest, row) for row in rows]
    _check_layout(digest, files)
    return files


def _row(digest: str, row: object) -> BundleFile:
    """One manifest row, every field checked: paths and modes come from the broker, not from us."""
    if not isinstance(row, list) or len(row) != 4:
        raise BuildError(f"bundle {digest}: a manifest row is not [path, sha256, size, mode]: {str(row)[:200]}")
    path, sha, size, mode = row
    if not isinstance(path, str) or not _safe_path(path):
        raise BuildError(f"bundle {digest}: the manifest names an unsafe path: {str(path)[:200]!r}",
                         hint="bundle paths are relative, without '..', '.', empty parts or NUL bytes")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise BuildError(f"bundle {digest}: {path}: {str(sha)[:80]!r} is not a SHA-256")
    if type(size) is not int or size < 0 or mode not in (REGULAR, EXECUTABLE) or type(mode) is not int:
        raise BuildError(f"bundle {digest}: {path}: bad size or mode ({size!r}, {mode!r})")
    return BundleFile(path=path, sha256=sha, size=size, mode=mode)


def _safe_path(path: str) -> bool:
    """Relative, with no '..', '.' or empty part and no NUL: it cannot leave the folder it is written into."""
    if not path or "\0" in path or path.startswith("/") or path == COMPLETE:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _check_layout(digest: str, files: list[BundleFile]) -> None:
    """No path twice, and none that is both a file and a folder holding others."""
    paths = [f.path for f in files]
    seen = set(paths)
    if len(seen) != len(paths):
        raise BuildError(f"bundle {digest}: its manifest names a path twice")
    folders = {path.rsplit("/", i)[0] for path in paths for i in range(1, path.count("/") + 1)}
    clash = sorted(seen & folders)
    if clash:
        raise BuildError(f"bundle {digest}: its manifest names {clash[0]} both as a file and as a folder")


def _fetch_small(digest: str, files: list[BundleFile], client: "redis.Redis", work: Path) -> None:
    for batch in _batches(files):
        pipe = client.pipeline(transaction=False)
        for file in batch:
            pipe.get(keys.blob(file.sha256))
        for file, content in zip(batch, pipe.execute(), strict=True):
            if content is None:
                raise _missing_blob(digest, file)
            _check_blob(digest, file, hashlib.sha256(content).hexdigest(), len(content))
            with _new_file(work, file) as stream:
                stream.write(content)
            os.chmod(work / file.path, file.mode)


def _fetch_big(digest: str, file: BundleFile, client: "redis.Redis", work: Path) -> None:
    """A big blob, a chunk at a time (GETRANGE), written as it comes and checked once whole."""
    key = keys.blob(file.sha256)
    if not client.exists(key):
        raise _missing_blob(digest, file)
    length = client.strlen(key)
    if length != file.size:                             # the size first: no fetching a blob of the wrong size
        _check_blob(digest, file, "not read", length)
    sha, size = hashlib.sha256(), 0
    with _new_file(work, file) as stream:
        for start in range(0, length, CHUNK):
            chunk = client.getrange(key, start, min(start + CHUNK, length) - 1)
            sha.update(chunk)
            size += len(chunk)
            stream.write(chunk)
    _check_blob(digest, file, sha.hexdigest(), size)
    os.chmod(work / file.path, file.mode)


def _new_file(work: Path, file: BundleFile) -> BinaryIO:
    path = work / file.path
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "xb")     # x: never through something already there


def _check_blob(digest: str, file: BundleFile, sha: str, size: int) -> None:
    if sha != file.sha256 or size != file.size:
        raise BuildError(f"bundle {digest}: the content of {file.path} in the broker does not match its digest "
                         f"(expected {file.size} bytes, sha256 {file.sha256}; got {size} bytes, sha256 {sha})",
                         hint="something other than recipe wrote to the broker's recipe: keys")


def _missing_blob(digest: str, file: BundleFile) -> BuildError:
    return BuildError(f"bundle {digest}: the content of {file.path} is not in the broker (expired, or evicted)",
                      hint="submit the run again: the submitter sends what is missing")


def _install(work: Path, target: Path) -> Path:
    """work renamed to target, atomically; when another process got there first, its copy is the one used."""
    for _ in range(2):
        try:
            os.rename(work, target)
            return target
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise BuildError(f"cannot move the fetched bundle into {target}: {exc.strerror}") from exc
        if _complete(target):
            return target                   # another process won: its copy is as good as ours
        _discard_incomplete(target)         # a copy without its marker: a crash or a prune half way
    raise BuildError(f"cannot move the fetched bundle into {target}: something keeps writing there")


def _discard_incomplete(target: Path) -> None:
    """An incomplete folder renamed aside first, so that no other process sees it half deleted."""
    aside = target.with_name(f".{target.name}.stale.{uuid.uuid4().hex}")
    try:
        os.rename(target, aside)
    except FileNotFoundError:
        return                              # another process moved it already
    shutil.rmtree(aside, ignore_errors=True)

"""A recipe's files, sent through the broker so that a worker without a checkout can run it.

The submitter `collect`s a *bundle*: every file the recipe may read, each named by its path relative to the
bundle's root and by the SHA-256 of its content. `upload` stores each content once under `keys.blob(sha256)`
(shared by every recipe and run that sends the same bytes) and then the manifest under `keys.bundle(digest)`,
the digest being the SHA-256 of the manifest's canonical JSON, so a manifest names its contents and itself.
A worker `materialize`s a digest into a folder of its cache, checking every byte against the digests.

What a bundle holds:
- the recipe's folder, recursively: tasks read templates, files, group_vars and roles/ by paths we cannot know
  before they run;
- every file the recipe read while compiling (`Recipe.files_read`: the recipe, its includes, wherever they are,
  e.g. ../common/tasks.yml) and every role folder it uses (`Recipe.role_dirs`: e.g. ~/.ansible/roles/x),
  except what lies in recipe's own library of roles (`LIBRARY_ROLES`): the worker has it;
- the caller's `extra` paths (the --var-file files), files or folders.

Rules for the folders walked:
- folders named as in `SKIPPED_FOLDERS` (version control, virtualenvs, caches) are left out, as is any path in
  `exclude` (the run's output folder, which may be inside the recipe's folder) and the library of roles;
- symbolic links are followed: a link to a file is stored as a regular file with the target's content, at the
  link's place; a link to a folder is walked at the link's place, unless its target is or contains a folder
  already being walked (a loop: `up -> ..`); a dangling link is left out;
- only regular files are kept: sockets, fifos and devices are left out;
- a file over `max_file` bytes is left out and listed in `Bundle.skipped` (the caller warns: workers need a
  path they can read or a url for it); over `max_total` bytes in all, `collect` raises BuildError.
Paths named explicitly (files_read, role_dirs, extra) are taken even where a walk would skip them.

Layout: every file keeps its place relative to the others, so that `../common/x.yml` from the recipe still
resolves on the worker. The bundle's root is the deepest folder holding everything (it may be `/`), and every
file is stored under its POSIX path relative to it; `Bundle.relative` turns a local path into a bundle path
(the recipe's, the var files', the roles path folders'). Of a file's mode only the executable bit travels:
0o755 or 0o644.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator, Sequence

from engine.cluster import keys
from engine.errors import BuildError
from engine.recipe.loader import LIBRARY_ROLES
from engine.recipe.model import Recipe

if TYPE_CHECKING:
    import redis

SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", ".tox",
                             ".mypy_cache", ".pytest_cache"})
CHUNK = 1 << 20                 # bytes read, sent or fetched at once: one file's chunk in memory, not the file
BATCH_BYTES = 8 << 20           # small blobs go to and come from Redis in pipelines of about this many bytes
BATCH_KEYS = 512                # ... or of this many keys
COMPLETE = ".recipe-bundle-complete"   # written last into a materialized bundle: the folder is whole
EXECUTABLE, REGULAR = 0o755, 0o644
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BundleFile:
    path: str          # POSIX, relative to the bundle root, never absolute, no '..'
    sha256: str
    size: int
    mode: int          # 0o644 or 0o755


@dataclass(frozen=True)
class Bundle:
    root: Path                                      # the submitter's common root
    files: tuple[BundleFile, ...]                   # sorted by path
    skipped: tuple[tuple[str, int], ...] = ()       # (relative path, size): files over max_file

    @property
    def digest(self) -> str:
        """The SHA-256 of the manifest: what names the bundle in the broker and in a worker's cache."""
        return hashlib.sha256(self.manifest()).hexdigest()

    def relative(self, path: Path) -> str:
        """A local path under the root, as a bundle path ("." for the root itself); ValueError outside it.

        The path as written comes first (a link inside the recipe's folder stays where it is), then its target.
        """
        for candidate in _candidates(path):
            if candidate == self.root or self.root in candidate.parents:
                return candidate.relative_to(self.root).as_posix()
        raise ValueError(f"{path} is outside the bundle's root {self.root}")

    def manifest(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): the same files always give the same bytes, so the same digest."""
        rows = [[f.path, f.sha256, f.size, f.mode] for f in self.files]
        return json.dumps({"files": rows}, sort_keys=True, separators=(",", ":")).encode("ascii")


# -- collect: the submitter's side -----------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    """A file a walk found, before its content is read."""

    path: Path      # absolute, where it sits in the bundle's layout (a link's place, not its target's)
    size: int
    mode: int


def collect(recipe: Recipe, extra: Sequence[Path] = (), exclude: Sequence[Path] = (),
            max_file: int = 64 << 20, max_total: int = 512 << 20) -> Bundle:
    """The bundle of a compiled recipe: its files, found and hashed (see the module's rules)."""
    folders, files = _starts(recipe, extra)
    root = Path(os.path.commonpath([*folders, *(f.parent for f in files)]))
    excluded = _excluded(exclude)
    found: dict[Path, _Found] = {}
    for file in files:
        found.setdefault(file, _explicit_file(file))
    for folder in folders:
        _walk(folder, excluded, found)
    kept = [f for f in found.values() if f.size <= max_file]
    skipped = sorted((_relative(f.path, root), f.size) for f in found.values() if f.size > max_file)
    _check_total(kept, root, max_total)
    hashed = sorted((_hashed(f, root) for f in kept), key=lambda f: f.path)
    return Bundle(root=root, files=tuple(hashed), skipped=tuple(skipped))


def _starts(recipe: Recipe, extra: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """The folders to walk and the single files to take: the recipe's own, then the caller's extra paths."""
    folders = [_absolute(recipe.path).parent]
    folders += [_absolute(d) for d in recipe.role_dirs if not _in_library(d)]
    files = [_absolute(f) for f in recipe.files_read if not _in_library(f)]
    for path in map(_absolute, extra):
        if path.is_dir():
            folders.append(path)
        elif path.is_file():
            files.append(path)
        else:
            raise BuildError(f"{path} is neither a file nor a folder: it cannot go into the recipe's bundle",
                             hint="check the --var-file paths")
    for path in folders:
        if not path.is_dir():
            raise BuildError(f"the folder {path} the recipe uses is gone", hint="run again once it is back")
    return folders, files


def _explicit_file(path: Path) -> _Found:
    try:
        info = path.stat()
    except OSError as exc:
        raise BuildError(f"cannot read {path}, which the recipe uses: {exc.strerror}",
                         hint="the file changed since the recipe was read: run again") from exc
    if not stat.S_ISREG(info.st_mode):
        raise BuildError(f"{path}, which the recipe uses, is not a regular file")
    return _Found(path, info.st_size, _mode(info))


def _excluded(exclude: Sequence[Path]) -> tuple[str, ...]:
    """What walks leave out, as written and as resolved (the output folder may be named through a link)."""
    paths = {str(LIBRARY_ROLES)}
    for path in exclude:
        paths.add(str(_absolute(path)))
        paths.add(os.path.realpath(path))
    return tuple(sorted(paths))


def _walk(top: Path, excluded: tuple[str, ...], found: dict[Path, _Found]) -> None:
    """Every regular file under top, links followed, loops and skipped folders left out.

    Each folder on the stack carries its real path and the real paths of the folders walked to reach it
    (its chain): a link whose target is or holds one of them would walk them again, forever.
    """
    top_real = os.path.realpath(top)
    stack: list[tuple[Path, str, tuple[str, ...]]] = [(top, top_real, (top_real,))]
    while stack:
        folder, folder_real, chain = stack.pop()
        for entry in _entries(folder):
            path = folder / entry.name
            real = os.path.realpath(path) if entry.is_symlink() else os.path.join(folder_real, entry.name)
            info = _stat(entry)
            if info is None or _under_any(str(path), excluded) or _under_any(real, excluded):
                continue
            if stat.S_ISDIR(info.st_mode):
                if entry.name not in SKIPPED_FOLDERS and not any(_contains(real, c) for c in chain):
                    stack.append((path, real, (*chain, real)))
            elif stat.S_ISREG(info.st_mode) and entry.name != COMPLETE:
                found.setdefault(path, _Found(path, info.st_size, _mode(info)))
            # anything else (a socket, a fifo, a device) has no content to send


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise BuildError(f"cannot read the folder {folder} for the recipe's bundle: {exc.strerror}",
                         hint="make it readable, or move it out of the recipe's folder") from exc


def _stat(entry: os.DirEntry[str]) -> os.stat_result | None:
    """The entry's status, links followed; None for a dangling link or a loop of links."""
    try:
        return entry.stat(follow_symlinks=True)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            return None
        raise BuildError(f"cannot read {entry.path} for the recipe's bundle: {exc.strerror}",
                         hint="make it readable, or move it out of the recipe's folder") from exc


def _check_total(kept: list[_Found], root: Path, max_total: int) -> None:
    total = sum(f.size for f in kept)
    if total <= max_total:
        return
    biggest = sorted(kept, key=lambda f: f.size, reverse=True)[:3]
    names = ", ".join(f"{_relative(f.path, root)} ({_size(f.size)})" for f in biggest)
    raise BuildError(f"the recipe's bundle would hold {_size(total)} in {len(kept)} files, over the "
                     f"{_size(max_total)} a bundle may hold; the biggest: {names}",
                     hint="move big files out of the recipe's folder and give workers a path they can read or "
                          "a url, or keep the build's output folder out of the recipe's folder")


def _hashed(found: _Found, root: Path) -> BundleFile:
    digest, size = _digest_of(found.path)
    return BundleFile(path=_relative(found.path, root), sha256=digest, size=size, mode=found.mode)


def _digest_of(path: Path) -> tuple[str, int]:
    """The SHA-256 and size of a file's content, read in chunks."""
    sha, size = hashlib.sha256(), 0
    for chunk in _chunks(path):
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


def _chunks(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK):
                yield chunk
    except OSError as exc:
        raise BuildError(f"cannot read {path} for the recipe's bundle: {exc.strerror}",
                         hint="make it readable, or move it out of the recipe's folder") from exc


def _mode(info: os.stat_result) -> int:
    return EXECUTABLE if info.st_mode & 0o111 else REGULAR


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
    content = b"".join(_chunks(bundle.root / file.path))
    if hashlib.sha256(content).hexdigest() != file.sha256:
        raise _changed(bundle, file)
    return content


def _upload_big(bundle: Bundle, file: BundleFile, client: "redis.Redis") -> None:
    """One big file, a chunk at a time, into a key of its own, renamed to the blob's name once whole and checked:
    a worker never reads half a blob, nor a blob whose file changed on the way."""
    partial = f"{keys.blob(file.sha256)}:upload:{uuid.uuid4().hex}"
    sha = hashlib.sha256()
    try:
        for index, chunk in enumerate(_chunks(bundle.root / file.path)):
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


# -- paths -----------------------------------------------------------------------------------------


def _absolute(path: Path) -> Path:
    """path made absolute without following links: a link keeps its place in the layout."""
    return Path(os.path.abspath(path))


def _candidates(path: Path) -> Iterator[Path]:
    yield _absolute(path)
    try:
        yield Path(path).resolve()
    except (OSError, RuntimeError):
        return


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _in_library(path: Path) -> bool:
    return any(_contains(str(LIBRARY_ROLES), str(p)) for p in _candidates(path))


def _contains(folder: str, path: str) -> bool:
    """Whether path is folder or lies under it (strings of absolute paths, normalized)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _under_any(path: str, folders: tuple[str, ...]) -> bool:
    return any(_contains(folder, path) for folder in folders)


def _size(size: int) -> str:
    """1.5 GiB, 300.0 KiB, 12 B: sizes in messages."""
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"

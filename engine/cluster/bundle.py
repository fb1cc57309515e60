"""A recipe's files, sent through the broker so that a worker without a checkout can run it.

The submitter `collect`s a *bundle*: every file the recipe may read, each named by its path relative to the
bundle's root and by the SHA-256 of its content; its digest is the SHA-256 of its manifest's canonical JSON,
so a manifest names its contents and itself. engine.cluster.bundle_transfer sends it through the broker and
unpacks it on a worker.

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
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from engine.errors import BuildError
from engine.recipe.loader import LIBRARY_ROLES
from engine.recipe.model import Recipe

SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", ".tox",
                             ".mypy_cache", ".pytest_cache"})
COMPLETE = ".recipe-bundle-complete"   # written last into an unpacked bundle (bundle_transfer): it is whole
CHUNK = 1 << 20                 # bytes read, sent or fetched at once: one file's chunk in memory, not the file
EXECUTABLE, REGULAR = 0o755, 0o644


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
    for chunk in read_chunks(path):
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


def read_chunks(path: Path) -> Iterator[bytes]:
    """A file's content, CHUNK bytes at a time; a file that cannot be read is a BuildError."""
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK):
                yield chunk
    except OSError as exc:
        raise BuildError(f"cannot read {path} for the recipe's bundle: {exc.strerror}",
                         hint="make it readable, or move it out of the recipe's folder") from exc


def _mode(info: os.stat_result) -> int:
    return EXECUTABLE if info.st_mode & 0o111 else REGULAR


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

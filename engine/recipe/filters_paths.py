"""Ansible's path filters. Like Ansible's, they work on the controller's paths (expanduser, realpath and
fileglob look at this machine), which is where templates are rendered."""
from __future__ import annotations

import glob
import ntpath
import os.path
import posixpath
from collections.abc import Sequence
from typing import Any

from engine.recipe.filters_data import FilterFailure


def path_join(paths: Any) -> str:
    if isinstance(paths, str):
        return os.path.join(paths)
    if isinstance(paths, Sequence):
        return os.path.join(*paths)
    raise FilterFailure(f"|path_join expects string or sequence, got {type(paths).__name__} instead.")


def commonpath(paths: Any) -> str:
    if isinstance(paths, str) or not isinstance(paths, Sequence):
        raise FilterFailure(f"|commonpath expects sequence, got {type(paths).__name__} instead.")
    return os.path.commonpath(paths)


def fileglob(pattern: str) -> list[str]:
    return [path for path in glob.glob(pattern) if os.path.isfile(path)]


def splitext(path: str) -> tuple[str, str]:
    return os.path.splitext(path)


FILTERS = {
    "basename": posixpath.basename, "dirname": posixpath.dirname,
    "expanduser": os.path.expanduser, "expandvars": os.path.expandvars,
    "realpath": os.path.realpath, "relpath": os.path.relpath, "normpath": os.path.normpath,
    "splitext": splitext, "path_join": path_join, "commonpath": commonpath, "fileglob": fileglob,
    "win_basename": ntpath.basename, "win_dirname": ntpath.dirname, "win_splitdrive": ntpath.splitdrive,
}

"""YAML read with ruamel.yaml into plain dicts and lists that remember positions.

YMap and YSeq are ordinary dict and list subclasses, so the rest of the code
treats them as data; their extra attributes say where each node, key and item
starts, which is what every error message needs.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from engine.errors import Position, RecipeError


class YMap(dict):
    """A mapping with the position of the mapping, of each key and of each value."""

    pos: Position
    key_pos: dict
    value_pos: dict

    def __init__(self, *args: Any, pos: Position | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pos = pos or Position("<unknown>")
        self.key_pos = {}
        self.value_pos = {}


class YSeq(list):
    """A sequence with the position of the sequence and of each item."""

    pos: Position
    item_pos: list

    def __init__(self, *args: Any, pos: Position | None = None):
        super().__init__(*args)
        self.pos = pos or Position("<unknown>")
        self.item_pos = []


def _pos(file: str, line_col: tuple[int, int] | list[int] | None) -> Position:
    if not line_col:
        return Position(file)
    return Position(file, line_col[0] + 1, line_col[1] + 1)


def _convert(node: Any, file: str) -> Any:
    if isinstance(node, CommentedMap):
        out = YMap(pos=_pos(file, (node.lc.line, node.lc.col)))
        for key, value in node.items():
            plain_key = _convert(key, file)
            out[plain_key] = _convert(value, file)
            out.key_pos[plain_key] = _pos(file, node.lc.key(key))
            out.value_pos[plain_key] = _pos(file, node.lc.value(key))
        return out
    if isinstance(node, CommentedSeq):
        out_seq = YSeq(pos=_pos(file, (node.lc.line, node.lc.col)))
        for index, item in enumerate(node):
            out_seq.append(_convert(item, file))
            out_seq.item_pos.append(_pos(file, node.lc.item(index)))
        return out_seq
    # ruamel's scalar subclasses become the plain types the rest of the code expects
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, (datetime.date, datetime.datetime)):
        return node.isoformat()
    return node


def parse_yaml(text: str, file: str) -> Any:
    """Parse text; a syntax error becomes a RecipeError at its line and column."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "found duplicate key" in str(exc):
            problem = "duplicate key " + (exc.problem or "").split("found duplicate key")[-1].strip()
        raise RecipeError.at(position, f"YAML syntax error: {problem}",
                             hint=_yaml_hint(problem)) from None
    except YAMLError as exc:
        raise RecipeError.at(Position(file), f"YAML error: {exc}") from None
    return _convert(data, file)


def _yaml_hint(problem: str) -> str:
    if "tab" in problem or "\\t" in problem or "\t" in problem:
        return "indent with spaces, YAML does not allow tabs"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted"
    if "found character '%'" in problem or "found unexpected" in problem:
        return "quote values that start with { or % (Jinja), e.g. \"{{ var }}\""
    if "duplicate" in problem:
        return "each key may appear once in a mapping"
    return "check indentation and quoting near this position"


def load_yaml_file(path: Path, referenced_at: Position | None = None, what: str = "file") -> Any:
    """Read and parse a YAML file; a missing file is reported where it was referenced."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError.at(referenced_at or Position(str(path)), f"{what} not found: {path}",
                             hint="paths are relative to the file that names them") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise RecipeError.at(referenced_at or Position(str(path)), f"cannot read {what} {path}: {exc}") from None
    return parse_yaml(text, str(path))


def locate(root: Any, path: Iterable[Any], at_key: bool = False) -> Position | None:
    """The position of the deepest node along path (a voluptuous error path).

    at_key points at the key itself rather than its value, which is what an
    "unknown key" error wants.
    """
    node, found = root, getattr(root, "pos", None)
    steps = list(path)
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        if isinstance(node, YMap) and step in node:
            positions = node.key_pos if (last and at_key) else node.value_pos
            found = positions.get(step, found)
            node = node[step]
        elif isinstance(node, YSeq) and isinstance(step, int) and 0 <= step < len(node):
            found = node.item_pos[step] if step < len(node.item_pos) else found
            node = node[step]
        else:
            break
    return found


def node_position(node: Any, fallback: Position | None = None) -> Position | None:
    return getattr(node, "pos", None) or fallback

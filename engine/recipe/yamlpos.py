"""YAML read with ruamel.yaml into plain dicts and lists that remember positions.

YMap and YSeq are ordinary dict and list subclasses, so the rest of the code
treats them as data; their extra attributes say where each node, key and item
starts, which is what every error message needs.
"""
from __future__ import annotations

import contextlib
import datetime
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

from ruamel.yaml import YAML
from ruamel.yaml.comments import (CommentedKeyMap, CommentedKeySeq, CommentedMap, CommentedSeq, CommentedSet,
                                  TaggedScalar)
from ruamel.yaml.error import MantissaNoDotYAML1_1Warning, MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.events import MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarbool import ScalarBoolean

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


class UnsafeText(str):
    """A string tagged `!unsafe`: never rendered as a template, as Ansible treats it."""


YAML_BOOL_TAG = "tag:yaml.org,2002:bool"
YAML_FLOAT_TAG = "tag:yaml.org,2002:float"
# PyYAML's YAML 1.1 floats: a dot is needed (1e3 stays the string "1e3", as in Ansible)
_ANSIBLE_FLOATS = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
# YAML 1.1's booleans as Ansible's loader (PyYAML) reads them: yes/no/on/off/true/false in three cases,
# but not ruamel's y/n, which Ansible keeps as the strings "y" and "n".
_ANSIBLE_BOOLEANS = re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")


class AnsibleResolver(VersionedResolver):
    """YAML 1.1 as Ansible reads task files, roles and recipes: `become: yes` is a boolean, `mode: 0644` is
    the octal number 420."""

    @property
    def processing_version(self) -> Any:
        # always 1.1: ruamel falls back to 1.2 at an explicit `---`, where Ansible still reads YAML 1.1
        return (1, 1)

    @property
    def versioned_resolver(self) -> Any:
        table = super().versioned_resolver
        if not getattr(self, "_ansible_booleans", False):
            for first, entries in table.items():
                table[first] = [(tag, {YAML_BOOL_TAG: _ANSIBLE_BOOLEANS, YAML_FLOAT_TAG: _ANSIBLE_FLOATS}.get(tag, regexp))
                                for tag, regexp in entries]
            self._ansible_booleans = True
        return table


def new_yaml() -> YAML:
    """The reader of every YAML file recipe loads: round-trip (positions kept), YAML 1.1 as Ansible."""
    yaml = YAML(typ="rt")
    yaml.Resolver = AnsibleResolver
    yaml.version = (1, 1)
    return yaml


def _pos(file: str, line_col: tuple[int, int] | list[int] | None) -> Position:
    if not line_col:
        return Position(file)
    return Position(file, line_col[0] + 1, line_col[1] + 1)


MAX_DEPTH = 64            # containers inside containers; recipes use a dozen at most
MAX_NODES = 100_000       # after aliases: an anchor used twice counts twice (a "billion laughs" stops here)
YAML_STR_TAG = "tag:yaml.org,2002:str"


class _Converter:
    """ruamel's round-trip nodes to YMap/YSeq and plain scalars, refusing what the rest cannot use.

    Aliases make a YAML document a graph: a recursive alias, nesting deeper than MAX_DEPTH or more than
    MAX_NODES nodes once aliases are expanded are errors here, with the position of the node at fault,
    so nothing later has to guard against them.
    """

    def __init__(self, file: str):
        self.file = file
        self.nodes = 0
        self.open: set[int] = set()       # containers being converted: an alias to one of them is a cycle
        self.seen: set[int] = set()       # containers converted once: met again, they are an alias
        self.aliases: list[Position] = [] # the anchors being expanded again, outermost first (ruamel places an
                                          # alias at its anchor)

    def convert(self, node: Any, position: Position, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RecipeError.at(self.aliases[0] if self.aliases else position,
                            f"the document has more than {MAX_NODES} values once its aliases are expanded",
                            hint="each alias (*name) of this anchor repeats its whole content; use fewer")
        if isinstance(node, (CommentedMap, CommentedSeq)):
            if depth >= MAX_DEPTH:
                raise _too_deep(position)
            if id(node) in self.open:
                raise RecipeError.at(position, "an alias refers to a node that contains it (a recursive alias)",
                                hint="an anchor's content cannot use its own alias")
            alias = id(node) in self.seen
            self.seen.add(id(node))
            self.open.add(id(node))
            if alias:
                self.aliases.append(position)
            try:
                if isinstance(node, CommentedMap):
                    return self._map(node, depth)
                return self._seq(node, depth)
            finally:
                self.open.discard(id(node))
                if alias:
                    self.aliases.pop()
        return self._scalar(node, position)

    def _map(self, node: CommentedMap, depth: int) -> YMap:
        out = YMap(pos=_pos(self.file, (node.lc.line, node.lc.col)))
        for key, value in node.items():
            key_at, value_at = self._item_positions(node, key, out.pos)
            if isinstance(key, (CommentedKeySeq, CommentedKeyMap, tuple)):
                raise RecipeError.at(key_at, "a key must be a plain value (a name, a number), not a list or a mapping",
                                hint="remove the '? ' complex key, or quote the key")
            plain_key = self._scalar(key, key_at)
            out[plain_key] = self.convert(value, value_at, depth + 1)
            out.key_pos[plain_key] = key_at
            out.value_pos[plain_key] = value_at
        return out

    def _item_positions(self, node: CommentedMap, key: Any, fallback: Position) -> tuple[Position, Position]:
        """Where a key and its value are; a key merged in with `<<: *anchor` is where the anchor wrote it."""
        own = getattr(node, "_ok", None)
        merged = [entry[-1] if isinstance(entry, tuple) else entry for entry in getattr(node, "merge", None) or []]
        for source in [node] if own is None or key in own else merged:
            try:
                return _pos(self.file, source.lc.key(key)), _pos(self.file, source.lc.value(key))
            except (KeyError, TypeError, AttributeError):
                continue
        return fallback, fallback

    def _seq(self, node: CommentedSeq, depth: int) -> YSeq:
        out = YSeq(pos=_pos(self.file, (node.lc.line, node.lc.col)))
        for index, item in enumerate(node):
            try:
                at = _pos(self.file, node.lc.item(index))
            except (KeyError, TypeError):
                at = out.pos
            out.append(self.convert(item, at, depth + 1))
            out.item_pos.append(at)
        return out

    def _scalar(self, node: Any, position: Position) -> Any:
        # ruamel's scalar subclasses become the plain types the rest of the code expects
        if node is None:
            return None
        if isinstance(node, (bool, ScalarBoolean)):   # an anchored `&a true` is a ScalarBoolean, an int
            return bool(node)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, str):
            return str(node)
        if isinstance(node, (datetime.date, datetime.datetime)):
            return node.isoformat()
        if isinstance(node, TaggedScalar) and getattr(node.tag, "value", None) == YAML_STR_TAG:
            return str(node.value)     # !!str 1 is the string "1"
        if isinstance(node, TaggedScalar) and getattr(node.tag, "value", None) == "!unsafe":
            return UnsafeText(node.value)
        tag = getattr(getattr(node, "tag", None), "value", None)
        what = {bytes: "binary data (!!binary)", CommentedSet: "a set (!!set)"}.get(
            type(node), f"the YAML tag {tag}" if tag else f"a {type(node).__name__} value")
        raise RecipeError.at(position, f"{what} is not supported in a recipe",
                        hint="use strings, numbers, booleans, lists and mappings; quote a string that starts with !")


def _too_deep(position: Position) -> RecipeError:
    return RecipeError.at(position, f"nested more than {MAX_DEPTH} levels deep",
                          hint="a recipe needs a dozen levels at most; check the brackets")


def _convert(node: Any, file: str) -> Any:
    return _Converter(file).convert(node, Position(file, 1, 1))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """An anchor defined twice is YAML 1.2 (the later one counts): ruamel's warning about it would print a
    Python source line and a multi-line message to stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReusedAnchorWarning)
        warnings.simplefilter("ignore", MantissaNoDotYAML1_1Warning)   # 1e-05: YAML 1.1 wants 1.0e-05; read as a number
        yield


def _deepest_position(text: str, file: str) -> Position:
    """Where nesting first goes past MAX_DEPTH: found from parser events, which need no recursion."""
    depth = 0
    try:
        for event in YAML(typ="rt").parse(text):      # events, not nodes: no anchor warnings either
            if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    return Position(file, mark.line + 1, mark.column + 1)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                depth -= 1
    except (YAMLError, RecursionError):
        pass
    return Position(file)


def parse_yaml(text: str, file: str) -> Any:
    """Parse text; a syntax error becomes a RecipeError at its line and column."""
    yaml = new_yaml()
    yaml.allow_duplicate_keys = False
    try:
        with _quiet():
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
        raise RecipeError.at(_error_position(exc, text, file), f"YAML error: {_one_line(exc)}") from None
    except RecursionError:
        raise _too_deep(_deepest_position(text, file)) from None
    except Exception as exc:   # ruamel's constructors fail on some input: !!int x, !!set on a scalar, ? [{a: 1}]
        where, what = _constructor_culprit(text, file)
        hint = "remove the tag, or give a value of its type" if "!!" in what else "check the keys and tags near here"
        if not what:
            what = f"cannot be read ({type(exc).__name__}: {exc})"
        raise RecipeError.at(where, f"YAML error: {what}", hint=hint) from None
    return _convert(data, file)


_PLAIN_COLLECTIONS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _constructor_culprit(text: str, file: str) -> tuple[Position, str]:
    """Where a constructor failure comes from, innermost first: a list or mapping used as a key (unhashable),
    or a value its tag cannot make (!!int x, !!set on a scalar), found by constructing the nodes one by one."""
    yaml = new_yaml()
    try:
        with _quiet():
            root = yaml.compose(text)
    except Exception:
        return Position(file), ""

    def children_first(node: Any) -> Iterator[Any]:
        if isinstance(node.value, list):
            for item in node.value:
                for child in item if isinstance(item, tuple) else (item,):
                    yield from children_first(child)
        yield node

    try:
        for node in children_first(root) if root is not None else ():
            mark = node.start_mark
            where = Position(file, mark.line + 1, mark.column + 1)
            key = next((item[0] for item in node.value if isinstance(item, tuple)
                        and not isinstance(item[0].value, str)), None) if isinstance(node.value, list) else None
            if key is not None:
                return (Position(file, key.start_mark.line + 1, key.start_mark.column + 1),
                        "a key must be a plain value (a name, a number), not a list or a mapping")
            tag = str(getattr(node.tag, "value", node.tag) or "")
            if isinstance(node.value, list) and tag in _PLAIN_COLLECTIONS:
                continue
            try:
                with _quiet():
                    yaml.constructor.construct_object(node, deep=True)
            except Exception:
                name = "!!" + tag.rsplit(":", 1)[-1] if tag.startswith("tag:yaml.org") else tag
                return where, f"this value cannot be read as {name}"
    except RecursionError:
        pass
    return Position(file), ""


def _one_line(exc: Exception) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines()
                    if line.strip() and "<unicode string>" not in line)


def _error_position(exc: YAMLError, text: str, file: str) -> Position:
    """An unmarked YAML error (a character YAML forbids) still says where: from its offset in the text."""
    found = re.search(r"position (\d+)", str(exc))
    if not found:
        return Position(file)
    return _offset_position(text, int(found.group(1)), file)


def _offset_position(text: str, offset: int, file: str) -> Position:
    before = text[:offset]
    return Position(file, before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


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
    except UnicodeDecodeError as exc:
        raw = path.read_bytes()
        text = raw[:exc.start].decode("utf-8", errors="replace")
        where = _offset_position(text, len(text), str(path))
        raise RecipeError.at(where, f"{what} is not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded",
                             hint="save the file as UTF-8") from None
    except (OSError, ValueError) as exc:   # a directory, no permission, a name too long or with a NUL byte
        raise RecipeError.at(referenced_at or Position(str(path)), f"cannot read {what} {path}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
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

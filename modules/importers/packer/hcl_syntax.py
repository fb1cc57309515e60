"""HCL2 files, in native syntax (*.pkr.hcl) or JSON syntax (*.pkr.json), as blocks and attributes with positions.

python-hcl2 parses the native syntax; its tree keeps line, column and offsets,
so every attribute knows where it is and the text it was written as. The JSON
syntax is read with json (for the values) and ruamel.yaml (for positions); which
objects are blocks is known from Packer's schema (BLOCK_LABELS), as HCL's
JSON syntax requires.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from lark import Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from engine.errors import Position, Problem, RecipeError
from engine.recipe.yamlpos import YMap, YSeq, parse_yaml
from modules.importers.packer.files import read_text

VALUE_STARTS = {"DBLQUOTE", "INT_LITERAL", "FLOAT_LITERAL", "NAME", "LSQB", "LBRACE", "HEREDOC_TEMPLATE"}
SYNTAX_HINT = "check the quotes, braces and = signs up to this point (`packer validate` says it in Packer's words)"
# the labels each block type of Packer's schema takes, by the block it sits in ("" is the top level)
BLOCK_LABELS: dict[tuple[str, str], int] = {
    ("", "variable"): 1, ("", "variables"): 0, ("", "locals"): 0, ("", "local"): 1, ("", "source"): 2,
    ("", "data"): 2, ("", "build"): 0, ("", "packer"): 0,
    ("build", "source"): 1, ("build", "provisioner"): 1, ("build", "post-processor"): 1,
    ("build", "post-processors"): 0, ("build", "error-cleanup-provisioner"): 1, ("build", "hcp_packer_registry"): 0,
    ("post-processors", "post-processor"): 1,
}


@dataclass(frozen=True)
class JsonValue:
    """A value of a JSON-syntax file: its strings are HCL templates ("${var.x}")."""

    value: Any


@dataclass(frozen=True)
class RawAttribute:
    name: str
    node: Any                  # a python-hcl2 expression tree, or a JsonValue
    position: Position
    source: str                # the text as written, for a comment


@dataclass(frozen=True)
class RawBlock:
    type: str
    labels: tuple[str, ...]
    attributes: tuple[RawAttribute, ...]
    blocks: tuple["RawBlock", ...]
    position: Position
    source: str

    def blocks_of(self, kind: str) -> tuple["RawBlock", ...]:
        return tuple(b for b in self.blocks if b.type == kind)


def read_file(path: Path, shown: str) -> RawBlock:
    """The file as one block of type "" holding its top-level blocks and attributes."""
    text = read_text(path, shown)
    if path.name.endswith(".json"):
        return _json_file(text, shown)
    try:
        tree = hcl2.parses_to_tree(text)
    except UnexpectedInput as exc:
        raise RecipeError(_syntax_problem(exc, shown)) from None
    return _block_of("", (), tree.children[0], tree, text, shown)


def _syntax_problem(exc: UnexpectedInput, shown: str) -> Problem:
    position = Position(shown, getattr(exc, "line", 0) or 0, getattr(exc, "column", 0) or 0)
    hint = SYNTAX_HINT
    if isinstance(exc, UnexpectedCharacters):
        what = f"unexpected character {exc.char!r}"
    elif isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        what = "the file ends in the middle of a block or an expression"
    elif isinstance(exc, UnexpectedToken):
        what = f"unexpected {_token_words(exc.token)}"
        if exc.expected & VALUE_STARTS:
            hint = "a value is missing, or not closed; " + hint
    else:
        what = "this is not HCL2"
    return Problem(position, f"HCL2 syntax error: {what}", hint=hint)


def _token_words(token: Any) -> str:
    if token.type == "NL_OR_COMMENT" or str(token)[:1] in ("\n", "\r") or not str(token).strip():
        return "end of line"
    return repr(str(token).splitlines()[0][:40])


def _position(shown: str, node: Tree) -> Position:
    return Position(shown, node.meta.line, node.meta.column)


def _source(text: str, node: Tree) -> str:
    return text[node.meta.start_pos:node.meta.end_pos].strip()


def _block_of(kind: str, labels: tuple[str, ...], body: Tree, node: Tree, text: str, shown: str) -> RawBlock:
    attributes: list[RawAttribute] = []
    blocks: list[RawBlock] = []
    problems: list[Problem] = []
    for child in body.children:
        if not isinstance(child, Tree):
            continue
        if child.data == "attribute":
            name = _word(child.children[0])
            if any(a.name == name for a in attributes):
                problems.append(Problem(_position(shown, child), f"{name} is set twice in this block",
                                        hint="keep one of them (Packer refuses this too)"))
            attributes.append(RawAttribute(name, child.children[-1], _position(shown, child), _source(text, child)))
        elif child.data == "block":
            blocks.append(_nested_block(child, text, shown))
    if problems:
        raise RecipeError(problems)
    position = _position(shown, node) if kind else Position(shown)
    return RawBlock(kind, labels, tuple(attributes), tuple(blocks), position, _source(text, node) if kind else "")


def _nested_block(node: Tree, text: str, shown: str) -> RawBlock:
    parts = [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]
    body = parts[-1]
    kind, labels = _word(parts[0]), tuple(_label(p) for p in parts[1:-1])
    return _block_of(kind, labels, body, node, text, shown)


def _word(node: Any) -> str:
    """The name of an identifier (or keyword) node."""
    while isinstance(node, Tree):
        node = node.children[0]
    return str(node)


def _label(node: Tree) -> str:
    if node.data == "string":
        return "".join(str(part.children[0]) for part in node.children if isinstance(part, Tree))
    return _word(node)


# -- the JSON syntax -------------------------------------------------------------------------

def _json_file(text: str, shown: str) -> RawBlock:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError(Problem(Position(shown, exc.lineno, exc.colno), f"JSON syntax error: {exc.msg}",
                                  hint="check the commas, quotes and brackets up to this point")) from None
    positions = parse_yaml(text, shown)      # JSON is YAML: ruamel.yaml gives each key its line and column
    if not isinstance(values, dict):
        raise RecipeError(Problem(Position(shown, 1, 1), "a Packer template in JSON is an object",
                                  hint='e.g. {"source": {...}, "build": {...}}'))
    return _json_block("", (), values, positions, Position(shown))


def _json_block(kind: str, labels: tuple[str, ...], values: dict, positions: Any, position: Position) -> RawBlock:
    attributes, blocks = [], []
    for name, value in values.items():
        where = _key_position(positions, name, position)
        depth = BLOCK_LABELS.get((kind, name))
        if depth is None:
            attributes.append(RawAttribute(name, JsonValue(value), where, f"{json.dumps(name)}: {json.dumps(value)}"))
            continue
        blocks += _json_blocks(name, depth, value, _child(positions, name), where)
    return RawBlock(kind, labels, tuple(attributes), tuple(blocks), position,
                    json.dumps({kind: values}) if kind else "")


def _json_blocks(kind: str, depth: int, value: Any, positions: Any, where: Position) -> list[RawBlock]:
    """A block type's value: its labels as nested object keys, depth deep; a list holds several."""
    if isinstance(value, list):
        return [b for i, item in enumerate(value)
                for b in _json_blocks(kind, depth, item, _item(positions, i), _item_position(positions, i, where))]
    if not isinstance(value, dict):
        raise RecipeError(Problem(where, f"{kind} must be an object", hint=f'e.g. "{kind}": {{ ... }}'))
    if depth == 0:
        return [_json_block(kind, (), value, positions, where)]
    found = []
    for label, inner in value.items():
        for block in _json_blocks(kind, depth - 1, inner, _child(positions, label),
                                  _key_position(positions, label, where)):
            found.append(RawBlock(block.type, (label, *block.labels), block.attributes, block.blocks,
                                  block.position, block.source))
    return found


def _key_position(positions: Any, key: str, fallback: Position) -> Position:
    return positions.key_pos.get(key, fallback) if isinstance(positions, YMap) else fallback


def _item_position(positions: Any, index: int, fallback: Position) -> Position:
    return positions.item_pos[index] if isinstance(positions, YSeq) and index < len(positions.item_pos) else fallback


def _child(positions: Any, key: str) -> Any:
    return positions.get(key) if isinstance(positions, YMap) else None


def _item(positions: Any, index: int) -> Any:
    return positions[index] if isinstance(positions, YSeq) and index < len(positions) else None

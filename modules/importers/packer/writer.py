"""A RecipeDraft as YAML text, its comments above the parts they are about (ruamel.yaml).

Multi-line strings (inline scripts) are written as literal blocks, short lists
of plain values in flow style ([a, b]), the rest in block style: the recipe
should read as if written by hand.
"""
from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from modules.importers.packer.draft import Comment, Part, RecipeDraft

FLOW_WIDTH = 70        # a list of scalars shorter than this is written [a, b]


def _yaml() -> YAML:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 120
    return yaml


def _node(value: Any) -> Any:
    """Plain data as ruamel's nodes, styled."""
    if isinstance(value, dict):
        return CommentedMap((key, _node(item)) for key, item in value.items())
    if isinstance(value, list):
        seq = CommentedSeq(_node(item) for item in value)
        if all(isinstance(item, (str, int, float, bool)) and "\n" not in str(item) for item in value) and \
                len(repr(value)) < FLOW_WIDTH:
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str) and "\n" in value.rstrip("\n") and _block_safe(value):
        return LiteralScalarString(value)
    return value


def _block_safe(text: str) -> bool:
    """Whether a literal block (|) keeps text exactly: no trailing spaces, no control characters but tabs."""
    return all(line == line.rstrip() and line.replace("\t", " ").isprintable() for line in text.splitlines())


def _text(comments: tuple[Comment, ...]) -> str:
    return "\n".join(line for comment in comments for line in comment.lines())


def _mapping(parts: tuple[Part, ...], indent: int) -> CommentedMap:
    mapping = CommentedMap()
    for part in parts:
        mapping[part.key] = _node(part.value)
        if part.comments:
            mapping.yaml_set_comment_before_after_key(part.key, before=_text(part.comments), indent=indent)
    return mapping


def _sequence(parts: tuple[Part, ...], indent: int) -> CommentedSeq:
    sequence = CommentedSeq()
    for index, part in enumerate(parts):
        sequence.append(_node(part.value))
        if part.comments:
            sequence.yaml_set_comment_before_after_key(index, before=_text(part.comments), indent=indent)
    if parts and all(not isinstance(p.value, (dict, list)) for p in parts) and not any(p.comments for p in parts):
        sequence.fa.set_flow_style()
    return sequence


def write(draft: RecipeDraft) -> str:
    document = CommentedMap()
    document["name"] = draft.name
    document["description"] = draft.description
    if draft.variables:
        document["vars"] = _mapping(draft.variables, indent=2)
    if draft.secrets:
        document["secrets"] = _sequence(draft.secrets, indent=2)
    document["sources"] = _mapping(draft.sources, indent=2)
    if draft.tasks:
        document["tasks"] = _sequence(draft.tasks, indent=2)
    if draft.exports:
        document["exports"] = _sequence(draft.exports, indent=2)
    if draft.variable_comments:
        anchor = "vars" if "vars" in document else "secrets" if "secrets" in document else "sources"
        document.yaml_set_comment_before_after_key(anchor, before=_text(draft.variable_comments))
    document.yaml_set_start_comment(_text(draft.header))
    stream = io.StringIO()
    _yaml().dump(document, stream)
    return stream.getvalue()

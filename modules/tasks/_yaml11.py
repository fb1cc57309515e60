"""YAML read as Ansible reads a vars file: YAML 1.1 with PyYAML's exact implicit types.

yes/no/on/off are booleans, 0644 is octal (420), 1:30 is sexagesimal (90),
while "y", "1e3" and "0o17" stay strings, as PyYAML (Ansible's parser) has
them; ruamel.yaml's own 1.1 table differs on those, so the table is PyYAML's.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

# (tag, pattern, first characters): PyYAML's implicit resolvers (yaml/resolver.py), which Ansible uses.
PYYAML_RESOLVERS = (
    ("tag:yaml.org,2002:bool",
     r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$", "yYnNtTfFoO"),
    ("tag:yaml.org,2002:float",
     r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""", "-+0123456789."),
    ("tag:yaml.org,2002:int",
     r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+
        |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""", "-+0123456789"),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:timestamp",
     r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
        (?:[Tt]|[\ \t]+)[0-9][0-9]?
        :[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
        (?:[\ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""", "0123456789"),
    ("tag:yaml.org,2002:value", r"^(?:=)$", "="),
)


class PyYAMLResolver(VersionedResolver):
    """ruamel's resolver with PyYAML's table, whatever version a document declares."""

    @property
    def processing_version(self) -> Any:
        # always 1.1 (0644 is octal), also after an explicit `---`, where ruamel would fall back to 1.2
        return (1, 1)

    @property
    def versioned_resolver(self) -> Any:
        if not hasattr(self, "_pyyaml_table"):
            table: dict[Any, list] = {}
            for tag, pattern, firsts in PYYAML_RESOLVERS:
                compiled = re.compile(pattern, re.X)
                for char in firsts:
                    table.setdefault(char, []).append((tag, compiled))
            self._pyyaml_table = table
        return self._pyyaml_table


class VarsFileError(Exception):
    """A vars file that cannot be read; the message says where."""


class VarsConstructor(SafeConstructor):
    """The safe constructor, plus Ansible's two tags (a subclass: SafeConstructor itself stays as it is)."""

    def construct_unsafe(self, node: Any) -> Any:
        # Ansible's !unsafe marks a value never to be templated; here it is the plain value.
        if isinstance(node, SequenceNode):
            return self.construct_sequence(node, deep=True)
        if isinstance(node, MappingNode):
            return self.construct_mapping(node, deep=True)
        return self.construct_scalar(node)

    def construct_vault(self, node: Any) -> Any:
        raise VarsFileError(f"line {node.start_mark.line + 1}: !vault values are encrypted with ansible-vault, "
                            "which recipe does not decrypt; use the recipe's secrets: instead")


VarsConstructor.add_constructor("!unsafe", VarsConstructor.construct_unsafe)
VarsConstructor.add_constructor("!vault", VarsConstructor.construct_vault)


def _loader() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 1)                # 0644 is octal, as in PyYAML
    yaml.Resolver = PyYAMLResolver
    yaml.Constructor = VarsConstructor
    yaml.allow_duplicate_keys = True     # PyYAML keeps the last one, as Ansible does (it only warns)
    return yaml


def load_vars_text(text: str, name: str) -> Any:
    """The data of a YAML (or JSON) text, read as Ansible reads it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _loader().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise VarsFileError(f"YAML parsing failed at {where}: {exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise VarsFileError(f"YAML parsing failed in {name}: {exc}") from None


def load_vars_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VarsFileError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return load_vars_text(text, str(path))

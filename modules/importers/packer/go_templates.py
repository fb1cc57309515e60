"""Packer's Go template actions ({{user `x`}}, {{timestamp}}, ...) in a string, translated to Jinja.

JSON templates use them everywhere; HCL2 templates still have them in a few
builder options (ami_name = "web-{{timestamp}}"). Only the small set of
functions Packer's templates use is known. The fields a builder fills in
({{ .HTTPIP }}) are known only in the options recipe has them for too (a
boot_command's HTTP server, see BUILDER_FIELDS); anywhere else, and for the
rest ({{ .Path }}), they cannot be evaluated outside Packer and are
Untranslatable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Union

from modules.importers.packer.expressions import (Code, Expr, InvalidReference, Lit, Untranslatable, code,
                                                  env_lookup, literal_code, template)

ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
# a backquoted or double-quoted string, a pipe, or a bare word (a function, a .Field, a number)
TOKEN = re.compile(r"`[^`]*`|\"(?:[^\"\\]|\\.)*\"|\||[^\s|`\"]+")
# Packer's clean_resource_name: what an image name may not hold becomes "-"
CLEAN_NAME = r"[^a-zA-Z0-9()\[\] ./'@_-]"
FILTERS = {
    "lower": "lower",
    "upper": "upper",
    "clean_resource_name": f"regex_replace({literal_code(CLEAN_NAME)}, '-')",
    "clean_ami_name": f"regex_replace({literal_code(CLEAN_NAME)}, '-')",
}
BUILD_FIELDS = {"ID": "build.id", "PackerRunUUID": "build.id"}
# What Packer fills in a boot_command ({{ .HTTPIP }}:{{ .HTTPPort }}), as the variables recipe renders an
# installer base's options with: the HTTP server the installer fetches its answer file from, and the VM's name
# (Packer's vm_name; recipe's machine is named build.name, <recipe>-<source>, as its exports are)
BOOT_COMMAND_FIELDS: Mapping[str, str] = MappingProxyType({"HTTPIP": "http_ip", "HTTPPort": "http_port",
                                                          "Name": "build.name"})
BUILDER_FIELDS: Mapping[str, Mapping[str, str]] = MappingProxyType({"boot_command": BOOT_COMMAND_FIELDS})
NO_FIELDS: Mapping[str, str] = MappingProxyType({})


def builder_fields(option: str) -> Mapping[str, str]:
    """The {{ .Field }}s Packer fills in a builder's option, by their Jinja equivalents (none for most)."""
    return BUILDER_FIELDS.get(option, NO_FIELDS)


@dataclass(frozen=True)
class GoContext:
    """What the functions refer to: user variables by their recipe name, and the two folders."""

    user_variables: dict[str, str]       # template name -> recipe name
    template_dir: str                    # absolute; paths are made relative to the recipe later
    workdir: str
    # the {{ .Field }}s Packer fills in the option being read (builder_fields)
    fields: Mapping[str, str] = field(default_factory=lambda: NO_FIELDS)

    def user(self, name: str) -> Expr:
        if name not in self.user_variables:
            raise InvalidReference(f"{{{{user `{name}`}}}}: no variable {name!r} is declared",
                                   hint=f'declare it under "variables": {{"{name}": ""}}')
        return Code(self.user_variables[name])


def translate(text: str, context: GoContext) -> Expr:
    """text with each {{ ... }} action replaced by its Jinja equivalent."""
    parts: list[Union[str, Expr]] = []
    end = 0
    for match in ACTION.finditer(text):
        parts.append(text[end:match.start()])
        parts.append(_pipeline(match.group(1), context))
        end = match.end()
    parts.append(text[end:])
    return template(parts)


def _pipeline(action: str, context: GoContext) -> Expr:
    tokens = TOKEN.findall(action)
    stages: list[list[str]] = [[]]
    for token in tokens:
        if token == "|":
            stages.append([])
        else:
            stages[-1].append(token)
    if not stages[0]:
        raise Untranslatable(f"{{{{{action}}}}}: an empty action")
    value = _call(stages[0], context)
    for stage in stages[1:]:
        if len(stage) != 1 or stage[0] not in FILTERS:
            raise Untranslatable(f"{{{{{action.strip()}}}}}: {' '.join(stage)!r} has no Jinja filter here")
        value = Code(f"({code(value)}) | {FILTERS[stage[0]]}")
    return value


def _argument(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    if token.startswith('"'):
        return bytes(token[1:-1], "utf-8").decode("unicode_escape")
    return token


def _call(words: list[str], context: GoContext) -> Expr:
    name, args = words[0], [_argument(w) for w in words[1:]]
    if name.startswith(".") and name[1:] in context.fields and len(words) == 1:
        return Code(context.fields[name[1:]])
    if name.startswith("."):
        raise Untranslatable(f"{{{{ {name} }}}} is filled in by Packer while it builds; recipe has no such value")
    function = FUNCTIONS.get(name)
    if function is None:
        raise Untranslatable(f"{{{{ {' '.join(words)} }}}}: Packer's {name!r} function has no recipe equivalent")
    return function(args, context)


def _one(args: list[str], what: str) -> str:
    if len(args) != 1:
        raise Untranslatable(f"{what} takes one argument")
    return args[0]


def _build(args: list[str], context: GoContext) -> Expr:
    wanted = _one(args, "build")
    if wanted not in BUILD_FIELDS:
        raise Untranslatable(f"{{{{ build `{wanted}` }}}} is known only to Packer while it builds")
    return Code(BUILD_FIELDS[wanted])


def _no_arguments(expr: Expr, name: str) -> Callable[[list[str], GoContext], Expr]:
    def function(args: list[str], context: GoContext) -> Expr:
        if args:
            raise Untranslatable(f"{{{{ {name} {' '.join(args)} }}}}: recipe's equivalent takes no arguments")
        return expr
    return function


FUNCTIONS: dict[str, Callable[[list[str], GoContext], Expr]] = {
    "user": lambda args, ctx: ctx.user(_one(args, "user")),
    "env": lambda args, ctx: env_lookup(_one(args, "env")),
    "template_dir": lambda args, ctx: Lit(ctx.template_dir),
    "pwd": lambda args, ctx: Lit(ctx.workdir),
    # a unique number per build, as Packer's: recipe's build.timestamp is the build's start (Unix seconds)
    "timestamp": _no_arguments(Code("build.timestamp"), "timestamp"),
    # Packer's uuid is used to make names unique: the build's id is unique per build
    "uuid": _no_arguments(Code("build.id"), "uuid"),
    "build_name": _no_arguments(Code("build.source"), "build_name"),
    "build": _build,
}

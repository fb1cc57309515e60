"""HCL2 expressions, as python-hcl2 parses them (lark trees), translated to Jinja.

var.x and local.x become the recipe variables named for them, path.root and
path.cwd the folders (absolute here; paths are made relative to the recipe
later), env("X") a lookup of the same environment variable, and the handful of
functions with a Jinja twin their filters. Anything else (data sources, for
expressions, formatdate) is Untranslatable; a reference to a variable that does
not exist is an InvalidReference, as Packer would have it.
"""
from __future__ import annotations

import posixpath
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

import hcl2
from hcl2.utils import HEREDOC_PATTERN, HEREDOC_TRIM_PATTERN, process_escape_sequences
from lark import Token, Tree
from lark.exceptions import UnexpectedInput

from modules.importers.packer import go_templates
from modules.importers.packer.expressions import (Code, Expr, InvalidReference, Lit, Untranslatable, code,
                                                  env_lookup, literal_code, structure, template)
from modules.importers.packer.names import RecipeNames

OPERATORS = {"&&": "and", "||": "or"}
BUILD_FIELDS = {"ID": "build.id", "PackerRunUUID": "build.id"}


@dataclass(frozen=True)
class HclContext:
    names: RecipeNames
    template_dir: str                    # absolute
    workdir: str                         # absolute
    references: bool = True              # False in variable files, where Packer allows no references
    # the {{ .Field }}s Packer fills in the option being read: its Go template actions may name them
    fields: Mapping[str, str] = field(default_factory=lambda: go_templates.NO_FIELDS)

    def go(self) -> go_templates.GoContext:
        return go_templates.GoContext(user_variables={}, template_dir=self.template_dir, workdir=self.workdir,
                                      fields=self.fields)


def translate(node: Any, context: HclContext) -> Expr:
    """The Jinja equivalent of an expression node of python-hcl2's parse tree."""
    if isinstance(node, Token):
        return _token(node)
    handler = NODES.get(node.data)
    if handler is None:
        raise Untranslatable(f"HCL's {node.data.replace('_', ' ')} has no Jinja equivalent")
    return handler(node, context)


def translate_json(value: Any, context: HclContext) -> Expr:
    """A value of HCL's JSON syntax: every string in it is a template ("${var.x}")."""
    if isinstance(value, str):
        return translate(template_node(value), context)
    if isinstance(value, list):
        return structure([translate_json(v, context) for v in value])
    if isinstance(value, dict):
        return structure([translate_json(v, context) for v in value.values()], [str(k) for k in value])
    return Lit(value)


def _children(node: Tree) -> list[Any]:
    """The meaningful children: no punctuation, no line breaks or comments."""
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def _token(token: Token) -> Expr:
    raise Untranslatable(f"unexpected {token.type} {str(token)!r}")


def _expr_term(node: Tree, context: HclContext) -> Expr:
    (inner,) = _children(node)
    result = translate(inner, context)
    parenthesized = any(isinstance(c, Token) and c.type == "LPAR" for c in node.children)
    return Code(f"({code(result)})") if parenthesized and not isinstance(result, Lit) else result


def _number(node: Tree, context: HclContext) -> Expr:
    text = str(node.children[0])
    return Lit(float(text) if any(c in text for c in ".eE") else int(text))


def _literal_value(node: Tree, context: HclContext) -> Expr:
    return Lit({"true": True, "false": False, "null": None}[str(node.children[0])])


def _string(node: Tree, context: HclContext) -> Expr:
    parts: list[Union[str, Expr]] = []
    for part in _children(node):
        (content,) = part.children
        if isinstance(content, Token):
            parts.append(_literal_text(content, context))
        elif content.data == "interpolation":
            parts.append(translate(_children(content)[0], context))
        else:
            raise Untranslatable("HCL's %{ } template directives have no Jinja equivalent here")
    return template(parts)


def _literal_text(token: Token, context: HclContext) -> Expr:
    if token.type == "ESCAPED_INTERPOLATION":      # $${X} is the text ${X}
        return Lit(str(token)[1:])
    if token.type == "ESCAPED_DIRECTIVE":
        return Lit(str(token)[1:])
    # Packer still evaluates its Go template actions in HCL2 strings (ami_name = "web-{{timestamp}}")
    return go_templates.translate(process_escape_sequences(str(token)), context.go())


def _heredoc(node: Tree, context: HclContext) -> Expr:
    text = str(node.children[0])
    trim = node.data == "heredoc_template_trim"
    match = (HEREDOC_TRIM_PATTERN if trim else HEREDOC_PATTERN).match(text)
    if match is None:
        raise Untranslatable("a heredoc python-hcl2 could not take apart")
    body = match.group(2)
    body = body[: body.rfind("\n") + 1]             # the closing marker's own indentation is not text
    body = textwrap.dedent(body) if trim else body
    return translate(template_node(body), context)


def template_node(text: str) -> Tree:
    """The parse tree of text as an HCL string template (a heredoc's body, a JSON-syntax string), so that its
    ${ } interpolations are parsed by python-hcl2 as a quoted string's are."""
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    try:
        tree = hcl2.parses_to_tree(f"x = {quoted}\n")
    except UnexpectedInput:
        raise Untranslatable("a string template python-hcl2 cannot parse (an unclosed ${ ?)") from None
    attribute = next(c for c in tree.children[0].children if getattr(c, "data", "") == "attribute")
    return attribute.children[-1]


def _tuple(node: Tree, context: HclContext) -> Expr:
    return structure([translate(c, context) for c in _children(node)])


def _object(node: Tree, context: HclContext) -> Expr:
    keys, values = [], []
    for element in _children(node):
        key_node, value_node = _children(element)
        keys.append(_object_key(key_node, context))
        values.append(translate(value_node, context))
    return structure(values, keys)


def _object_key(node: Tree, context: HclContext) -> str:
    inner = node.children[0]
    if isinstance(inner, Token):                       # { in = ... }: a keyword as a key
        return str(inner)
    bare = _children(inner)
    if inner.data == "expr_term" and len(bare) == 1 and bare[0].data == "identifier":
        return str(bare[0].children[0])               # { name = ... }: the key is the word itself
    key = translate(inner, context)
    if not isinstance(key, Lit):
        raise Untranslatable("a mapping key computed from an expression")
    return str(key.value)


def _identifier(node: Tree, context: HclContext) -> Expr:
    raise Untranslatable(f"the bare name {str(node.children[0])!r}")


def _traversal(node: Tree, context: HclContext) -> Expr:
    """var.x.y["z"], local.x, path.root, source.name, build.ID, data.*: a root name and its accessors."""
    accessors: list[tuple[str | None, str]] = []
    while node.data in ("get_attr_expr_term", "index_expr_term"):
        term, access = _children(node)
        accessors.insert(0, _accessor(access, context))
        node = _children(term)[0] if term.data == "expr_term" else term
    if node.data != "identifier":
        return Code(code(translate(node, context)) + "".join(text for _, text in accessors))
    return _reference(str(node.children[0]), accessors, context)


def _accessor(node: Tree, context: HclContext) -> tuple[str | None, str]:
    """(the attribute's name, or None for an index; its Jinja text)."""
    if node.data == "get_attr":
        name = str(_children(node)[0].children[0])
        return name, f".{name}" if name.isidentifier() else f"[{literal_code(name)}]"
    if node.data == "short_index":
        return None, f"[{node.children[-1]}]"
    return None, f"[{code(translate(_children(node)[0], context))}]"


def _reference(root: str, accessors: list[tuple[str | None, str]], context: HclContext) -> Expr:
    first = accessors[0][0] if accessors else None
    rest = "".join(text for _, text in accessors[1:])
    written = root + "".join(text for _, text in accessors)
    if root in ("var", "local"):
        if not context.references:
            raise InvalidReference(f"{written}: a variable file cannot refer to variables",
                                   hint="give the value itself")
        table = context.names.variables if root == "var" else context.names.locals
        if first not in table:
            kind = "variable" if root == "var" else "local"
            raise InvalidReference(f"{written}: no {kind} {first!r} is declared",
                                   hint=f'declare it with {kind} "{first}" {{ ... }}' if kind == "variable"
                                   else f"define it in a locals {{ }} block: {first} = ...")
        return Code(table[first] + rest)
    if root == "path" and first in ("root", "cwd") and not rest:
        return Lit(context.template_dir if first == "root" else context.workdir)
    if root == "source" and first == "name" and not rest:
        return Code("build.source")
    if root == "build" and first in BUILD_FIELDS and not rest:
        return Code(BUILD_FIELDS[first])
    if root == "data":
        raise Untranslatable("data sources are not imported: look the value up and give it as a variable")
    raise Untranslatable(f"{written} is known only to Packer while it builds")


def _function_call(node: Tree, context: HclContext) -> Expr:
    parts = _children(node)
    name = str(parts[0].children[0])
    args = [translate(a, context) for a in _children(parts[-1])] if parts[-1].data == "arguments" else []
    function = FUNCTIONS.get(name)
    if function is None:
        raise Untranslatable(f"Packer's {name}() function has no recipe equivalent")
    return function(args, context)


def _binary_op(node: Tree, context: HclContext) -> Expr:
    left, term = _children(node)[:2]
    operator_node, right = _children(term)
    operator = str(operator_node.children[0])
    return Code(f"{code(translate(left, context))} {OPERATORS.get(operator, operator)} "
                f"{code(translate(right, context))}")


def _unary_op(node: Tree, context: HclContext) -> Expr:
    operator = str(node.children[0])
    operand = code(translate(_children(node)[0], context))
    return Code(f"not {operand}" if operator == "!" else f"-{operand}")


def _conditional(node: Tree, context: HclContext) -> Expr:
    condition, yes, no = (translate(c, context) for c in _children(node))
    return Code(f"({code(yes)} if {code(condition)} else {code(no)})")


def _one_argument(args: list[Expr], name: str) -> Expr:
    if len(args) != 1:
        raise Untranslatable(f"{name}() with {len(args)} arguments")
    return args[0]


def _filter(name: str, jinja: str) -> Callable[[list[Expr], HclContext], Expr]:
    return lambda args, context: Code(f"({code(_one_argument(args, name))}) | {jinja}")


def _env(args: list[Expr], context: HclContext) -> Expr:
    name = _one_argument(args, "env")
    if not isinstance(name, Lit) or not isinstance(name.value, str):
        raise Untranslatable("env() of a computed name")
    return env_lookup(name.value)


def _join(args: list[Expr], context: HclContext) -> Expr:
    if len(args) < 2:
        raise Untranslatable("join() needs a separator and lists")
    lists = " + ".join(f"({code(a)})" for a in args[1:])
    return Code(f"({lists}) | join({code(args[0])})")


def _replace(args: list[Expr], context: HclContext) -> Expr:
    if len(args) != 3:
        raise Untranslatable("replace() takes three arguments")
    text, search, replacement = (code(a) for a in args)
    old = args[1]
    regex = isinstance(old, Lit) and isinstance(old.value, str) and len(old.value) > 1
    if regex and old.value[0] == old.value[-1] == "/":      # HCL's replace("x", "/re/", ...) is a regex
        return Code(f"({text}) | regex_replace({literal_code(old.value[1:-1])}, {replacement})")
    return Code(f"({text}) | replace({search}, {replacement})")


def _regex_replace(args: list[Expr], context: HclContext) -> Expr:
    if len(args) != 3:
        raise Untranslatable("regex_replace() takes three arguments")
    text, pattern, replacement = args
    if isinstance(replacement, Lit) and isinstance(replacement.value, str):    # Go's $1 is Python's \1
        replacement = Lit(replacement.value.replace("${", "\\g<").replace("$", "\\"))
    return Code(f"({code(text)}) | regex_replace({code(pattern)}, {code(replacement)})")


def _file(args: list[Expr], context: HclContext) -> Expr:
    """Packer's file() reads a relative path from the folder it runs in; recipe's lookup from the recipe's:
    a literal path is made absolute here, and relative to the recipe later, as path.cwd is."""
    path = _one_argument(args, "file")
    if isinstance(path, Lit) and isinstance(path.value, str) and not path.value.startswith(("/", "~")):
        path = Lit(posixpath.join(context.workdir, path.value))
    return Code(f"lookup('file', {code(path)})")


FUNCTIONS: dict[str, Callable[[list[Expr], HclContext], Expr]] = {
    "env": _env,
    "upper": _filter("upper", "upper"),
    "lower": _filter("lower", "lower"),
    "trimspace": _filter("trimspace", "trim"),
    "length": _filter("length", "length"),
    "basename": _filter("basename", "basename"),
    "dirname": _filter("dirname", "dirname"),
    "abspath": lambda args, context: _one_argument(args, "abspath"),
    "join": _join,
    "replace": _replace,
    "regex_replace": _regex_replace,
    "file": _file,
    # a stamp unique to the build, which is what templates use it for (recipe's is in Unix seconds)
    "timestamp": lambda args, context: Code("build.timestamp"),
    "uuidv4": lambda args, context: Code("build.id"),
}

NODES: dict[str, Callable[[Tree, HclContext], Expr]] = {
    "expr_term": _expr_term,
    "int_lit": _number,
    "float_lit": _number,
    "literal_value": _literal_value,
    "string": _string,
    "heredoc_template": _heredoc,
    "heredoc_template_trim": _heredoc,
    "tuple": _tuple,
    "object": _object,
    "identifier": _identifier,
    "get_attr_expr_term": _traversal,
    "index_expr_term": _traversal,
    "function_call": _function_call,
    "binary_op": _binary_op,
    "unary_op": _unary_op,
    "conditional": _conditional,
}

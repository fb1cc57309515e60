"""Ansible's backslash rule for Jinja string constants, as a lexer.

In a task's arguments and variables, a string constant inside {{ }} keeps its backslashes: written in a YAML
double-quoted string, "{{ x | regex_replace('(.)', '\\\\1') }}" reaches Jinja as '\\1', and Ansible means the
backreference, not Jinja's escape for the character 1 (YAML already took one level of escapes). In conditionals
(`when`, `that`, ...) and in template files, Jinja's own escapes apply. `backslashes(mode)` says which applies to
what is compiled inside it: "" Jinja's, "variables" kept inside {{ }}, "all" kept everywhere (a single expression
compiled on its own).
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

from jinja2 import Environment
from jinja2.lexer import TOKEN_STRING, TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END, Lexer

_MODE: contextvars.ContextVar[str] = contextvars.ContextVar("recipe_jinja_backslashes", default="")


@contextlib.contextmanager
def backslashes(mode: str) -> Iterator[None]:
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


class AnsibleLexer(Lexer):
    def tokeniter(self, source: str, name: str | None, filename: str | None = None,
                  state: str | None = None) -> Iterator[tuple[int, str, str]]:
        mode = _MODE.get()
        inside = mode == "all"
        for lineno, token, value in super().tokeniter(source, name, filename, state):
            if mode == "variables" and token in (TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END):
                inside = token == TOKEN_VARIABLE_BEGIN
            elif inside and token == TOKEN_STRING:
                value = value.replace("\\", "\\\\")
            yield lineno, token, value


_LEXERS: dict[tuple, Lexer] = {}


def lexer_for(environment: Environment) -> Lexer:
    """One lexer per set of syntax settings, as Jinja's own get_lexer keeps them (an overlay with trim_blocks
    gets its own)."""
    key = (environment.block_start_string, environment.block_end_string, environment.variable_start_string,
           environment.variable_end_string, environment.comment_start_string, environment.comment_end_string,
           environment.line_statement_prefix, environment.line_comment_prefix, environment.trim_blocks,
           environment.lstrip_blocks, environment.newline_sequence, environment.keep_trailing_newline)
    if key not in _LEXERS:
        _LEXERS[key] = AnsibleLexer(environment)
    return _LEXERS[key]

"""Masking of secret values in everything recipe shows or writes.

A secret can leak in disguise, so each value is masked in the forms a recipe
is likely to produce from it: as is, shell-quoted, JSON-quoted, base64 and
URL-encoded.
"""
from __future__ import annotations

import base64
import json
import shlex
import urllib.parse
from typing import Any, Iterable

from engine.errors import printable

MASK = "********"
MIN_LENGTH = 3   # masking "a" everywhere would make output unreadable and reveal nothing


def _variants(secret: str) -> set[str]:
    forms = {secret, shlex.quote(secret), json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret), printable(secret)}    # printable: how a recipe problem shows it
    raw = secret.encode()
    encoded = base64.b64encode(raw).decode()
    forms.add(encoded)
    forms.add(encoded.rstrip("="))
    return {form for form in forms if len(form) >= MIN_LENGTH}


class Redactor:
    def __init__(self, secrets: Iterable[Any] = ()):
        self._forms: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: Any) -> None:
        if secret is None:
            return
        if isinstance(secret, (dict, list, tuple)):
            for item in (secret.values() if isinstance(secret, dict) else secret):
                self.add(item)
            return
        text = str(secret)
        if len(text) < MIN_LENGTH:
            return
        self._forms = sorted(set(self._forms) | _variants(text), key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def text(self, value: str) -> str:
        for form in self._forms:
            if form in value:
                value = value.replace(form, MASK)
        return value

    def value(self, value: Any) -> Any:
        """value with every string inside it masked; containers are copied."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if isinstance(value, BaseException):
            return self.text(str(value))
        return value

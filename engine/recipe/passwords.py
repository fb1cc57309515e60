"""password_hash: the crypt(3) hashes Ansible's filter makes, identical to it for a given salt.

Ansible 2.19 hashes with passlib; passlib's sha512_crypt, sha256_crypt and md5_crypt are the glibc
algorithms, so the C library's crypt (Python's crypt module, in the standard library up to 3.12) gives
the same strings, and fast: 656,000 rounds take well under a second. The parameters are checked as passlib
checks them (salt alphabet and length, rounds), so a value Ansible refuses is refused here too."""
from __future__ import annotations

import re
import secrets
import string
import warnings
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import TemplateRuntimeError

with warnings.catch_warnings():   # deprecated since 3.11, still there until 3.13: the one C crypt we have
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt as _crypt
    except ImportError:  # pragma: no cover - Python 3.13 and later
        _crypt = None


class PasswordHashFailure(TemplateRuntimeError):
    pass


@dataclass(frozen=True)
class Scheme:
    prefix: str          # $6$ ...
    max_salt: int
    default_rounds: int | None   # Ansible always passes these (the crypt defaults), so they show in the hash
    min_rounds: int = 1000
    max_rounds: int = 999_999_999


SCHEMES = {
    "sha512_crypt": Scheme("6", 16, 656_000),
    "sha256_crypt": Scheme("5", 16, 535_000),
    "md5_crypt": Scheme("1", 8, None),
}
ALIASES = {"sha512": "sha512_crypt", "sha256": "sha256_crypt", "md5": "md5_crypt"}
_SALT_CHARS = string.ascii_letters + string.digits + "./"
_SALT = re.compile(r"^[./0-9A-Za-z]*$")
_IMPLICIT_ROUNDS = 5000   # passlib leaves 'rounds=5000$' out of the hash, as crypt(3) does by default


def password_hash(password: Any, hashtype: str = "sha512", salt: Any = None, salt_size: Any = None,
                  rounds: Any = None, ident: Any = None) -> str:
    name = ALIASES.get(hashtype, hashtype)
    if name not in SCHEMES:
        raise PasswordHashFailure(f"password_hash: {hashtype} is not supported; use sha512, sha256 or md5")
    if _crypt is None:
        raise PasswordHashFailure("password_hash needs Python's crypt module (Python 3.12 or older)")
    scheme = SCHEMES[name]
    setting = f"${scheme.prefix}${_rounds_part(scheme, name, rounds)}{_salt(scheme, name, salt, salt_size)}$"
    return _crypt.crypt(str(password), setting)


def _salt(scheme: Scheme, name: str, salt: Any, salt_size: Any) -> str:
    if not salt:
        size = scheme.max_salt if salt_size is None else int(salt_size)
        if not 0 <= size <= scheme.max_salt:
            raise PasswordHashFailure(f"password_hash: salt_size must be at most {scheme.max_salt} for {name}")
        return "".join(secrets.choice(_SALT_CHARS) for _ in range(size))
    salt = str(salt)
    if len(salt) > scheme.max_salt:
        raise PasswordHashFailure(f"password_hash: salt too large ({name} requires <= {scheme.max_salt} chars)")
    if not _SALT.match(salt):
        raise PasswordHashFailure(f"password_hash: invalid characters in {name} salt (use ./0-9A-Za-z)")
    return salt


def _rounds_part(scheme: Scheme, name: str, rounds: Any) -> str:
    if scheme.default_rounds is None:
        return ""
    count = int(rounds) if rounds else scheme.default_rounds
    if not scheme.min_rounds <= count <= scheme.max_rounds:
        raise PasswordHashFailure(f"password_hash: rounds for {name} must be between {scheme.min_rounds} "
                                  f"and {scheme.max_rounds}, got {count}")
    return "" if count == _IMPLICIT_ROUNDS else f"rounds={count}$"

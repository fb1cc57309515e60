"""How large a value one template operation may make, and the refusal when it would be larger.

template.py's sandbox and the filters and lookups share these, so `'x' * 10**10` and
`range(10**4) | product(range(10**4))` are refused the same way."""
from __future__ import annotations

import math
from typing import Any, Iterable

from jinja2.exceptions import SecurityError

MAX_SIZE = 1_000_000      # characters or items one operation may make


class TooLarge(SecurityError):
    """A template would make a value larger than MAX_SIZE."""


def refuse_size(what: str) -> TooLarge:
    return TooLarge(f"{what} would be larger than {MAX_SIZE} characters or items")


def check_count(count: int, what: str) -> None:
    if count > MAX_SIZE:
        raise refuse_size(what)


def product_size(lengths: Iterable[int]) -> int:
    """Items of a cartesian product, computed without overflowing into a huge int for long inputs."""
    total = 1
    for length in lengths:
        total *= length
        if total > MAX_SIZE:
            return MAX_SIZE + 1
    return total


def permutations_size(n: int, r: int) -> int:
    return math.perm(n, r) if 0 <= r <= n else 0


def combinations_size(n: int, r: int) -> int:
    return math.comb(n, r) if 0 <= r <= n else 0


def sized(value: Any) -> list:
    """value as a list: filters take any iterable, as Ansible's do, and need its length before combining."""
    return list(value)

"""Sizes and durations as people write them on command lines and in recipes: 4G, 512M, 7d, 2h."""
from __future__ import annotations

import re
from typing import Any

from engine.errors import UsageError

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(value: Any) -> int:
    """Bytes of `4G`, `512M`, `1.5G`, `4GiB`, `1T` or a plain number of bytes (ValueError otherwise); units are
    binary, as qemu-img takes them."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        number, unit = value, ""
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(value), re.IGNORECASE)
        if not match:
            raise ValueError(f"{value!r} is not a size")
        number, unit = float(match.group(1)), match.group(2).upper()
    return int(number * (1 << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[unit]))


def duration_seconds(text: str) -> float:
    """Seconds of `90s`, `30m`, `2h`, `7d`, or `0` (ValueError otherwise)."""
    if text.strip() == "0":          # zero needs no unit: everything, however young
        return 0.0
    found = DURATION.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a duration")
    return float(found.group(1)) * SECONDS[found.group(2)]


def parse_duration(text: str, option: str = "--older-than") -> float:
    """A command line's duration option, or a clear error."""
    try:
        return duration_seconds(text)
    except ValueError as error:
        raise UsageError(f"{option}: {error}", hint=f"e.g. {option} 2h (s, m, h or d)") from None


def parse_size_option(text: str, option: str = "--max-size") -> int:
    """A command line's (or the environment's) size, or a clear error."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise UsageError(f"{option}: {error}", hint=f"e.g. {option} 20G (K, M, G or T)") from None


def format_duration(seconds: float) -> str:
    """`45s`, `5m`, `1h30m`: a duration as the options take it, rounded to the second."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs or not whole else ""]
    return "".join(parts)

"""debootstrap --debian-installer's structured output, read back as log lines and as progress."""
from __future__ import annotations

import re
from typing import Sequence

from modules.platforms.qemu.bootstrap_steps import Steps

LOG_EVERY = 0.1         # a progress line per phase change and per tenth of a phase


# debootstrap's phases, as its --debian-installer progress names them: what the log calls each, and its
# typical share of debootstrap's time (measured: bookworm, 214 packages, 296 s on a 2-core host)
DEBOOTSTRAP_PHASES = {
    "DOWNREL": ("retrieving the package lists", 0.002), "DOWNRELSIG": ("retrieving the package lists", 0.001),
    "DOWNPKGS": ("retrieving the package lists", 0.064), "DOWNMAINPKGS": ("retrieving the package lists", 0.0),
    "SIZEDEBS": ("resolving packages", 0.005),
    "DOWNDEBS": ("retrieving {done}/{total} packages", 0.175),
    "EXTRACTPKGS": ("extracting {done}/{total} packages", 0.012),
    "INSTCORE": ("installing the core packages", 0.005),
    "UNPACKREQ": ("unpacking {done}/{total} required packages", 0.05),
    "CONFREQ": ("configuring {done}/{total} required packages", 0.176),
    "UNPACKBASE": ("unpacking {done}/{total} base packages", 0.125),
    "CONFBASE": ("configuring {done}/{total} base packages", 0.385),
}


class DebootstrapOutput:
    """debootstrap --debian-installer's output (its fd 3 made stdout) read as log lines and progress.

    In that mode debootstrap says what it does in structured lines: a message is `I: NAME`, its
    arguments `IA: value`, then its printf format `IF: Retrieving %s %s` (W: and E: alike); a progress
    is `P: now end [NAME]` then `PA:`/`PF:`. Messages come out as debootstrap prints them by hand
    ("I: Retrieving adduser 3.134"); progress lines become `within` calls on steps and, per phase
    and per tenth of one, a line like "bootstrap: retrieving 58/214 packages".
    """

    def __init__(self, steps: Steps, log_every: float = LOG_EVERY):
        self.steps, self.log_every = steps, log_every
        self.starts: dict[str, float] = {}
        start = 0.0
        for name, (_, share) in DEBOOTSTRAP_PHASES.items():
            self.starts[name] = start
            start += share
        self.span = start
        self.phase: str | None = None
        self.now, self.end = 0, 0
        self.packages = 0            # how many packages debootstrap resolved (SIZEDEBS' end)
        self.retrieved = 0
        self.kind, self.args = "", []
        self.logged: tuple[str, int] | None = None
        self.said = ""

    def __call__(self, line: str) -> str | None:
        tag, _, value = line.partition(": ")
        if line in ("IA:", "WA:", "EA:", "PA:"):       # an empty argument
            tag, value = line[:-1], ""
        if tag in ("I", "W", "E"):
            self.kind, self.args = tag, []
            return None
        if tag in ("IA", "WA", "EA"):
            self.args.append(value)
            return None
        if tag in ("IF", "WF", "EF"):
            text = f"{self.kind}: {printf(value, self.args)}"
            if self.kind == "I" and value.startswith("Retrieving %s") and self.phase == "DOWNDEBS":
                self.retrieved += 1
            return text
        if tag == "P":
            self.progress(value.split())
            return self.status()
        if tag in ("PA", "PF"):
            return None
        return line

    def progress(self, fields: list[str]) -> None:
        try:
            now, end = int(fields[0]), int(fields[1])
        except (IndexError, ValueError):
            return
        if len(fields) > 2 and fields[2] in DEBOOTSTRAP_PHASES:
            self.phase = fields[2]
        if self.phase is None:
            return
        self.now, self.end = now, end
        if self.phase == "SIZEDEBS" and end > 1:
            self.packages = end
        self.steps.within(self.fraction())

    def fraction(self) -> float:
        """How far debootstrap is, 0..1."""
        assert self.phase is not None
        share = DEBOOTSTRAP_PHASES[self.phase][1]
        inside = min(self.now / self.end, 1.0) if self.end > 0 else 0.0
        return (self.starts[self.phase] + share * inside) / self.span

    def counts(self) -> tuple[int, int]:
        if self.phase == "DOWNDEBS":      # its progress counts bytes; the packages are counted by message
            return min(self.retrieved, self.packages or self.retrieved), self.packages or self.retrieved
        return self.now, self.end

    def status(self) -> str | None:
        """A progress line when the phase changes or moves on by another tenth."""
        if self.phase is None:
            return None
        inside = min(self.now / self.end, 1.0) if self.end > 0 else 0.0
        label = DEBOOTSTRAP_PHASES[self.phase][0]
        key = (label, 0) if "{" not in label else (self.phase, int(inside / self.log_every))
        if self.logged is not None and key[0] == self.logged[0] and key[1] <= self.logged[1]:
            return None               # the same phase, and no further tenth (download estimates go back and forth)
        self.logged = key
        done, total = self.counts()
        text = label.format(done=done, total=total)
        if text == self.said:             # the bytes moved on, the count of packages did not
            return None
        self.said = text
        return self.steps.say(text)


def printf(fmt: str, args: Sequence[str]) -> str:
    """debootstrap's printf formats with their arguments (%s and %%, which is all it uses)."""
    values = iter(args)
    return re.sub(r"%[-0-9.]*[sd]|%%", lambda m: "%" if m.group() == "%%" else next(values, ""), fmt)

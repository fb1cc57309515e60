"""`recipe sweep`: find and remove what killed runs left behind, and nothing else.

Every temporary resource a build makes carries the tag recipe:build-id (and
recipe:recipe); a sweeper, registered by a platform module, lists the tagged
resources older than --older-than and removes them in a safe order. Age comes
from the build id itself (it starts with the build's UTC start time), so a
resource that lost its creation date still has one; untagged resources are
never touched.
"""
from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import ClassVar

from engine.registry import SWEEPERS

BUILD_ID_TAG = "recipe:build-id"
RECIPE_TAG = "recipe:recipe"


@dataclass(frozen=True)
class SweepOptions:
    regions: tuple[str, ...] = ()       # empty: the default region of the credentials' configuration
    older_than: float = 2 * 3600        # seconds; a build still running is younger than this
    dry_run: bool = False
    profile: str | None = None
    endpoint_url: str | None = None
    include_kept: bool = True           # local: also what --on-error=abort kept on purpose
    buckets: tuple[str, ...] = ()       # s3: the buckets ami exports uploaded to (S3 has no tag search)


@dataclass(frozen=True)
class Leftover:
    kind: str            # instance, image, snapshot, key pair, security group, ...
    id: str
    where: str           # region, host, ...
    build_id: str
    age: float | None    # seconds since the build started, when the build id tells

    def describe(self) -> str:
        age = f", {self.age / 3600:.1f} h old" if self.age is not None else ""
        return f"{self.kind} {self.id} in {self.where} (build {self.build_id}{age})"


class Sweeper:
    name: ClassVar[str]

    def __init_subclass__(cls, name: str | None = None, **kwargs: object):
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            SWEEPERS.add(name, cls)

    def applies(self, options: SweepOptions) -> bool:
        """Whether the options give this sweeper anything to look at (the s3 one needs --bucket)."""
        return True

    def find(self, options: SweepOptions) -> list[Leftover]:  # pragma: no cover - interface
        raise NotImplementedError

    def remove(self, options: SweepOptions, leftovers: list[Leftover]) -> list[tuple[Leftover, str]]:
        """Remove them; what could not be removed, with why."""
        raise NotImplementedError  # pragma: no cover - interface


def build_age(build_id: str, now: float | None = None) -> float | None:
    """Seconds since the build started, from its id (YYYYMMDD-HHMMSS-xxxx, UTC), or None."""
    try:
        started = calendar.timegm(time.strptime(build_id[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        return None
    return (now if now is not None else time.time()) - started


def old_enough(leftover: Leftover, options: SweepOptions) -> bool:
    """A build id without a readable time is swept only with --older-than 0: better left than wrongly removed."""
    if leftover.age is None:
        return options.older_than == 0
    return leftover.age >= options.older_than

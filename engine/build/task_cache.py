"""What a platform that keeps cache layers gives the executor: where the build resumes, and a checkpoint after
each top-level task (the qemu platform's layers; engine.build.layer_keys names them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from engine.build.play import Play


@dataclass(frozen=True)
class Resumed:
    tasks: int                              # the first `tasks` top-level tasks: the machine has their effect
    seconds: tuple[float, ...]              # what each of them took when it ran
    play_state: dict[str, Any]              # engine.build.play_state.snapshot after them


class TaskCache(Protocol):
    resumed: Resumed | None

    async def after_task(self, index: int, play: Play, seconds: float) -> None:
        """Top-level task `index` (from 0) is done: checkpoint the machine, if its layer is to be kept."""

"""Everything that happens is a structlog event; the console (engine.console.view) and --json are views of it.

Every event passes through the secret redactor before any view sees it, so
no view can leak a secret that another view masks.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

import structlog

from engine.secrets import Redactor

Sink = Callable[[dict[str, Any]], None]


class _Fanout:
    """The 'logger' at the end of the structlog chain: hands each event to every sink."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks

    def msg(self, **event: Any) -> None:
        for sink in self.sinks:
            sink(event)

    info = warning = error = debug = msg


@dataclass
class EventBus:
    redactor: Redactor = field(default_factory=Redactor)
    sinks: list[Sink] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._logger = structlog.wrap_logger(
            _Fanout(self.sinks),
            processors=[self._stamp, self._redact],
            context_class=dict,
            cache_logger_on_first_use=False,
        )

    def _stamp(self, _logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("time", round(time.time(), 3))
        event.setdefault("build", None)      # every event says whose it is; null: the run's own (run.start...)
        return event

    def _redact(self, _logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        return self.redactor.value(event)

    def bind(self, **context: Any) -> "Emitter":
        return Emitter(self._logger.bind(**context))

    def emit(self, event: str, **fields: Any) -> None:
        self._logger.info(event, **fields)


class Emitter:
    """A logger bound to one build (or the run); `emit("task.end", status=...)`."""

    def __init__(self, logger: Any):
        self._logger = logger

    def emit(self, event: str, **fields: Any) -> None:
        self._logger.info(event, **fields)

    def bind(self, **context: Any) -> "Emitter":
        return Emitter(self._logger.bind(**context))


def json_lines(stream: TextIO) -> Sink:
    def write(event: dict[str, Any]) -> None:
        stream.write(json.dumps(event, default=str, sort_keys=True) + "\n")
        stream.flush()
    return write


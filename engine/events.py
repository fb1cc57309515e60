"""Everything that happens is a structlog event; the console and --json are two views of it.

Every event passes through the secret redactor before any view sees it, so
no view can leak a secret that another view masks.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
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


STATUS_STYLE = {"ok": "green", "changed": "yellow", "skipped": "cyan", "failed": "bold red"}


class ConsoleView:
    """Human lines: a line per finished task, warnings, errors and a recap per build."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False):
        from rich.console import Console
        self.console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)
        self.verbose = verbose
        self._shown_tenths: dict[tuple[Any, Any], int] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        handler = getattr(self, "_" + event["event"].replace(".", "_"), None)
        if handler:
            handler(event)

    def _print(self, text: str, style: str | None = None) -> None:
        from rich.markup import escape
        self.console.print(f"[{style}]{escape(text)}[/]" if style else escape(text))

    def _build_start(self, e: dict[str, Any]) -> None:
        self._print(f"==> {e['build']}: {e.get('platform', '')} build {e.get('build_id', '')}", "bold")

    def _step_start(self, e: dict[str, Any]) -> None:
        self._print(f"  [{e['build']}] {e['step']}", "dim")

    def _task_end(self, e: dict[str, Any]) -> None:
        status = e["status"]
        prefix = "handler " if e.get("handler") else ""
        line = f"  [{e['build']}] {status:<8} {prefix}{e['task']}  ({e.get('duration', 0):.2f}s)"
        self._print(line, STATUS_STYLE.get(status))
        if status == "failed" and e.get("msg"):
            self._print(f"      {e['msg']}", "red")
        elif e.get("msg") and (self.verbose or e.get("show")):
            self._print(f"      {e['msg']}")

    def _task_output(self, e: dict[str, Any]) -> None:
        if self.verbose:
            self._print(f"      {e['stream']}: {e['line']}", "dim")

    def _progress(self, e: dict[str, Any]) -> None:
        """A line per tenth of a download or conversion; the live bars come with the console view."""
        total, done = e.get("total"), e.get("done", 0)
        if not total:
            return
        tenth = int(10 * done / total)
        key = (e.get("build"), e.get("phase"))
        if tenth > self._shown_tenths.get(key, -1):
            self._shown_tenths[key] = tenth
            size = f" of {total / 2 ** 20:.0f} MiB" if total >= 2 ** 20 else ""   # bytes, or steps
            self._print(f"  [{e.get('build', 'recipe')}] {e.get('phase', '')}: {10 * tenth}%{size}", "dim")

    def _export_end(self, e: dict[str, Any]) -> None:
        made = ", ".join(f"{Path(path).name} ({_size(size)})"
                         for path, size in zip(e.get("artifacts", []), e.get("sizes", [])))
        self._print(f"  [{e['build']}] exported {e['kind']}: {made}  ({e.get('duration', 0):.1f}s)")

    def _export_removed(self, e: dict[str, Any]) -> None:
        self._print(f"  [{e['build']}] removed {Path(e['path']).name}: consumed (keep_input: false)", "dim")

    def _aws(self, e: dict[str, Any]) -> None:
        self._print(f"  [{e['build']}] {e['msg']}", "dim")

    def _warning(self, e: dict[str, Any]) -> None:
        self._print(f"  [{e.get('build', 'recipe')}] warning: {e['msg']}", "magenta")

    def _cleanup(self, e: dict[str, Any]) -> None:
        self._print(f"  [{e['build']}] cleanup: {e['what']}", "dim")

    def _build_end(self, e: dict[str, Any]) -> None:
        counts = e.get("counts", {})
        recap = " ".join(f"{k}={counts.get(k, 0)}" for k in ("ok", "changed", "skipped", "failed"))
        style = "bold green" if e["status"] == "succeeded" else "bold red"
        self._print(f"==> {e['build']}: {e['status']}  {recap}  in {e.get('duration', 0):.1f}s", style)
        if e.get("error"):
            self._print(f"    {e['error']}", "red")
        for artifact in e.get("artifacts", []):
            self._print(f"    artifact: {artifact}")


def _size(size: int) -> str:
    return f"{size / 2 ** 20:.0f} MiB" if size >= 2 ** 20 else f"{max(1, round(size / 1024))} KiB"

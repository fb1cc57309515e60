"""What a person sees of a run: the builds go at once, and each stays easy to follow.

- On a terminal, a live area at the bottom: a line per build with its step,
  its task (`task 3/12: Install nginx`), its elapsed time and, once it is
  done, its status; a bar under it for each download, upload or conversion
  under way; what a slow step is doing (a step.status event, such as a
  booting guest's stage) after the step's name until it ends or a task
  starts. Finished tasks, warnings and each build's recap print above it.
- Elsewhere (a pipe, a CI log), plain lines without ANSI codes, each
  prefixed with the time and the build: `12:03:04 [web-local] changed ...`;
  a build's step.status at most once every 5 s.
- Always, `<output_dir>/<build>/build.log`: every event of that build as a
  timestamped line, command output included, then the serial console logs
  the platform kept there.

Every view is a sink of the EventBus, so it only ever sees redacted events.
"""
from __future__ import annotations

import fcntl
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from engine.console.events import Sink
from engine.secrets import Redactor

STATUS_STYLE = {"ok": "green", "changed": "yellow", "skipped": "cyan", "failed": "bold red"}
BUILD_STYLE = {"succeeded": "bold green", "failed": "bold red", "interrupted": "bold yellow",
               "cancelled": "yellow"}
BUILD_ICON = {"succeeded": "✓", "failed": "✗", "interrupted": "!", "cancelled": "-"}
ASCII_ICON = {"succeeded": "+", "failed": "x", "interrupted": "!", "cancelled": "-"}
RUN = "recipe"          # what a run-level event (no build) is shown as

# (kind, text, style): kind "head" is a ==> line, "line" a line of a build, "detail" a line under the one
# before, "note" a line under a ==> line
Line = tuple[str, str, "str | None"]


def _build_of(e: dict[str, Any]) -> str:
    return e.get("build") or RUN


class EventText:
    """What each event says, as lines; the views decide where they go and how they are prefixed.
    An event it has nothing to say about gives [] (known, quiet) or None (unknown to it)."""

    def __init__(self, verbose: bool = False, status_every: float = 5.0):
        self.verbose = verbose
        self.status_every = status_every     # seconds between two step.status lines of a build
        self._shown_tenths: dict[tuple[Any, Any], int] = {}
        self._status_shown: dict[Any, float] = {}

    def __call__(self, e: dict[str, Any]) -> list[Line] | None:
        handler = getattr(self, "_" + str(e.get("event", "")).replace(".", "_"), None)
        return handler(e) if handler else None

    def _build_start(self, e: dict[str, Any]) -> list[Line]:
        where = f" on {e['worker']}" if e.get("worker") else ""      # a cluster run's worker
        return [("head", f"==> {_build_of(e)}: {e.get('platform', '')} build {e.get('build_id', '')}{where}", "bold")]

    def _step_start(self, e: dict[str, Any]) -> list[Line]:
        return [("line", e["step"], "dim")]

    def _step_status(self, e: dict[str, Any]) -> list[Line]:
        """What a long step is doing (a booting guest's stage): a line at most every status_every
        seconds, as a step may report several changes a second and a CI log needs only the gist."""
        moment, build = float(e.get("time") or time.time()), e.get("build")
        last = self._status_shown.get(build)
        if last is not None and moment - last < self.status_every:
            return []
        self._status_shown[build] = moment
        return [("line", f"{e.get('step', '')}  {e.get('status', '')}", "dim")]

    def _task_end(self, e: dict[str, Any]) -> list[Line]:
        status = e["status"]
        prefix = "handler " if e.get("handler") else ""
        lines: list[Line] = [("line", f"{status:<8} {prefix}{e['task']}  ({e.get('duration', 0):.2f}s)",
                              STATUS_STYLE.get(status))]
        if status == "failed" and e.get("msg"):
            lines.append(("detail", str(e["msg"]), "red"))
        elif e.get("msg") and (self.verbose or e.get("show")):
            lines.append(("detail", str(e["msg"]), None))
        if e.get("diff"):                       # only with --diff
            lines += [("detail", line, _diff_style(line)) for line in str(e["diff"]).rstrip("\n").splitlines()]
        return lines

    def _cache(self, e: dict[str, Any]) -> list[Line]:
        """Where a build starts, and why its layers stop early if they do."""
        lines: list[Line] = []
        if e.get("resumes") is not None:
            how = "resuming its saved machine" if e.get("warm") else "booting its disk"
            lines.append(("line", f"cache: layer {e.get('layer')} after task {e['resumes']}: {how}", "dim"))
        if e.get("not_cached"):
            lines.append(("line", f"cache: no layers from task {e['not_cached']}", "dim"))
        return lines

    def _task_cached(self, e: dict[str, Any]) -> list[Line]:
        return [("line", f"{'cached':<8} {e['task']}  (saved {e.get('saved', 0):.2f}s)", "dim")]

    def _task_output(self, e: dict[str, Any]) -> list[Line]:
        return [("detail", f"{e['stream']}: {e['line']}", "dim")] if self.verbose else []

    def _progress(self, e: dict[str, Any]) -> list[Line]:
        """A line per tenth of a download, upload or conversion."""
        total, done = e.get("total"), e.get("done", 0)
        if not total:
            return []
        tenth = min(10, int(10 * done / total))
        key = (e.get("build"), e.get("phase"))
        if tenth <= self._shown_tenths.get(key, -1):
            return []
        self._shown_tenths[key] = tenth
        size = f" of {total / 2 ** 20:.0f} MiB" if total >= 2 ** 20 else ""   # bytes, or steps
        return [("line", f"{e.get('phase', '')}: {10 * tenth}%{size}", "dim")]

    def _export_end(self, e: dict[str, Any]) -> list[Line]:
        made = ", ".join(f"{Path(path).name} ({_size(size)})"
                         for path, size in zip(e.get("artifacts", []), e.get("sizes", [])))
        return [("line", f"exported {e['kind']}: {made}  ({e.get('duration', 0):.1f}s)", None)]

    def _export_removed(self, e: dict[str, Any]) -> list[Line]:
        return [("line", f"removed {Path(e['path']).name}: consumed (keep_input: false)", "dim")]

    def _aws(self, e: dict[str, Any]) -> list[Line]:
        return [("line", str(e["msg"]), "dim")]

    def _warning(self, e: dict[str, Any]) -> list[Line]:
        return [("line", f"warning: {e['msg']}", "magenta")]

    def _interrupt(self, e: dict[str, Any]) -> list[Line]:
        return [("line", f"interrupted ({e.get('signal', 'signal')}): {e.get('msg', '')}", "bold yellow")]

    def _prompt(self, e: dict[str, Any]) -> list[Line]:
        return [("line", f"? {e['msg']}", "bold cyan")]

    def _cleanup(self, e: dict[str, Any]) -> list[Line]:
        return [("line", f"cleanup: {e['what']}", "dim")]

    def _build_end(self, e: dict[str, Any]) -> list[Line]:
        recap = recap_counts(e.get("counts", {}))
        lines: list[Line] = [("head", f"==> {_build_of(e)}: {e['status']}  {recap}  in {e.get('duration', 0):.1f}s",
                              "bold green" if e["status"] == "succeeded" else "bold red")]
        if e.get("error"):
            lines.append(("note", str(e["error"]), "red"))
        lines += [("note", f"artifact: {artifact}", None) for artifact in e.get("artifacts", [])]
        return lines


def recap_counts(counts: dict[str, int]) -> str:
    """ok=3 changed=2 skipped=0 failed=0, and cached=N when the cache spared tasks."""
    shown = ("ok", "changed", "skipped", "failed") + (("cached",) if counts.get("cached") else ())
    return " ".join(f"{k}={counts.get(k, 0)}" for k in shown)


def _diff_style(line: str) -> str | None:
    if line.startswith(("+++", "---")):
        return "bold"
    return {"+": "green", "-": "red", "@": "cyan"}.get(line[:1])


class ConsoleView:
    """Human lines: a line per finished task, warnings, errors and a recap per build.

    timestamps=False: the historical format (`  [web-local] changed ...`), through rich.
    timestamps=True: plain text, no ANSI codes, every line `HH:MM:SS [build] ...` (for pipes and CI logs).
    skip: events not to print (the live view shows steps and progress itself)."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False, timestamps: bool = False,
                 console: Any = None, skip: Iterable[str] = ()):
        from rich.console import Console
        self.stream = stream or sys.stdout
        self.console = console or Console(file=self.stream, highlight=False, soft_wrap=True)
        self.verbose = verbose
        self.timestamps = timestamps
        self.skip = frozenset(skip)
        self.text = EventText(verbose)
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") in self.skip:
            return
        lines = self.text(event)
        if lines:
            self.show(event, lines)

    def show(self, e: dict[str, Any], lines: list[Line]) -> None:
        if self.timestamps:
            stamp = time.strftime("%H:%M:%S", time.localtime(e.get("time") or time.time()))
            build = _build_of(e)
            detail = f"{stamp} [{build}]     "
            prefixes = {"head": f"{stamp} ", "line": f"{stamp} [{build}] ", "detail": detail, "note": detail}
            with self._lock:
                for kind, text, _style in lines:
                    self.stream.write("".join(prefixes[kind] + part + "\n" for part in text.split("\n")))
                self.stream.flush()
            return
        from rich.markup import escape
        build = _build_of(e)
        prefixes = {"head": "", "line": f"  [{build}] ", "detail": "      ", "note": "    "}
        for kind, text, style in lines:
            body = escape(prefixes[kind] + text)
            self.console.print(f"[{style}]{body}[/]" if style else body)


# --- build.log ------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class _LogText(EventText):
    """build.log says everything: command output without -v, every task start, every step's end,
    every step status."""

    def __init__(self) -> None:
        super().__init__(verbose=True, status_every=0.0)

    def _task_start(self, e: dict[str, Any]) -> list[Line]:
        number, total = e.get("number"), e.get("total")
        count = f"task {min(number, total) if total else number}/{total}: " if number and total else "task: "
        return [("line", count + ("handler " if e.get("handler") else "") + str(e["task"]), None)]

    def _step_end(self, e: dict[str, Any]) -> list[Line]:
        return [("line", f"{e['step']}: done ({e.get('duration', 0):.1f}s)", "dim")]


def _generic(e: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        return v if isinstance(v, str) and v and not re.search(r"[\s\"=]", v) else json.dumps(v, default=str)
    fields = " ".join(f"{k}={value(v)}" for k, v in sorted(e.items()) if k not in ("event", "time", "build"))
    return f"{e.get('event')} {fields}".rstrip()


class BuildLogs:
    """A sink writing each build's events to <output_dir>/<build>/build.log, a line each, flushed per line.
    At build.end it appends the serial console logs (console-*.log) the platform left in that folder."""

    def __init__(self, output_dir: Path, redactor: Redactor | None = None):
        self.output_dir = Path(output_dir)
        self.redactor = redactor or Redactor()
        self.text = _LogText()
        self._files: dict[str, TextIO] = {}
        self._begun: set[str] = set()          # logs this run started: a late event appends, never truncates
        self._broken: set[str] = set()         # logs that could not be written: said once, then left alone
        self._lock = threading.Lock()

    def path(self, build: str) -> Path:
        return self.output_dir / build / "build.log"

    def __call__(self, e: dict[str, Any]) -> None:
        build = e.get("build")
        if not build:                           # run-level events belong to no build's log
            return
        lines = self.text(e)
        if lines is None:
            lines = [("line", _generic(e), None)]
        moment = e.get("time") or time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment)) + f".{int(moment * 1000) % 1000:03d}"
        with self._lock:
            if build in self._broken:
                return
            try:
                self._write(str(build), e, lines, stamp)
            except BlockingIOError:          # another live run writes this build's folder; its claim refuses us
                self._broken.add(build)
                sys.stderr.write(f"warning: not writing {self.path(str(build))}: another recipe run is writing it\n")
            except OSError as exc:           # a full disk or a read-only folder must not fail the build
                self._broken.add(build)
                sys.stderr.write(f"warning: cannot write {self.path(str(build))}: {exc}\n")

    def _write(self, build: str, e: dict[str, Any], lines: list[Line], stamp: str) -> None:
        log = self._open(build)
        for kind, text, _style in lines:
            indent = "    " if kind in ("detail", "note") else ""
            for part in text.split("\n"):
                log.write(f"{stamp} {indent}{part}\n")
                log.flush()
        if e.get("event") == "build.end":
            self._append_consoles(build, log)

    def _open(self, build: str) -> TextIO:
        log = self._files.get(build)
        if log is None:
            path = self.path(build)
            path.parent.mkdir(parents=True, exist_ok=True)
            log = open(path, "a", encoding="utf-8", errors="replace")
            try:                             # held while open: a second run on the same folder must not truncate it
                fcntl.flock(log.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                log.close()
                raise
            if build not in self._begun:     # this run's first line: a fresh log
                log.truncate(0)
            self._files[build] = log
            self._begun.add(build)
        return log

    def _append_consoles(self, build: str, log: TextIO) -> None:
        for console in sorted(self.path(build).parent.glob("console-*.log")):
            try:
                raw = console.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                log.write(f"----- {console.name}: unreadable: {exc} -----\n")
                continue
            text = _CONTROL.sub("", _ANSI.sub("", raw.replace("\r\n", "\n").replace("\r", "\n")))
            log.write(f"----- serial console: {console.name} -----\n")
            log.write(self.redactor.text(text))
            if text and not text.endswith("\n"):
                log.write("\n")
            log.write(f"----- end of {console.name} -----\n")
            log.flush()

    def close(self) -> None:
        with self._lock:
            for log in self._files.values():
                log.close()
            self._files.clear()


# --- the live view --------------------------------------------------------------------------------------

@dataclass
class _Build:
    name: str
    started: float | None = None         # None: queued, waiting for a slot (--parallel)
    worker: str = ""                     # a cluster run's worker building it
    ended: float | None = None
    status: str = ""                     # "" while it runs
    step: str = ""
    detail: str = ""                     # the step's last step.status, until the step ends or a task starts
    task: str = ""
    number: int | None = None
    total: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""
    progress: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    spinner: Any = None


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _amount(done: float, total: float | None) -> str:
    scale = total if total else done
    if scale >= 2 ** 20:                                       # bytes
        return f"{done / 2 ** 20:.0f}/{total / 2 ** 20:.0f} MiB" if total else f"{done / 2 ** 20:.0f} MiB"
    return f"{done:.0f}/{total:.0f}" if total else f"{done:.0f}"


class LiveView:
    """A line per build at the bottom of the terminal, redrawn a few times a second; everything
    ConsoleView prints (finished tasks, warnings, recaps) goes above it."""

    def __init__(self, console: Any, verbose: bool = False, clock: Callable[[], float] = time.time,
                 refresh_per_second: float = 4, redirect: bool = False):
        from rich.live import Live
        self.console = console
        self.clock = clock
        self.printer = ConsoleView(console=console, verbose=verbose, skip={"step.start", "progress", "step.status"})
        self.builds: dict[str, _Build] = {}
        self._lock = threading.Lock()      # taken inside Live's lock (refresh), never around a print
        self.live = Live(console=console, get_renderable=self.renderable, refresh_per_second=refresh_per_second,
                         transient=True, redirect_stdout=redirect, redirect_stderr=redirect)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    def __call__(self, e: dict[str, Any]) -> None:
        with self._lock:
            self._update(e)
        self.printer(e)

    def _build(self, name: str) -> _Build:
        if name not in self.builds:
            self.builds[name] = _Build(name)
        return self.builds[name]

    def _update(self, e: dict[str, Any]) -> None:
        kind, name = e.get("event"), e.get("build")
        if kind == "run.start":
            for build in e.get("builds", []):
                self._build(build)
            return
        if kind == "run.end":
            for build, status in (e.get("statuses") or {}).items():
                line = self._build(build)
                if not line.status:
                    line.status, line.ended = status, line.ended or e.get("time")
            return
        if not name:
            return
        b = self._build(name)
        b.worker = str(e.get("worker") or b.worker)
        moment = e.get("time") or self.clock()
        if kind == "build.start":
            b.started, b.status, b.ended = moment, "", None
        elif b.started is None:
            b.started = moment
        if kind == "step.start":
            b.step, b.task, b.number, b.progress, b.detail = e.get("step", ""), "", None, {}, ""
        elif kind == "step.end":
            b.progress, b.detail = {}, ""
        elif kind == "step.status" and e.get("step") == b.step:     # another step's status is not this one's
            b.detail = str(e.get("status", ""))
        elif kind == "task.start":
            b.task, b.number, b.total, b.detail = str(e.get("task", "")), e.get("number"), e.get("total"), ""
        elif kind == "progress":
            done, total = e.get("done", 0) or 0, e.get("total")
            if total and done >= total:
                b.progress.pop(str(e.get("phase", "")), None)
            else:
                b.progress[str(e.get("phase", ""))] = (done, total)
        elif kind == "build.end":
            b.status, b.ended, b.progress = e.get("status", "failed"), moment, {}
            b.counts, b.error = dict(e.get("counts") or {}), str(e.get("error") or "")

    def renderable(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text
        with self._lock:
            grid = Table.grid(padding=(0, 1), expand=True)
            grid.add_column(width=1, no_wrap=True)
            grid.add_column(no_wrap=True)
            grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
            grid.add_column(justify="right", no_wrap=True)
            now = self.clock()
            unicode = self.console.encoding.lower().startswith("utf")
            phase_width = min(30, max((len(p) for b in self.builds.values() for p in b.progress), default=0))
            for b in self.builds.values():
                if b.status:
                    icon: Any = Text((BUILD_ICON if unicode else ASCII_ICON).get(b.status, "?"),
                                     style=BUILD_STYLE.get(b.status, "bold"))
                elif b.started is None:
                    icon = Text("·" if unicode else ".", style="dim")
                else:
                    if b.spinner is None:
                        b.spinner = Spinner("dots" if unicode else "line", style="cyan")
                    icon = b.spinner
                elapsed = "" if b.started is None else _elapsed((b.ended or now) - b.started)
                name = Text(b.name, style="bold")
                if b.worker:
                    name.append(f" @{b.worker}", style="dim")
                grid.add_row(icon, name, self._activity(b), Text(elapsed, style="dim"))
                for phase, (done, total) in b.progress.items():
                    bar = Table.grid(padding=(0, 1))
                    bar.add_column(no_wrap=True, overflow="ellipsis", width=phase_width)
                    bar.add_column(no_wrap=True, width=24)
                    bar.add_column(no_wrap=True)
                    bar.add_row(Text(phase, style="dim"), ProgressBar(total=total, completed=done, width=24),
                                Text((f"{100 * done / total:3.0f}%  " if total else "") + _amount(done, total),
                                     style="dim"))
                    grid.add_row("", "", bar, "")
            return grid

    @staticmethod
    def _activity(b: _Build) -> Any:
        from rich.text import Text
        if b.status:
            text = Text(b.status, style=BUILD_STYLE.get(b.status, "bold"))
            if b.counts:
                text.append("  " + recap_counts(b.counts), style="dim")
            if b.error:
                text.append("  " + b.error.splitlines()[0], style="red")
            return text
        if b.started is None:
            return Text("waiting to start", style="dim")
        text = Text(b.step or "starting", style="cyan")
        if b.task:
            count = ""
            if b.number and b.total:
                count = f"task {min(b.number, b.total)}/{b.total}: "
            elif b.number:
                count = f"task {b.number}: "
            text.append("  " + count + b.task)
        elif b.detail:
            text.append("  " + b.detail)
        return text


def console_sinks(stream: TextIO | None = None, verbose: bool = False, output_dir: Path = Path("output"),
                  live: bool | None = None, redactor: Redactor | None = None) -> tuple[list[Sink], Callable[[], None]]:
    """The console view (live on a terminal, timestamped lines otherwise) and the build.log writer, with a
    close() that stops the live display and closes the logs. live=None: live if stream is a terminal.
    redactor: masks secrets in the serial console logs appended to build.log (the events are masked already)."""
    from rich.console import Console
    stream = stream or sys.stdout
    console = Console(file=stream, highlight=False, soft_wrap=True)
    if live is None:
        live = console.is_terminal and not console.is_dumb_terminal
    logs = BuildLogs(output_dir, redactor)
    view: Any
    if live:
        view = LiveView(console, verbose, redirect=stream is sys.stdout)
        view.start()
    else:
        view = ConsoleView(stream, verbose, timestamps=True)
    closed = False

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        if live:
            view.stop()
        logs.close()

    return [view, logs], close


def _size(size: int) -> str:
    return f"{size / 2 ** 20:.0f} MiB" if size >= 2 ** 20 else f"{max(1, round(size / 1024))} KiB"

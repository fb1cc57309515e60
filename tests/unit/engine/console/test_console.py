"""The console views of a run with two builds at once: timestamped lines, the live area, build.log."""
import io
import json
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from engine.console.events import EventBus, json_lines
from engine.console.view import BuildLogs, ConsoleView, LiveView, console_sinks
from engine.secrets import MASK, Redactor

SECRET = "s3cr3t-t0ken"
T0 = time.mktime((2024, 5, 1, 12, 3, 0, 0, 0, -1))     # 12:03:00 local time
ANSI = re.compile(r"\x1b\[")


def two_builds(bus: EventBus, until: str = "end") -> None:
    """web-local (qemu) and web-aws (amazon) interleaved, as run_recipe makes them; times are fixed."""
    clock = iter(T0 + i for i in range(1000))
    local, aws = bus.bind(build="web-local"), bus.bind(build="web-aws")

    def at(emitter, event, **fields):
        emitter.emit(event, time=next(clock), **fields)

    at(bus, "run.start", recipe="web", builds=["web-local", "web-aws"], check=False)
    at(local, "build.start", platform="qemu", build_id="20240501-1")
    at(aws, "build.start", platform="amazon", build_id="20240501-1")
    at(local, "step.start", step="base image")
    at(local, "progress", phase="download debian-12.qcow2", done=0, total=400 * 2 ** 20)
    at(aws, "step.start", step="source ami")
    at(local, "progress", phase="download debian-12.qcow2", done=210 * 2 ** 20, total=400 * 2 ** 20)
    at(aws, "step.start", step="provision")
    at(aws, "task.start", task="Install nginx", handler=False, number=1, total=3)
    at(aws, "task.output", task="Install nginx", stream="stdout", line=f"Setting up nginx with {SECRET}")
    at(aws, "task.end", task="Install nginx", status="changed", msg="", changed=True, duration=1.2,
       handler=False, rc=0, diff="", show=False)
    at(aws, "task.start", task="Site config", handler=False, number=2, total=3)
    if until == "running":
        return
    at(local, "progress", phase="download debian-12.qcow2", done=400 * 2 ** 20, total=400 * 2 ** 20)
    at(local, "step.start", step="provision")
    at(local, "task.start", task="Install nginx", handler=False, number=1, total=1)
    at(local, "task.end", task="Install nginx", status="ok", msg="", changed=False, duration=0.5,
       handler=False, rc=0, diff="", show=False)
    at(local, "task.start", task="reload nginx", handler=True, number=2, total=1)   # more than counted
    at(aws, "task.end", task="Site config", status="failed", msg=f"template error near {SECRET}",
       changed=False, duration=0.1, handler=False, rc=1, diff="", show=False)
    at(aws, "cleanup", what="ssh connection")
    at(aws, "build.end", status="failed", error="task 'Site config' failed", duration=14.0,
       counts={"ok": 0, "changed": 1, "skipped": 0, "failed": 1}, artifacts=[])
    at(local, "warning", msg="disk is almost full")
    at(local, "cleanup", what="QEMU (build)")
    at(local, "build.end", status="succeeded", error="", duration=20.0,
       counts={"ok": 1, "changed": 0, "skipped": 0, "failed": 0}, artifacts=["output/web-local/web-local.qcow2"])
    at(bus, "run.end", recipe="web", statuses={"web-local": "succeeded", "web-aws": "failed"})


def bus_with(*sinks) -> EventBus:
    return EventBus(redactor=Redactor([SECRET]), sinks=list(sinks))


def test_plain_lines_have_a_timestamp_and_the_build_and_no_ansi(tmp_path):
    out = io.StringIO()
    sinks, close = console_sinks(out, verbose=True, output_dir=tmp_path, live=False)
    two_builds(bus_with(*sinks))
    close()
    text = out.getvalue()
    lines = text.splitlines()
    assert not ANSI.search(text)
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines), lines
    assert "12:03:01 ==> web-local: qemu build 20240501-1" in lines
    assert "12:03:03 [web-local] base image" in lines
    assert "12:03:06 [web-local] download debian-12.qcow2: 50% of 400 MiB" in lines
    assert "12:03:10 [web-aws] changed  Install nginx  (1.20s)" in lines
    assert f"12:03:09 [web-aws]     stdout: Setting up nginx with {MASK}" in lines     # -v shows output
    assert f"12:03:17 [web-aws]     template error near {MASK}" in lines
    assert "12:03:18 [web-aws] cleanup: ssh connection" in lines
    assert "12:03:20 [web-local] warning: disk is almost full" in lines
    assert any(line.startswith("12:03:19 ==> web-aws: failed  ok=0 changed=1 skipped=0 failed=1") for line in lines)
    assert "==> web-local: succeeded" in text
    assert SECRET not in text


def test_the_recap_line_still_parses_as_the_integration_tests_read_it(tmp_path):
    from tests.integration.test_ssh_platform import recap
    out = io.StringIO()
    sinks, close = console_sinks(out, verbose=False, output_dir=tmp_path, live=False)
    two_builds(bus_with(*sinks))
    close()
    assert recap(out.getvalue()) == {"ok": 0, "changed": 1, "skipped": 0, "failed": 1}


def test_without_timestamps_the_lines_keep_their_historical_form():
    out = io.StringIO()
    two_builds(bus_with(ConsoleView(out)))
    lines = out.getvalue().splitlines()
    assert "  [web-aws] changed  Install nginx  (1.20s)" in lines
    assert "  [web-aws] cleanup: ssh connection" in lines
    assert "    task 'Site config' failed" in lines
    assert "stdout: Setting up" not in out.getvalue()     # command output only with -v


def test_a_run_level_event_is_shown_as_the_recipe():
    out = io.StringIO()
    bus = bus_with(ConsoleView(out, timestamps=True))
    bus.emit("warning", msg="web-aws failed: stopping the other builds (--fail-fast)", time=T0)
    bus.emit("interrupt", signal="SIGINT", msg="stopping builds, cleaning up", time=T0)
    assert out.getvalue().splitlines() == [
        "12:03:00 [recipe] warning: web-aws failed: stopping the other builds (--fail-fast)",
        "12:03:00 [recipe] interrupted (SIGINT): stopping builds, cleaning up"]


def frame(view: LiveView, width: int = 100) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, width=width, record=True)
    console.print(view.renderable())
    return console.export_text()


def build_line(text: str, build: str) -> str:
    return next(line for line in text.splitlines() if f" {build} " in line)


def test_the_live_view_has_a_line_per_build_with_step_task_and_elapsed_and_a_bar():
    screen = Console(file=io.StringIO(), force_terminal=True, width=100)
    view = LiveView(screen, clock=lambda: T0 + 75)
    two_builds(bus_with(view), until="running")
    text = frame(view)
    local, aws = build_line(text, "web-local"), build_line(text, "web-aws")
    assert "base image" in local and local.rstrip().endswith("1:14")        # started at T0+1
    assert "provision" in aws and "task 2/3: Site config" in aws and aws.rstrip().endswith("1:13")
    bar = text.splitlines()[text.splitlines().index(local) + 1]
    assert "download debian-12.qcow2" in bar and "52%" in bar and "210/400 MiB" in bar and "━" in bar
    assert len([line for line in text.splitlines() if line.strip()]) == 3    # two builds, one bar


def test_the_live_view_shows_the_status_when_done_and_never_a_number_above_the_total():
    screen = Console(file=io.StringIO(), force_terminal=True, width=100)
    view = LiveView(screen, clock=lambda: T0 + 500)
    bus = bus_with(view)
    two_builds(bus)
    text = frame(view)
    local, aws = build_line(text, "web-local"), build_line(text, "web-aws")
    assert "succeeded" in local and "0:21" in local         # ended at T0+22, started at T0+1: frozen
    assert "failed" in aws and "task 'Site config' failed" in aws
    assert "download" not in text                           # the bar went with the download


def test_number_is_clamped_to_the_total_while_a_handler_runs():
    screen = Console(file=io.StringIO(), force_terminal=True, width=100)
    view = LiveView(screen, clock=lambda: T0 + 30)
    bus = bus_with(view)
    build = bus.bind(build="web-local")
    build.emit("build.start", platform="qemu", build_id="1", time=T0)
    build.emit("step.start", step="provision", time=T0)
    build.emit("task.start", task="reload nginx", handler=True, number=4, total=3, time=T0)
    assert "task 3/3: reload nginx" in frame(view)


def test_the_live_display_prints_finished_tasks_warnings_and_recaps_above():
    out = io.StringIO()
    screen = Console(file=out, force_terminal=True, width=100, record=True)
    view = LiveView(screen, clock=lambda: T0 + 30, refresh_per_second=20)
    view.start()
    try:
        two_builds(bus_with(view))
    finally:
        view.stop()
    text = screen.export_text()
    for expected in ("  [web-aws] changed  Install nginx  (1.20s)", f"      template error near {MASK}",
                     "  [web-local] warning: disk is almost full", "==> web-aws: failed", "==> web-local: succeeded"):
        assert expected in text, text
    assert "download debian-12.qcow2: " not in text          # bars instead of lines
    assert SECRET not in out.getvalue()


def test_console_sinks_picks_live_on_a_terminal_only(tmp_path):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    sinks, close = console_sinks(Tty(), False, tmp_path)
    try:
        assert isinstance(sinks[0], LiveView) and isinstance(sinks[1], BuildLogs)
    finally:
        close()
    sinks, close = console_sinks(io.StringIO(), False, tmp_path)
    close()
    assert isinstance(sinks[0], ConsoleView) and sinks[0].timestamps


def test_build_log_has_each_builds_own_events_task_output_and_the_serial_console(tmp_path):
    (tmp_path / "web-local").mkdir()
    (tmp_path / "web-local" / "console-build.log").write_text(
        f"\x1b[0;32mOK\x1b[0m Started ssh.service\r\ncloud-init: token {SECRET}\r\n")
    sinks, close = console_sinks(io.StringIO(), verbose=False, output_dir=tmp_path, live=False,
                                 redactor=Redactor([SECRET]))
    two_builds(bus_with(*sinks))
    close()
    local = (tmp_path / "web-local" / "build.log").read_text()
    aws = (tmp_path / "web-aws" / "build.log").read_text()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ", line)
               for line in aws.splitlines()), aws
    assert "web-aws" not in local.replace("web-local", "") and "Site config" not in local
    assert "download" not in aws and "QEMU" not in aws
    assert f"    stdout: Setting up nginx with {MASK}" in aws           # without -v
    assert "task 2/3: Site config" in aws and "changed  Install nginx  (1.20s)" in aws
    assert "12:03:12.000 download debian-12.qcow2: 100% of 400 MiB" in local
    assert "==> web-local: succeeded" in local and "cleanup: QEMU (build)" in local
    assert "warning: disk is almost full" in local
    console = local[local.index("----- serial console: console-build.log -----"):]
    assert "OK Started ssh.service\ncloud-init: token ********\n----- end of console-build.log -----" in console
    assert "\x1b" not in local and "\r" not in local
    for text in (local, aws):
        assert SECRET not in text
    assert not (tmp_path / "recipe").exists()               # run-level events have no build.log


def test_build_log_writes_unknown_events_as_fields_and_flushes_each_line(tmp_path):
    logs = BuildLogs(tmp_path)
    bus = bus_with(logs)
    bus.bind(build="web-local").emit("booted", pid=42, port=2222, accelerator="tcg", time=T0)
    bus.bind(build="web-local").emit("log", source="base", line="Get:1 http://deb.debian.org", time=T0)
    text = (tmp_path / "web-local" / "build.log").read_text()      # not closed yet: flushed
    assert "12:03:00.000 booted accelerator=tcg pid=42 port=2222\n" in text
    assert 'log line="Get:1 http://deb.debian.org" source=base\n' in text
    logs.close()
    bus.bind(build="web-local").emit("warning", msg="late", time=T0)   # after close: appended, not truncated
    assert "booted" in (tmp_path / "web-local" / "build.log").read_text()
    logs.close()


def test_every_json_event_says_its_build_and_run_events_say_null():
    out = io.StringIO()
    two_builds(bus_with(json_lines(out)))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all("build" in e for e in events)
    assert {e["event"] for e in events if e["build"] is None} == {"run.start", "run.end"}
    assert {e["build"] for e in events if e["event"].startswith(("task.", "step.", "build."))} == {
        "web-local", "web-aws"}
    assert SECRET not in out.getvalue()


def test_run_recipe_events_carry_the_build_or_null(tmp_path, monkeypatch):
    """Through the real run_recipe, with a platform of one step that runs one task."""
    import asyncio

    from engine.build.platform import PLATFORMS
    from engine.build.run import run_recipe
    from engine.build.runner import RunOptions
    from engine.recipe.model import Build, BuildInfo, Recipe, Source, SshSettings

    class Quiet:
        name = "quiet"

        async def run(self, state, cleanup):
            state.events.emit("progress", phase="nothing", done=1, total=1)

    class QuietPlatform:
        def steps(self, recipe, build):
            return [Quiet()]

    builds = tuple(Build(BuildInfo(id="1", source=s, recipe="r", timestamp=0),
                         Source(s, "quiet-test", None, {}, SshSettings())) for s in ("a", "b"))
    recipe = Recipe("r", Path("r.yml"), "d", builds=builds)
    out = io.StringIO()
    original = PLATFORMS.get
    monkeypatch.setattr(PLATFORMS, "get", lambda name: QuietPlatform if name == "quiet-test" else original(name))
    asyncio.run(run_recipe(recipe, RunOptions(output_dir=tmp_path), bus_with(json_lines(out))))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {e["event"] for e in events} >= {"run.start", "build.start", "step.start", "progress", "build.end"}
    for e in events:
        if e["event"] in ("run.start", "run.end"):
            assert e["build"] is None and e["recipe"] == "r"
        else:
            assert e["build"] in ("r-a", "r-b"), e


@pytest.mark.parametrize("width", [60, 100])
def test_a_frame_fits_the_terminal(width):
    screen = Console(file=io.StringIO(), force_terminal=True, width=width)
    view = LiveView(screen, clock=lambda: T0 + 75)
    two_builds(bus_with(view), until="running")
    assert all(len(line) <= width for line in frame(view, width).splitlines())


def test_task_start_counts_tasks_and_says_how_many_at_most():
    """number: tasks started in the play (a loop's items share one); total: the leaves that run on this
    source (rescue and handlers included, loops as one), so number never passes it in a normal run."""
    import asyncio

    from engine.build.executor import provision
    from engine.build.runner import BuildState, RunOptions
    from engine.errors import Position
    from engine.recipe.model import Build, BuildInfo, Handler, Origin, Recipe, Source, SshSettings, Task
    from engine.registry import load_plugins

    load_plugins()
    origin = Origin(Path("."))

    def task(name, **kw):
        return Task(Position("r.yml", 1, 1), "tasks[0]", origin, name=name, **kw)

    def debug(name, **kw):
        return task(name, module="debug", args={"msg": name}, **kw)

    tasks = (debug("one", notify=("h",), changed_when=("true",)), debug("items", loop=["a", "b", "c"]),
             debug("elsewhere", only=("aws",)), debug("skipped", when=("false",)),
             task("blk", block=(debug("in block"),), rescue=(debug("rescue"),)),
             task("flush", module="meta", args="flush_handlers"))
    handlers = (Handler(debug("h")),)
    events = []
    info = BuildInfo(id="1", source="local", recipe="r", timestamp=0)
    build = Build(info=info, source=Source("local", "ssh", None, {}, SshSettings()))
    state = BuildState(Recipe("r", Path("r.yml"), "d", tasks=tasks, handlers=handlers), build, RunOptions(),
                       EventBus(sinks=[events.append]).bind(build="r-local"))
    state.connection = object()
    asyncio.run(provision(state, tasks, handlers))
    starts = [(e["task"], e["number"], e["total"]) for e in events if e["event"] == "task.start"]
    assert starts == [("one", 1, 6), ("items (a)", 2, 6), ("items (b)", 2, 6), ("items (c)", 2, 6),
                      ("in block", 3, 6), ("h", 4, 6)]


def test_an_unwritable_build_log_does_not_fail_the_build(tmp_path, capsys):
    (tmp_path / "web-local").write_text("a file where the folder should be")
    logs = BuildLogs(tmp_path)
    bus = bus_with(logs)
    for _ in range(2):
        bus.bind(build="web-local").emit("warning", msg="x")
    bus.bind(build="web-aws").emit("warning", msg="y")
    assert capsys.readouterr().err.count("warning: cannot write") == 1
    assert "warning: y" in (tmp_path / "web-aws" / "build.log").read_text()
    logs.close()


def test_a_second_run_on_the_same_folder_leaves_the_first_runs_build_log_alone(tmp_path, capsys):
    first, second = BuildLogs(tmp_path), BuildLogs(tmp_path)
    bus_with(first).bind(build="web-local").emit("warning", msg="first run", time=T0)
    bus_with(second).bind(build="web-local").emit("warning", msg="second run", time=T0)
    assert "warning: not writing" in capsys.readouterr().err
    first.close()
    second.close()
    text = (tmp_path / "web-local" / "build.log").read_text()
    assert "first run" in text and "second run" not in text


def booting(bus: EventBus, *offsets_and_stages: tuple[float, str], build: str = "web-local") -> None:
    """A build in its connect step whose platform reports what the guest is doing (step.status)."""
    emitter = bus.bind(build=build)
    emitter.emit("build.start", platform="qemu", build_id="1", time=T0)
    emitter.emit("step.start", step="connect", time=T0)
    for offset, stage in offsets_and_stages:
        emitter.emit("step.status", step="connect", status=f"booting: {stage}", stage="systemd", time=T0 + offset)


def test_the_live_view_shows_a_steps_status_on_the_build_line_until_the_step_moves_on():
    screen = Console(file=io.StringIO(), force_terminal=True, width=100, record=True)
    view = LiveView(screen, clock=lambda: T0 + 40)
    bus = bus_with(view)
    booting(bus, (20, "kernel 6.1.0-27-amd64"), (38, "systemd reached Basic System"))
    assert "connect  booting: systemd reached Basic System" in build_line(frame(view), "web-local")
    bus.bind(build="web-local").emit("step.end", step="connect", duration=40, time=T0 + 40)
    assert "booting" not in frame(view)                    # gone with its step
    bus.bind(build="web-local").emit("step.status", step="base image", status="booting: late", time=T0 + 40)
    assert "late" not in frame(view)                       # another step's status is not this one's
    bus.bind(build="web-local").emit("step.start", step="gather facts", time=T0 + 40)
    assert "gather facts" in build_line(frame(view), "web-local")
    assert "booting" not in screen.export_text()           # nothing printed above the live area


def test_plain_lines_show_a_steps_status_at_most_every_five_seconds_per_build(tmp_path):
    out = io.StringIO()
    sinks, close = console_sinks(out, output_dir=tmp_path, live=False)
    bus = bus_with(*sinks)
    booting(bus, (10, "kernel 6.1.0-27-amd64"), (11, "initramfs"), (14, "systemd started"),
            (15, "systemd reached Local File Systems"), (16, "systemd reached Basic System"),
            (40, "cloud-init init-local"))
    booting(bus, (12, "GRUB"), build="web-aws")           # another build has its own pace
    close()
    statuses = [line for line in out.getvalue().splitlines() if "booting" in line]
    assert statuses == ["12:03:10 [web-local] connect  booting: kernel 6.1.0-27-amd64",
                        "12:03:15 [web-local] connect  booting: systemd reached Local File Systems",
                        "12:03:40 [web-local] connect  booting: cloud-init init-local",
                        "12:03:12 [web-aws] connect  booting: GRUB"]
    log = (tmp_path / "web-local" / "build.log").read_text()
    assert log.count("connect  booting: ") == 6            # build.log keeps every one


def test_plain_lines_say_where_a_cached_build_starts_and_what_it_did_not_run(tmp_path):
    out = io.StringIO()
    sinks, close = console_sinks(out, output_dir=tmp_path, live=False)
    local = bus_with(*sinks).bind(build="web-local")
    local.emit("cache", time=T0, layers=3, resumes=2, warm=True, layer="0123456789ab",
               not_cached="'Stamp' on: it reads build.id")
    local.emit("task.cached", time=T0 + 1, task="Install nginx", module="apt", saved=41.5)
    local.emit("build.end", time=T0 + 2, status="succeeded", error="", duration=9.0, artifacts=[],
               counts={"ok": 1, "changed": 1, "skipped": 0, "failed": 0, "cached": 2})
    close()
    lines = out.getvalue().splitlines()
    assert "12:03:00 [web-local] cache: layer 0123456789ab after task 2: resuming its saved machine" in lines
    assert "12:03:00 [web-local] cache: no layers from task 'Stamp' on: it reads build.id" in lines
    assert "12:03:01 [web-local] cached   Install nginx  (saved 41.50s)" in lines
    assert any("succeeded  ok=1 changed=1 skipped=0 failed=0 cached=2  in 9.0s" in line for line in lines)

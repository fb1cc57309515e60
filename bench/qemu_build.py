"""A whole image build under TCG, recipe against Packer 1.6.6, in the same run: recipe cold (an empty layer
cache) and warm (its cache holds the booted machine of another recipe on the same base and VM: a warm boot).

Both tools build the same image: the cached debootstrap base (Debian 12), 2
vCPUs, 1024 MiB, 20 shell steps run as root, shut down, exported as one
standalone qcow2. Each runs as a whole command (what a user waits for); the
phases come from each tool's own record of the build:

  recipe   the events of `recipe run --json` (every event has an epoch "time")
  Packer   the lines of `packer build -machine-readable`, stamped by this
           script as they arrive: Packer's own timestamps are whole seconds

    .venv/bin/python bench/qemu_build.py [--rounds 1] [--match-vm] [--steps 20] [--keep]

Each round: recipe cold, Packer, then recipe warm: its tasks differ from the cold build's (no task of it is
cached), its layer cache is the cold build's. Packer has no cache: its build is always cold.

Phases, the same boundaries for both tools:
  to SSH           first build step -> first successful SSH login
                   (recipe: work dir, overlay disk, seed, QEMU, connect;
                    Packer: copy of the base, seed ISO, QEMU, boot_wait 10 s, SSH polling)
  provisioning     SSH login -> shutdown begins (recipe counts fact gathering here)
  shutdown+export  shutdown begins -> the exported qcow2 is complete
  start-up/exit    the rest of the whole command (interpreter or plug-in start, cleanup)

The base is built once (several minutes) by modules/platforms/qemu/base.py and
cached; it is read once before the builds so neither build pays for a cold page cache.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
PACKER = "packer"
RECIPE_NAME, SOURCE = "qemubench", "vm"
CPUS, MEMORY = 2, 1024
TARGET = 0.8
INTERRUPT_GRACE = 90.0      # seconds a tool gets to clean up after Ctrl-C before it is killed


class BenchError(Exception):
    pass


@dataclass
class Timing:
    """Epoch seconds of one build's boundaries."""

    launched: float          # the command was started
    build_start: float       # its first build step
    qemu_start: float        # just before QEMU was launched
    connected: float         # first successful SSH login
    shutdown_start: float
    export_start: float      # the machine is off; the export begins
    exported: float          # the exported image is complete
    exited: float            # the command exited
    artifact: Path
    image: str = ""          # what the artifact is, filled in by describe()

    def phases(self) -> dict[str, float]:
        return {
            "to SSH": self.connected - self.build_start,
            "provisioning": self.shutdown_start - self.connected,
            "shutdown+export": self.exported - self.shutdown_start,
            "  shutdown": self.export_start - self.shutdown_start,
            "  export": self.exported - self.export_start,
            "start-up/exit": (self.build_start - self.launched) + (self.exited - self.exported),
            "total": self.exited - self.launched,
        }

    @property
    def ssh_wait(self) -> float:
        return self.connected - self.qemu_start


# ---------------------------------------------------------------- processes

def run_logged(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> tuple[int, list[tuple[float, str]],
                                                                                      float, float]:
    """Run command, every output line stamped with the time it arrived and copied to log.

    The child gets its own session so a Ctrl-C in the terminal reaches only this
    script, which then forwards SIGINT (both tools clean up on it) and kills
    the child's group if it has not exited after INTERRUPT_GRACE seconds.
    """
    lines: list[tuple[float, str]] = []
    launched = time.time()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, cwd=cwd, start_new_session=True, bufsize=1, text=True, errors="replace")
    try:
        with open(log, "w", encoding="utf-8") as out:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append((time.time(), line.rstrip("\n")))
                out.write(line)
        process.wait()
    except BaseException:          # Ctrl-C, or SIGTERM (turned into KeyboardInterrupt by main)
        stop_process(process)
        raise
    return process.returncode, lines, launched, time.time()


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        process.send_signal(signal.SIGINT)
        process.wait(INTERRUPT_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except KeyboardInterrupt:      # a second Ctrl-C: no more patience
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def qemu_processes(marker: str) -> list[int]:
    """Pids of QEMU processes whose command line mentions marker (our temp dir; "" for any)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode(errors="replace")).name.startswith("qemu-system") \
                and marker.encode() in b"\0".join(argv):
            found.append(int(entry.name))
    return found


class NoiseWatch(threading.Thread):
    """Samples, every few seconds, whether QEMU processes that are not ours are running.

    On a shared 2-core machine another guest under TCG takes a core away and
    makes the figures meaningless; the report says so instead of hiding it.
    """

    def __init__(self, ours: str, interval: float = 3.0):
        super().__init__(daemon=True)
        self.ours, self.interval = ours, interval
        self.samples = self.noisy = 0
        self.pids: set[int] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            others = set(qemu_processes("")) - set(qemu_processes(self.ours))
            self.samples += 1
            if others:
                self.noisy += 1
                self.pids |= others

    def stop(self) -> None:
        self._stop_event.set()


def kill_qemu(marker: str) -> list[int]:
    """Stop QEMU processes a tool left behind in our temp dir (a tool bug, or a kill -9 of the tool)."""
    pids = qemu_processes(marker)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.1)
    return pids


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:])


# ---------------------------------------------------------------- base image

async def get_base():
    from engine.local_cache import default_cache_dir
    from modules.platforms.qemu.base import BootstrapBase, resolve_base

    def progress(phase: str, done: int, total: int | None) -> None:
        pass

    def log(line: str) -> None:
        pass

    return await resolve_base(BootstrapBase(distro="debian", suite="bookworm"), default_cache_dir(), progress, log)


def warm(path: Path) -> None:
    with open(path, "rb") as image:
        while image.read(8 << 20):
            pass


def image_info(path: Path) -> dict:
    result = subprocess.run(["qemu-img", "info", "--output=json", "--force-share", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"qemu-img info {path} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


# ---------------------------------------------------------------- recipe

def step_commands(count: int, variant: str = "") -> list[str]:
    return [f"echo step {n}{variant} > /tmp/step-{n}" for n in range(1, count + 1)]


def recipe_text(base: Path, count: int, variant: str = "") -> str:
    tasks = "".join(f"  - name: step {n}\n    shell: {json.dumps(cmd)}\n"
                    for n, cmd in enumerate(step_commands(count, variant), 1))
    return (f"name: {RECIPE_NAME}\n"
            "sources:\n"
            f"  {SOURCE}:\n"
            "    platform: qemu\n"
            f"    base: {{path: {json.dumps(str(base))}}}\n"
            "    accelerator: tcg\n"
            f"    cpus: {CPUS}\n"
            f"    memory: {MEMORY}\n"
            "    ssh: {user: debian}\n"
            "become: true                 # every task as root, as Packer's execute_command uses sudo\n"
            f"tasks:\n{tasks}"
            "exports:\n"
            "  - qcow2: {}\n")


def run_recipe(work: Path, base: Path, count: int, warm: bool = False) -> Timing:
    directory = work / ("recipe-warm" if warm else "recipe")
    directory.mkdir()
    recipe = directory / "recipe.yml"
    recipe.write_text(recipe_text(base, count, " again" if warm else ""))
    events_path, output, log = directory / "events.jsonl", directory / "out", directory / "recipe.log"
    # TMPDIR: recipe's work directory (disk overlay, seed, QEMU's files) lands in our temp dir; the round's own
    # layer cache: empty for the cold build, which fills it for the warm one
    env = {**os.environ, "TMPDIR": str(directory), "RECIPE_LAYERS_DIR": str(work / "layers")}
    command = [str(BIN / "recipe"), "run", str(recipe), "--json", str(events_path), "--output-dir", str(output)]
    code, _lines, launched, exited = run_logged(command, log, env, directory)
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()] \
        if events_path.exists() else []
    end = next((e for e in events if e.get("event") == "build.end"), None)
    if code != 0 or end is None or end.get("status") != "succeeded":
        error = end.get("error", "") if end else ""
        raise BenchError(f"the recipe build failed (exit {code}){': ' + error if error else ''}\n"
                         f"command: {' '.join(command)}\nlast lines of its output ({log}):\n{tail(log)}")

    def first(event: str, step: str | None = None, where: str = "") -> float:
        for e in events:
            if e.get("event") == event and (step is None or e.get("step") == step):
                return float(e["time"])
        raise BenchError(f"recipe's events have no {event}{' ' + step if step else ''} {where}; "
                         f"the step names changed? see {events_path}")

    artifact = output / f"{RECIPE_NAME}-{SOURCE}" / f"{RECIPE_NAME}-{SOURCE}.qcow2"
    if not artifact.exists():
        raise BenchError(f"recipe reported success but {artifact} does not exist")
    return Timing(launched=launched, build_start=first("step.start"), qemu_start=first("step.start", "boot"),
                  connected=first("connected"), shutdown_start=first("step.start", "shutdown"),
                  export_start=first("step.start", "export"), exported=first("step.end", "export"),
                  exited=exited, artifact=artifact)


# ---------------------------------------------------------------- Packer

# recipe's QEMU machine (modules/platforms/qemu/machine.py) differs from Packer 1.6.6's defaults
# (machine pc, CPU qemu64, cache=writeback, no RNG device); --match-vm gives Packer recipe's, so the
# difference that is left is the tools' own.
MATCH_VM = {"machine_type": "q35", "disk_cache": "unsafe",
            "qemuargs": [["-cpu", "max"], ["-device", "virtio-rng-pci"]]}


def packer_template(base: Path, seed_dir: Path, key: Path, output: Path, count: int, match_vm: bool) -> dict:
    builder = {
        "type": "qemu",
        "disk_image": True,
        "iso_url": str(base),
        "iso_checksum": "none",
        "format": "qcow2",
        "accelerator": "tcg",
        "headless": True,
        "disk_interface": "virtio",
        "net_device": "virtio-net",
        "memory": MEMORY,
        "cpus": CPUS,
        "output_directory": str(output),
        # a standalone qcow2, like recipe's export (the default would be a copy, but say it)
        "use_backing_file": False,
        # keep the base's virtual size, as recipe does without disk_size; otherwise Packer grows the
        # disk to its default 40 GiB and cloud-init's growpart grows the root file system at boot
        "skip_resize_disk": True,
        # the NoCloud seed: Packer 1.6.6 has cd_files/cd_label and makes the ISO itself (with xorriso),
        # from the same user-data and meta-data that make_seed wrote for its own ISO
        "cd_files": [str(seed_dir / "cidata" / "user-data"), str(seed_dir / "cidata" / "meta-data")],
        "cd_label": "cidata",
        "ssh_username": "debian",
        "ssh_private_key_file": str(key),
        "ssh_timeout": "10m",
        "shutdown_command": "sudo poweroff",
        **(MATCH_VM if match_vm else {}),
    }
    # 20 shell provisioners of one command each, not one provisioner with a 20-line `inline`:
    # Packer concatenates an inline list into ONE script run once, while recipe runs 20 tasks, each
    # reported and failing on its own. One provisioner per command is the like-for-like comparison.
    provisioners = [{"type": "shell", "inline": [command], "execute_command": "sudo sh -c '{{ .Vars }} {{ .Path }}'"}
                    for command in step_commands(count)]
    return {"builders": [builder], "provisioners": provisioners}


def machine_readable(line: str) -> tuple[str, str, list[str]] | None:
    """`timestamp,target,type,data...` -> (target, type, data) with Packer's escapes undone."""
    parts = line.split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    data = [p.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "\r") for p in parts[3:]]
    return parts[1], parts[2], data


# What Packer 1.6.6 prints (ui "say" lines) at the boundaries
PACKER_FIRST_STEP = "==> qemu: "
PACKER_QEMU_START = "==> qemu: Starting VM"
PACKER_CONNECTED = "==> qemu: Connected to SSH!"
PACKER_SHUTDOWN = "==> qemu: Gracefully halting virtual machine..."
PACKER_EXPORT = "==> qemu: Converting hard drive..."     # the compaction (qemu-img convert) after shutdown
PACKER_FINISHED = "Build 'qemu' finished"


def run_packer(work: Path, base: Path, count: int, match_vm: bool) -> Timing:
    from modules.platforms.qemu.seed import make_seed

    directory = work / "packer"
    (directory / "home").mkdir(parents=True)
    seed = asyncio.run(make_seed(directory / "seed", "bench-" + secrets.token_hex(4), "packer", "debian", "bench"))
    output = directory / "out"
    template = directory / "template.json"
    template.write_text(json.dumps(packer_template(base, directory / "seed", seed.private_key, output, count,
                                                   match_vm),
                                   indent=2))
    log, debug_log = directory / "packer.out", directory / "packer.log"
    env = {**os.environ, "HOME": str(directory / "home"), "PACKER_CONFIG_DIR": str(directory / "home"),
           "PACKER_CACHE_DIR": str(directory / "cache"), "TMPDIR": str(directory), "CHECKPOINT_DISABLE": "1",
           "PACKER_LOG": "1", "PACKER_LOG_PATH": str(debug_log), "PACKER_NO_COLOR": "1"}
    command = [PACKER, "build", "-machine-readable", str(template)]
    code, lines, launched, exited = run_logged(command, log, env, directory)
    said: list[tuple[float, str]] = []
    errors: list[str] = []
    for stamp, line in lines:
        parsed = machine_readable(line)
        if parsed is None:
            continue
        _target, kind, data = parsed
        if kind == "ui" and len(data) >= 2:
            said.append((stamp, data[1]))
        elif kind == "error" and data:
            errors.append(data[0])
    if code != 0:
        raise BenchError(f"the Packer build failed (exit {code}){': ' + errors[-1] if errors else ''}\n"
                         f"command: PACKER_LOG=1 {' '.join(command)}\nlast lines of its output ({log}):\n"
                         f"{tail(log)}\nlast lines of its debug log:\n{tail(debug_log, 25)}")

    def first(prefix: str, anywhere: bool = False) -> float:
        for stamp, text in said:
            if (prefix in text) if anywhere else text.startswith(prefix):
                return stamp
        raise BenchError(f"Packer printed no line starting {prefix!r}; see {log}")

    artifacts = [p for p in output.iterdir() if p.is_file()] if output.exists() else []
    if len(artifacts) != 1:
        raise BenchError(f"expected one image in {output}, found {[p.name for p in artifacts]}")
    return Timing(launched=launched, build_start=first(PACKER_FIRST_STEP), qemu_start=first(PACKER_QEMU_START),
                  connected=first(PACKER_CONNECTED), shutdown_start=first(PACKER_SHUTDOWN),
                  export_start=first(PACKER_EXPORT), exported=first(PACKER_FINISHED, anywhere=True),
                  exited=exited, artifact=artifacts[0])


# ---------------------------------------------------------------- report

def describe(timing: Timing, keep: bool) -> None:
    """Record what the exported image is, then drop it (each is ~800 MiB) unless asked to keep it."""
    info = image_info(timing.artifact)
    backing = info.get("backing-filename")
    timing.image = (f"{info['format']}, {gib(info['virtual-size'])} virtual, {gib(timing.artifact.stat().st_size)} "
                    f"on disk{', backing file ' + backing if backing else ', standalone'}")
    if not keep:
        timing.artifact.unlink()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def report(base: Path, count: int, recipe: list[Timing], packer: list[Timing], warm: list[Timing],
           match_vm: bool) -> float:
    base_info = image_info(base)
    rounds = len(recipe)
    print(f"base: {base} ({gib(base_info['virtual-size'])} virtual, {gib(base.stat().st_size)} on disk)")
    print(f"build: TCG, {CPUS} vCPUs, {MEMORY} MiB, {count} shell steps as root "
          f"(recipe: {count} tasks, become; Packer: {count} shell provisioners, sudo), standalone qcow2")
    print("Packer's VM: " + ("recipe's QEMU settings (q35, -cpu max, cache=unsafe, virtio-rng)" if match_vm else
                             "Packer's defaults (pc, qemu64 CPU, cache=writeback); --match-vm gives it recipe's"))
    print()
    r = {phase: median([t.phases()[phase] for t in recipe]) for phase in recipe[0].phases()}
    p = {phase: median([t.phases()[phase] for t in packer]) for phase in packer[0].phases()}
    w = {phase: median([t.phases()[phase] for t in warm]) for phase in warm[0].phases()}
    heading = "phase" if rounds == 1 else f"phase (median of {rounds})"
    print(f"{heading:<22}{'recipe':>10}{'Packer':>10}{'recipe warm':>14}")
    for phase in r:
        if phase == "total":
            print("-" * 56)
        print(f"{phase:<22}{r[phase]:>9.1f}s{p[phase]:>9.1f}s{w[phase]:>13.1f}s")
    if rounds > 1:
        print()
        for n, (rt, pt) in enumerate(zip(recipe, packer), 1):
            print(f"round {n}: recipe {rt.phases()['total']:6.1f} s, Packer {pt.phases()['total']:6.1f} s, "
                  f"ratio {rt.phases()['total'] / pt.phases()['total']:.2f}")
    print()
    print("SSH wait (QEMU launched -> first successful SSH login):")
    print(f"  recipe  {median([t.ssh_wait for t in recipe]):6.1f} s  (tries again 0.2 s after a failure, "
          "doubling to 2 s)")
    print(f"  Packer  {median([t.ssh_wait for t in packer]):6.1f} s  (waits boot_wait, 10 s, then tries again "
          "5 s after a failure)")
    print(f"image: recipe {recipe[-1].image}")
    print(f"image: Packer {packer[-1].image}")
    ratio = r["total"] / p["total"]
    print()
    print(f"ratio recipe/packer: {ratio:.2f}  (target: at most {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")
    print(f"ratio recipe warm/packer: {w['total'] / p['total']:.2f}  (a warm boot: the booted machine resumed from "
          "recipe's cache, no task of it cached; Packer has no cache)")
    return ratio


def interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="shell steps per build (default 20)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="builds per tool, alternating which goes first; medians are reported (default 1)")
    parser.add_argument("--match-vm", action="store_true",
                        help="give Packer's VM recipe's QEMU settings (q35, -cpu max, cache=unsafe, virtio-rng)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, images) and say where")
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")
    # SIGTERM like Ctrl-C: the tools get SIGINT and their cleanup, then the temp dir goes
    signal.signal(signal.SIGTERM, interrupted)

    started = time.monotonic()
    print("base: resolving the debootstrap base (the first time this builds it: several minutes)...", flush=True)
    base = asyncio.run(get_base())
    base_path = Path(base.path)
    if time.monotonic() - started > 30:
        print(f"base: ready after {time.monotonic() - started:.0f} s (built, or waited for a build of it)", flush=True)
    warm(base_path)
    print(f"load average: {load_average()} on {os.cpu_count()} cores", flush=True)

    work = Path(tempfile.mkdtemp(prefix="recipe-bench-qemu-"))
    watch = NoiseWatch(str(work))
    watch.start()
    code = 0
    recipe: list[Timing] = []
    packer: list[Timing] = []
    warm_builds: list[Timing] = []
    try:
        for n in range(args.rounds):
            directory = work / f"round-{n + 1}"
            directory.mkdir()
            order = ("recipe", "Packer") if n % 2 == 0 else ("Packer", "recipe")
            for tool in (*order, "recipe warm"):
                print(f"{tool}: building{f' (round {n + 1})' if args.rounds > 1 else ''}...", flush=True)
                if tool.startswith("recipe"):
                    timing = run_recipe(directory, base_path, args.steps, warm=tool == "recipe warm")
                    (warm_builds if tool == "recipe warm" else recipe).append(timing)
                else:
                    timing = run_packer(directory, base_path, args.steps, args.match_vm)
                    packer.append(timing)
                print(f"{tool}: done in {timing.exited - timing.launched:.1f} s", flush=True)
                describe(timing, args.keep)
                left = kill_qemu(str(work))
                if left:
                    print(f"warning: {tool} left QEMU running (pids {left}); killed", flush=True)
        watch.stop()
        print()
        report(base_path, args.steps, recipe, packer, warm_builds, args.match_vm)
        if watch.noisy:
            print(f"warning: other QEMU processes (pids {sorted(watch.pids)}) ran during "
                  f"{100 * watch.noisy // max(1, watch.samples)}% of the benchmark: the figures are noisy")
        else:
            print("no other QEMU process ran during the benchmark")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the build and removing its files", file=sys.stderr)
        code = 130
    finally:
        watch.stop()
        left = kill_qemu(str(work))
        if left:
            print(f"killed QEMU left behind: pids {left}", file=sys.stderr)
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    return code


if __name__ == "__main__":
    sys.exit(main())

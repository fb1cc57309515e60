"""Fixtures shared by the integration tests that boot real VMs."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.local_cache import default_cache_dir
from modules.platforms.qemu.base import BootstrapBase, ResolvedBase, resolve_base
from modules.platforms.qemu.bootstrap import image_path

DATA = Path(__file__).parent / "data"
RECIPE = str(Path(sys.executable).parent / "recipe")


def boot_and_check(recipe: Path, work: Path, tasks: int) -> list[dict]:
    """`recipe run` a recipe whose tasks check a booted image; every one of its (at least) `tasks` tasks
    must pass. Returns the run's JSON events."""
    events_file = work / "events.jsonl"
    result = subprocess.run([RECIPE, "run", str(recipe), "--output-dir", str(work / "out"),
                             "--json", str(events_file)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    finished = [e for e in events if e.get("event") == "task.end"]
    assert len(finished) >= tasks and all(e.get("status") in ("ok", "changed") for e in finished), finished
    return events


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "guest: boots a QEMU guest under TCG; `make test` runs these after the rest, "
                                       "two files at a time")
    # The builds of one test run share cache layers (a warm boot of the base for every build after the first),
    # and no run starts from what an earlier one left: the same tests then boot the same way on every machine.
    # xdist's workers inherit the folder from the environment their controller set; the controller removes it.
    if "RECIPE_LAYERS_DIR" not in os.environ:
        folder = Path(tempfile.gettempdir()) / f"recipe-test-layers-{uuid.uuid4().hex[:12]}"
        os.environ["RECIPE_LAYERS_DIR"] = str(folder)
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses the cached base (directly or through another fixture) boots a guest: marked `guest`."""
    for item in items:
        if "bootstrap_base" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.guest)


@pytest.fixture(scope="session")
def bootstrap_base() -> ResolvedBase:
    """The default bootstrap base (Debian bookworm, GRUB for BIOS and UEFI, as small as its system: about 2G;
    builds grow it to their disk_size), built once into the real cache dir and reused.

    The first run on a machine takes a few minutes (debootstrap from deb.debian.org); later runs,
    and every test of the session, find the image in <cache>/images/. Never write to it: boot an
    overlay (qemu-img create -f qcow2 -F qcow2 -b <path> overlay.qcow2).
    """
    if not image_path(BootstrapBase(), default_cache_dir()).is_file():
        if os.geteuid() != 0:
            pytest.skip("building a bootstrap base needs root (debootstrap)")
        if not shutil.which("debootstrap", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            pytest.skip("debootstrap is not installed")
    tail: list[str] = []
    built = []

    def log(line: str) -> None:
        if line.startswith("bootstrap: debootstrap"):
            built.append(line)
        tail.append(line)
        del tail[:-200]

    started = time.monotonic()
    try:
        resolved = asyncio.run(resolve_base(BootstrapBase(), default_cache_dir(), log=log))
    except BaseException:
        sys.stderr.write("\n".join(tail) + "\n")
        raise
    took = time.monotonic() - started
    sys.stderr.write(f"\nbootstrap base {resolved.path}: {'built in %.0f s' % took if built else 'cached'}\n")
    return resolved


@dataclass(frozen=True)
class Conversion:
    """virt-v2v converting the exported OVA (or the VMware VM folder's .vmx), started in the background as soon
    as the export exists: under TCG it takes about 5 minutes (libguestfs' appliance rebuilds the guest's
    initramfs: 24 minutes before the base's initramfs held only the root disk's drivers), which the tests
    after test_exports overlap with their own guests. test_virt_v2v waits for it."""

    process: subprocess.Popen
    output: Path         # -os: the converted disk (<name>-sda) and its libvirt XML
    log: Path            # virt-v2v's stdout and stderr
    started: float

    def wait(self, timeout: float) -> tuple[int, str, float]:
        """(exit status, the log, seconds since it started)."""
        code = self.process.wait(timeout=timeout)
        return code, self.log.read_text(errors="replace"), time.monotonic() - self.started


@dataclass(frozen=True)
class ExportedImage:
    """A real build exported to every appliance format (tests/integration/data/appliance.yml)."""

    name: str            # the build's name: <recipe>-<source>
    output: Path         # output/<name>/ with the OVA, OVF, boxes, catalog, SHA256SUMS
    run_dir: Path        # the run's output dir, holding <recipe>.manifest.json
    events: list[dict]   # the run's JSON events
    conversions: dict[str, Conversion]     # by virt-v2v's input mode: ova, vmx
    marker: str = "exported-by-recipe"    # the content of /etc/recipe-test-marker in the image


# libguestfs runs its appliance with KVM when /dev/kvm exists, which aborts where KVM is broken
LIBGUESTFS_TCG = {"LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}


def start_conversion(mode: str, source: Path, work: Path) -> Conversion:
    output, log = work / f"v2v-{mode}", work / f"virt-v2v-{mode}.log"
    output.mkdir()
    with open(log, "wb") as stream:
        # niced, so the guests it overlaps are not slowed into their timeouts; it takes what CPU they leave
        process = subprocess.Popen(["nice", "-n", "19", "virt-v2v", "-i", mode, str(source), "-o", "local",
                                    "-of", "qcow2", "-os", str(output)], stdin=subprocess.DEVNULL, stdout=stream,
                                   stderr=subprocess.STDOUT, env={**os.environ, **LIBGUESTFS_TCG},
                                   start_new_session=True)
    return Conversion(process=process, output=output, log=log, started=time.monotonic())


@pytest.fixture(scope="session")
def exported_image(bootstrap_base, tmp_path_factory):
    """One build of the appliance recipe on the bootstrap base (grown to a 3G disk_size, which a task checks),
    exported as vmdk -> ova (keep_input: false), ovf, a VMware VM folder (vmx), libvirt and virtualbox Vagrant
    boxes with a catalog, SHA256SUMS and the manifest. About 3 min. virt-v2v's conversions of the OVA and of
    the .vmx start in the background."""
    work = tmp_path_factory.mktemp("exported")
    recipe = work / "appliance.yml"
    recipe.write_text((DATA / "appliance.yml").read_text())      # base: {bootstrap: {}}, the fixture's image
    run_dir = work / "output"
    started = time.monotonic()
    events_file = work / "events.jsonl"
    result = subprocess.run([RECIPE, "run", str(recipe), "--output-dir", str(run_dir), "--json", str(events_file)],
                            capture_output=True, text=True, timeout=1500,
                            env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    sys.stderr.write(f"\nexported appliance in {time.monotonic() - started:.0f} s\n")
    output = run_dir / "appliance-vm"
    conversions = {"ova": start_conversion("ova", output / "appliance-vm.ova", work),
                   "vmx": start_conversion("vmx", output / "appliance-vm.vmwarevm" / "appliance-vm.vmx", work)}
    try:
        yield ExportedImage(name="appliance-vm", output=output, run_dir=run_dir, events=events,
                            conversions=conversions)
    finally:
        for conversion in conversions.values():
            if conversion.process.poll() is None:      # a session cut short: stop virt-v2v and its appliance
                os.killpg(conversion.process.pid, signal.SIGKILL)
                conversion.process.wait()

"""Choose KVM or TCG by running a guest, not by trusting that /dev/kvm opens.

On some machines /dev/kvm exists and opens, yet guests under KVM crawl or hang
(nested virtualization that traps everything) or QEMU aborts. So `auto` boots
a one-sector guest (accelerator_probe.S beside this file: firmware, long mode, 96 MiB of
memory touched, then an exit through QEMU's isa-debug-exit port) under TCG
and under KVM. KVM is chosen only if its guest exits as expected and is not
slower than emulation: a healthy KVM is many times faster than TCG, while a
broken one takes seconds or never exits. The answer is kept for the rest of the
machine's boot (in the cache), so each `recipe run` does not pay for the probe.

Both local-VM platforms use it: qemu for QEMU's -accel, vagrant for vagrant-libvirt's driver (kvm or qemu).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

QEMU = "qemu-system-x86_64"
PROBE_TIMEOUT = 10.0
EXPECTED_STATUS = (0x2A << 1) | 1      # the probe writes 0x2a; QEMU exits with (value << 1) | 1
# accelerator_probe.S assembled (as --64; ld -Ttext 0x7c00 --oformat binary); trailing zeros dropped
PROBE_HEX = (
    "fa31c08ed88ec08ed0bc007cbf0010b900306631c0f3aa66c70600100320000066c706002003300000bf003066b883000000"
    "b9400066890566050000200083c708e2f20f20e06683c8200f22e066b8001000000f22d866b9800000c00f32660d00010000"
    "0f300f0116b07c0f20c0660d010000800f22c0ea7c7c080048c7c70000000148c707010000004881c7001000004881ff0000"
    "000772e9b02ae6f4f490000000000000000000000000009a20000f00a07c"
)


def probe_image() -> bytes:
    """The 512-byte boot sector of the probe guest."""
    return bytes.fromhex(PROBE_HEX).ljust(510, b"\0") + b"\x55\xaa"


async def run_probe(accel: str, qemu: str = QEMU, timeout: float = PROBE_TIMEOUT) -> float | None:
    """Seconds the probe guest took under accel, or None if it did not run to its end."""
    with tempfile.TemporaryDirectory(prefix="recipe-accel-") as tmp:
        disk = Path(tmp) / "probe.img"
        disk.write_bytes(probe_image())
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            qemu, "-accel", accel, "-machine", "pc", "-m", "256", "-nodefaults", "-display", "none",
            "-no-reboot", "-drive", f"file={disk},format=raw,if=ide",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            status = await asyncio.wait_for(process.wait(), timeout)
        except asyncio.TimeoutError:
            status = None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return time.monotonic() - started if status == EXPECTED_STATUS else None


def kvm_device_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


_choice: str | None = None


async def choose_accelerator(requested: str, qemu: str = QEMU, remembered: Path | None = None) -> str:
    """'kvm' or 'tcg' for the requested auto|kvm|tcg. auto is probed once per process, and once per boot
    of this machine when `remembered` names a file to keep the answer in (a broken KVM costs seconds)."""
    global _choice
    if requested != "auto":
        return requested
    if _choice is None:
        key = _probe_key(qemu)
        _choice = _recall(remembered, key)
        if _choice is None:
            _choice = await _probe(qemu)
            _remember(remembered, key, _choice)
    return _choice


async def _probe(qemu: str) -> str:
    if not kvm_device_usable():
        return "tcg"
    tcg_time = await run_probe("tcg", qemu)
    kvm_time = await run_probe("kvm", qemu)
    if kvm_time is not None and (tcg_time is None or kvm_time <= max(1.0, tcg_time)):
        return "kvm"
    return "tcg"


def _probe_key(qemu: str) -> dict[str, object]:
    """What the answer depends on: this boot (a reboot may mend or break KVM), the QEMU binary, /dev/kvm."""
    def identity(path: str | None) -> list[int]:
        try:
            stat = os.stat(path) if path else None
        except OSError:
            stat = None
        return [stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_rdev] if stat else []
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = ""
    return {"boot_id": boot_id, "qemu": identity(shutil.which(qemu)), "kvm": identity("/dev/kvm"),
            "kvm_usable": kvm_device_usable()}


def _recall(remembered: Path | None, key: dict[str, object]) -> str | None:
    if remembered is None or not key["boot_id"]:
        return None
    try:
        record = json.loads(remembered.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(record, dict) and record.get("key") == key and record.get("choice") in ("kvm", "tcg"):
        return record["choice"]
    return None


def _remember(remembered: Path | None, key: dict[str, object], choice: str) -> None:
    if remembered is None or not key["boot_id"]:
        return
    try:
        remembered.parent.mkdir(parents=True, exist_ok=True)
        temporary = remembered.with_name(f".{remembered.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"key": key, "choice": choice}) + "\n")
        os.replace(temporary, remembered)
    except OSError:                  # a read-only cache only means probing again next time
        pass

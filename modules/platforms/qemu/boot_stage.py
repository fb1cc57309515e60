"""What a booting guest is doing, read from its serial console while the build waits for SSH.

Under TCG a guest needs one to two minutes before sshd answers; the console says
where it is (firmware, bootloader, kernel, initramfs, systemd targets, cloud-init
stages, the login prompt). `BootStages` turns console text into a `BootStage`;
`follow_console` tails the growing console file and reports each change.
Nothing here knows about events or views: ConnectVm decides what to emit.
"""
from __future__ import annotations

import asyncio
import codecs
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# CSI sequences (colours, cursor moves: GRUB redraws its menu with them), OSC, and two-byte escapes
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_KERNEL_TIME = re.compile(r"^\[\s*\d+\.\d+\]\s*")          # "[    2.345678] " before kernel and journal lines
_LONGEST = 70                                            # a fallback line longer than this is cut


@dataclass(frozen=True)
class BootStage:
    phase: str      # firmware | bootloader | kernel | initramfs | systemd | cloud-init | login | console
    text: str       # what the build line shows after "booting: "


def _systemd_target(m: re.Match[str]) -> BootStage | None:
    """systemd 252 says "Reached target basic.target - Basic System." but cuts a long unit name to fit
    80 columns ("cryptsetup.…get - Local Encrypted Volumes."), at times into the description itself
    ("integrityse…Local Integrity Protected Volumes."): such a line is not worth showing."""
    what = m["what"].rstrip(".")
    return None if "…" in what else BootStage("systemd", f"systemd reached {what}")


# (pattern, stage maker), tried in order on one console line without escapes; the first match wins.
# Only marker lines count: other kernel messages keep coming after systemd starts and must not
# send the stage back to "kernel".
_MARKERS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], BootStage | None]]] = [
    (re.compile(r"SeaBIOS \(version (?P<v>[^)\s]+)"), lambda m: BootStage("firmware", f"firmware (SeaBIOS {m['v']})")),
    (re.compile(r"^(BdsDxe:|UEFI Interactive Shell|EFI stub:)"), lambda m: BootStage("firmware", "firmware (UEFI)")),
    (re.compile(r"^Booting from (?P<what>Hard Disk|DVD/CD|ROM|Floppy)"),
     lambda m: BootStage("bootloader", f"bootloader (from {m['what']})")),
    (re.compile(r"Loading Linux (?P<v>\S+) \.\.\."), lambda m: BootStage("bootloader", f"GRUB loading Linux {m['v']}")),
    (re.compile(r"^Booting `(?P<entry>.+)'"), lambda m: BootStage("bootloader", f"GRUB booting {m['entry']}")),
    (re.compile(r"Welcome to GRUB|GNU GRUB\s+version"), lambda m: BootStage("bootloader", "GRUB")),
    (re.compile(r"^(SYSLINUX|EXTLINUX) \d"), lambda m: BootStage("bootloader", "syslinux")),
    (re.compile(r"^Linux version (?P<v>\S+)"), lambda m: BootStage("kernel", f"kernel {m['v']}")),
    (re.compile(r"Run /init as init process|^Loading, please wait\.\.\."),
     lambda m: BootStage("initramfs", "initramfs")),
    (re.compile(r"^Begin: Mounting root file system"), lambda m: BootStage("initramfs", "initramfs: mounting root")),
    (re.compile(r"Run /sbin/init as init process|^systemd\[1\]: systemd \d+\S* running in system mode|"
                r"^Welcome to .*!$"), lambda m: BootStage("systemd", "systemd started")),
    (re.compile(r"Reached target (?:\S+ - )?(?P<what>.+)$"), _systemd_target),
    # the spinner of a unit that keeps the boot waiting (networking.service for 45 s under TCG); without its
    # seconds, which would make a change a second
    (re.compile(r"Job (?P<unit>\S+)/(?:start|stop) running|A (?:start|stop) job is running for (?P<what>.+?) \("),
     lambda m: BootStage("systemd", f"systemd waiting for {m['unit'] or m['what']}")),
    (re.compile(r"Cloud-init v\. \S+ running '(?P<stage>[\w:-]+)'"),
     lambda m: BootStage("cloud-init", f"cloud-init {m['stage']}")),
    (re.compile(r"Cloud-init v\. \S+ finished at"), lambda m: BootStage("cloud-init", "cloud-init finished")),
    (re.compile(r"^\S+ login:\s*$"), lambda m: BootStage("login", "login prompt")),
]


def clean(line: str) -> str:
    """A console line as a person reads it: no escapes, control characters or kernel timestamp."""
    text = _CONTROL.sub("", _ANSI.sub("", line)).strip()
    return _KERNEL_TIME.sub("", text).strip()


def stage_of(line: str) -> BootStage | None:
    """The stage a console line marks, or None for the many lines that mark none (or one too cut to show)."""
    text = clean(line)
    for pattern, make in _MARKERS:
        found = pattern.search(text)
        if found:
            return make(found)
    return None


def _meaningful(text: str) -> bool:
    """Worth showing when no marker has been seen (a guest this module does not know): has words."""
    return len(re.findall(r"[A-Za-z]{3,}", text)) >= 2


class BootStages:
    """Console text in, the current stage out. Fed in chunks of bytes as they arrive: a line split
    between two chunks, or a multi-byte character, is read whole; the prompt that never ends its
    line ("vm login: ") is read while still partial."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self.stage: BootStage | None = None        # the last marker seen
        self.last_line = ""                         # the last meaningful line, for guests without markers

    def feed(self, data: bytes) -> BootStage | None:
        """Read more console output; the current stage after it (None: nothing worth saying yet)."""
        text = self._partial + self._decoder.decode(data)
        *lines, self._partial = re.split(r"\r\n|\r|\n", text)
        for line in lines:
            self._line(line)
        if self._partial and (partial := stage_of(self._partial)) and partial.phase == "login":
            self.stage = partial
        return self.current()

    def _line(self, line: str) -> None:
        found = stage_of(line)
        if found:
            self.stage = found
        elif _meaningful(text := clean(line)):
            self.last_line = text[:_LONGEST] + ("…" if len(text) > _LONGEST else "")

    def current(self) -> BootStage | None:
        if self.stage:
            return self.stage
        return BootStage("console", self.last_line) if self.last_line else None


async def follow_console(path: Path, changed: Callable[[BootStage], None], every: float = 1.0) -> None:
    """Tail `path` until cancelled, calling `changed` when the stage differs from the last one reported.
    Polling once a second bounds the events to one a second however fast the console scrolls."""
    stages, offset, shown = BootStages(), 0, None
    while True:
        try:
            with open(path, "rb") as console:
                console.seek(offset)
                data = console.read()
        except FileNotFoundError:       # QEMU creates it as it starts
            data = b""
        offset += len(data)
        stage = stages.feed(data) if data else stages.current()
        if stage and stage != shown:
            shown = stage
            changed(stage)
        await asyncio.sleep(every)

"""Real guests under QEMU (TCG here): build, reboot, export, verify; interrupt; a guest that never answers.

The bootstrap base is built once per machine and cached (tests/integration/conftest.py);
every test boots throwaway overlays of it, never the base itself.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RECIPE = str(Path(sys.executable).parent / "recipe")


def qemu_processes(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-a", "-f", f"qemu-system.*{marker}"], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def events_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


BUILD = """\
name: {name}
vars:
  marker: built-by-recipe
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    disk_size: 5G
    ssh: {{user: debian}}
become: true
tasks:
  - name: A file
    copy: {{content: "{{{{ marker }}}}\\n", dest: /etc/recipe-marker, mode: "0640"}}
  - name: A user
    user: {{name: appuser, shell: /bin/sh}}
  - name: Record the boot
    shell: cat /proc/sys/kernel/random/boot_id > /var/tmp/first-boot
  - name: Reboot
    reboot: {{reboot_timeout: 300}}
  - name: After the reboot
    shell: test "$(cat /proc/sys/kernel/random/boot_id)" != "$(cat /var/tmp/first-boot)" && touch /etc/rebooted
  - name: The root partition grew to the disk size
    shell: test $(df --output=size -B1M / | tail -1) -gt 4500
    changed_when: false
  - sysprep: {{}}
exports:
  - qcow2: {{}}
  - raw: {{}}
verify:
  - name: Every task left its mark
    shell: |
      set -e
      grep -qx built-by-recipe /etc/recipe-marker
      test "$(stat -c %a /etc/recipe-marker)" = 640
      id appuser
      test -e /etc/rebooted
      # the build boot's key is gone (this verify boot brought its own)
      ! grep -qs 'recipe-build-.*-build$' /home/*/.ssh/authorized_keys /root/.ssh/authorized_keys
    changed_when: false
"""


# three TCG boots (build, reboot, verify) and two exports: about 10 minutes while virt-v2v converts beside it
@pytest.mark.timeout(1500)
def test_build_with_reboot_export_and_verify(bootstrap_base, tmp_path):
    recipe = tmp_path / "vmtest.yml"
    recipe.write_text(BUILD.format(name="vmtest", base=bootstrap_base.path))
    events = tmp_path / "events.jsonl"
    output = tmp_path / "output"
    result = subprocess.run([RECIPE, "run", str(recipe), "--json", str(events), "--output-dir", str(output)],
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    qcow2, raw = output / "vmtest-vm" / "vmtest-vm.qcow2", output / "vmtest-vm" / "vmtest-vm.raw"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(qcow2)], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["format"] == "qcow2" and "backing-filename" not in info   # standalone
    assert info["virtual-size"] == 5 * 1024 ** 3
    assert raw.stat().st_size == 5 * 1024 ** 3
    lines = events_of(events)
    connected = [e for e in lines if e["event"] == "connected"]
    assert len(connected) == 2 and all(e["host_key_verified"] for e in connected)   # build and verify boots
    booting = [e.get("stage") for e in lines[:lines.index(connected[0])] if e["event"] == "step.status"]
    assert {"systemd", "cloud-init"} & set(booting), f"the console's boot stages before SSH: {booting}"
    assert "not verified" not in result.stdout
    assert any(e["event"] == "task.end" and e["task"] == "Every task left its mark" and e["status"] == "ok"
               for e in lines)
    assert not qemu_processes("recipe-vmtest-vm")
    assert not list(Path("/tmp").glob("recipe-vmtest-vm-*")), "the work directory must be removed"
    assert (output / "vmtest-vm" / "console-build.log").stat().st_size > 0


INTERRUPTED = """\
name: sigint
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    ssh: {{user: debian}}
tasks:
  - name: Long task
    shell: sleep 600
"""


def test_sigint_mid_provisioning_leaves_nothing(bootstrap_base, tmp_path):
    recipe = tmp_path / "sigint.yml"
    recipe.write_text(INTERRUPTED.format(base=bootstrap_base.path))
    events = tmp_path / "events.jsonl"
    output = tmp_path / "output"
    process = subprocess.Popen([RECIPE, "run", str(recipe), "--json", str(events), "--output-dir", str(output)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if any(e["event"] == "task.start" and e["task"] == "Long task" for e in events_of(events)):
            break
        time.sleep(0.5)
    assert process.poll() is None, process.communicate()
    assert qemu_processes("recipe-sigint-vm"), "the guest should be running"
    process.send_signal(signal.SIGINT)
    seen = []
    for line in process.stdout:             # the first cleanup has started: a second Ctrl-C says what is left
        seen.append(line)
        if "cleanup:" in line:
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=120)
    out = "".join(seen) + out
    assert process.returncode == 130, out[-3000:] + err[-2000:]
    assert "still cleaning up: sigint-vm: " in out and "QEMU (build)" in out.split("still cleaning up:")[1]
    assert not qemu_processes("recipe-sigint-vm")
    assert not list(Path("/tmp").glob("recipe-sigint-vm-*"))
    finals = list((output / "sigint-vm").glob("*.qcow2")) + list((output / "sigint-vm").glob(".*part*"))
    assert finals == []
    assert "Traceback" not in out + err


SILENT = """\
name: silent
sources:
  vm:
    platform: qemu
    base: {{path: "{disk}"}}
    ssh: {{user: debian, connect_timeout: 20}}
tasks:
  - shell: 'true'
"""


def test_guest_that_never_answers_fails_with_the_console_tail(tmp_path):
    disk = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    recipe = tmp_path / "silent.yml"
    recipe.write_text(SILENT.format(disk=disk))
    started = time.monotonic()
    result = subprocess.run([RECIPE, "run", str(recipe), "--output-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 20 + 60, f"took {elapsed:.0f}s for a 20s connect timeout"
    assert "could not connect" in result.stdout and "console" in result.stdout
    assert not qemu_processes("recipe-silent-vm")
    assert os.path.exists(tmp_path / "out" / "silent-vm" / "console-build.log")

"""Cache layers and warm boots with real TCG guests: what a rebuild runs again, what its image holds (read off
the exported disk with libguestfs, not trusted from keys), and whose keys a resumed machine has."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import RECIPE
from .test_qemu_platform import events_of

RECIPE_TEXT = """\
name: layered
secrets: [token]
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    memory: 768
    ssh: {{user: debian}}
tasks:
  - name: slow one
    become: true
    shell: sleep 20; echo one > /etc/one
  - name: motd
    become: true
    copy: {{src: motd, dest: /etc/motd}}
  - name: token
    become: true
    shell: echo "{{{{ token }}}}" | sha1sum > /etc/token-hash; sleep 20
  - name: last
    become: true
    shell: echo "{last}" > /etc/last
exports:
  - qcow2: {{}}
"""


def build(folder: Path, base: Path, last: str, token: str, *extra: str) -> tuple[list[dict], dict[str, str]]:
    (folder / "web.yml").write_text(RECIPE_TEXT.format(base=base, last=last))
    events = folder / "events.jsonl"
    events.unlink(missing_ok=True)
    result = subprocess.run([RECIPE, "run", str(folder / "web.yml"), "--json", str(events),
                             "--output-dir", str(folder / "out"), *extra], capture_output=True, text=True,
                            timeout=900, env={**os.environ, "RECIPE_VAR_token": token})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert token not in result.stdout + result.stderr
    return events_of(events), read_image(folder / "out" / "layered-vm" / "layered-vm.qcow2")


IMAGE_FILES = ("/etc/one", "/etc/motd", "/etc/token-hash", "/etc/last", "/home/debian/.ssh/authorized_keys",
               "/etc/ssh/ssh_host_ed25519_key.pub")


def read_image(image: Path, paths: tuple[str, ...] = IMAGE_FILES) -> dict[str, str]:
    """Files of the exported image, read by libguestfs (its own appliance, on TCG here)."""
    script = "".join(f"cat {path}\necho ::end::\n" for path in paths)
    env = {**os.environ, "LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}
    out = subprocess.run(["guestfish", "--ro", "-a", str(image), "-i"], input=script, capture_output=True,
                         text=True, env=env, timeout=300, check=True).stdout
    return dict(zip(paths, (part.strip() for part in out.split("::end::")), strict=False))


def statuses(events: list[dict]) -> dict[str, str]:
    found = {e["task"]: e["status"] for e in events if e["event"] == "task.end"}
    found.update({e["task"]: "cached" for e in events if e["event"] == "task.cached"})
    return found


TASKS = ["slow one", "motd", "token", "last"]


def resumed_after(events: list[dict], first_changed: str) -> int:
    """How many tasks the build took from the cache, checked against what it reported: those before are
    `cached`, the rest ran. Where it starts is the build's choice (booting a layer, or resuming an earlier
    one and running cheap tasks again), but never past the first task whose inputs changed."""
    (cache,) = [e for e in events if e["event"] == "cache"]
    done = cache["resumes"] or 0
    assert done <= TASKS.index(first_changed), cache
    assert statuses(events) == {task: "cached" if index < done else "changed" for index, task in enumerate(TASKS)}
    return done


def build_id(events: list[dict]) -> str:
    return next(e["build_id"] for e in events if e["event"] == "build.start")


# five builds (one boots, four resume) and five images read by libguestfs: 6.5 minutes alone on 2 cores
@pytest.mark.timeout(1500)
def test_rebuilds_run_only_what_changed_and_resumed_machines_get_their_own_keys(bootstrap_base, tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "motd").write_text("welcome\n")
    layers = Path(os.environ["RECIPE_LAYERS_DIR"])

    first, first_image = build(tmp_path, bootstrap_base.path, "v1", "s3cret-one")
    assert set(statuses(first).values()) == {"changed"}
    assert first_image["/etc/one"] == "one" and first_image["/etc/last"] == "v1"

    # the last task edited: only it runs, on the machine resumed after the task before it
    second, image = build(tmp_path, bootstrap_base.path, "v2", "s3cret-one")
    assert resumed_after(second, "last") == 3          # the tasks before it took long: their layer kept a state
    assert [e["resumed"] for e in second if e["event"] == "booted"] == [True]
    assert image["/etc/last"] == "v2" and image["/etc/one"] == "one" and image["/etc/motd"] == "welcome"
    # its own login key and host key, verified; the build that kept the machine's are gone from the image
    assert f"recipe-build-{build_id(second)}-build" in image["/home/debian/.ssh/authorized_keys"]
    assert build_id(first) not in image["/home/debian/.ssh/authorized_keys"]
    connected = [e for e in second if e["event"] == "connected"]
    assert len(connected) == 2 and all(e["host_key_verified"] for e in connected)
    assert image["/etc/ssh/ssh_host_ed25519_key.pub"].startswith("ssh-ed25519 ")
    assert image["/etc/ssh/ssh_host_ed25519_key.pub"] != first_image["/etc/ssh/ssh_host_ed25519_key.pub"]

    # a file a copy reads: that task and those after it run again
    (tmp_path / "files" / "motd").write_text("welcome back\n")
    third, image = build(tmp_path, bootstrap_base.path, "v2", "s3cret-one")
    resumed_after(third, "motd")
    assert image["/etc/motd"] == "welcome back" and image["/etc/one"] == "one"

    # a secret's value: the task using it runs again, and no layer's record holds it
    fourth, image = build(tmp_path, bootstrap_base.path, "v2", "s3cret-two")
    resumed_after(fourth, "token")
    assert image["/etc/token-hash"] != first_image["/etc/token-hash"]
    records = [path.read_text() for path in layers.glob("*/layer.json")]
    assert records and not any("s3cret" in text for text in records)

    # --no-cache: everything runs, and the image is the same
    fifth, image = build(tmp_path, bootstrap_base.path, "v2", "s3cret-two", "--no-cache")
    assert set(statuses(fifth).values()) == {"changed"}
    assert [e["resumed"] for e in fifth if e["event"] == "booted"] == [False]
    assert image["/etc/motd"] == "welcome back" and image["/etc/last"] == "v2"

"""deb822_repository against sources.list.d and keyrings in tmp_path (the module's attributes moved there); real
Ansible in check mode (it writes nothing, yet returns the text it would write) is the oracle for the format."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import voluptuous as vol

from modules.tasks.deb822_repository import Deb822Repository, render, slug_of
from tests.unit.modules.tasks.conftest import mode_of

KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEawnQERYJKwYBBAHaRw8BAQdA\n=1ZJG\n-----END PGP PUBLIC KEY BLOCK-----\n"
DOCKER = {"name": "Docker CE_stable", "types": ["deb"], "uris": "https://download.docker.com/linux/debian",
          "suites": ["bookworm"], "components": ["stable"], "architectures": "amd64,arm64", "signed_by": KEY,
          "enabled": True, "date_max_future": 10, "allow_downgrade_to_insecure": False}


@pytest.fixture
def apt(target, monkeypatch):
    monkeypatch.setattr(Deb822Repository, "sources_dir", str(target / "sources.list.d"))
    monkeypatch.setattr(Deb822Repository, "keyrings_dir", str(target / "keyrings"))
    (target / "sources.list.d").mkdir()
    return target


def test_write_check_mode_second_run_and_absent(h, apt):
    dest = apt / "sources.list.d/docker-ce-stable.sources"
    checked = h.run("deb822_repository", DOCKER, check=True)
    assert checked.changed and not dest.exists()
    result = h.run("deb822_repository", DOCKER)
    assert result.changed and result.data["dest"] == str(dest) and result.data["key_filename"] is None
    assert dest.read_text() == result.data["repo"] == (
        "Allow-Downgrade-To-Insecure: no\nArchitectures: amd64 arm64\nComponents: stable\nDate-Max-Future: 10\n"
        "Enabled: yes\nX-Repolib-Name: Docker CE_stable\nSigned-By:\n    -----BEGIN PGP PUBLIC KEY BLOCK-----\n"
        "    .\n    mDMEawnQERYJKwYBBAHaRw8BAQdA\n    =1ZJG\n    -----END PGP PUBLIC KEY BLOCK-----\n"
        "Suites: bookworm\nTypes: deb\nURIs: https://download.docker.com/linux/debian\n")
    assert mode_of(dest) == 0o644
    assert h.run("deb822_repository", DOCKER).status == "ok"
    assert h.run("deb822_repository", {**DOCKER, "mode": "0600"}).changed and mode_of(dest) == 0o600
    disabled = h.run("deb822_repository", {**DOCKER, "enabled": "no", "mode": "0600"})
    assert disabled.changed and "Enabled: no\n" in dest.read_text()
    gone = h.run("deb822_repository", {"name": "Docker CE_stable", "state": "absent"})
    assert gone.changed and not dest.exists() and gone.data["repo"] is None
    assert gone.data["key_filename"] == str(apt / "keyrings/docker-ce-stable.gpg")
    assert h.run("deb822_repository", {"name": "Docker CE_stable", "state": "absent"}).status == "ok"


def test_signed_by_a_file_or_a_url(h, apt):
    keyfile = apt / "key.asc"
    keyfile.write_text(KEY)
    on_disk = h.run("deb822_repository", {"name": "x", "uris": "http://e.com", "signed_by": str(keyfile)})
    assert on_disk.data["key_filename"] == str(keyfile) and f"Signed-By: {keyfile}\n" in on_disk.data["repo"]
    url = h.run("deb822_repository", {"name": "x", "uris": "http://e.com", "signed_by": keyfile.as_uri()})
    ring = apt / "keyrings/x.asc"
    assert url.changed and url.data["key_filename"] == str(ring) and ring.read_text() == KEY
    assert mode_of(ring) == 0o644 and mode_of(apt / "keyrings") == 0o755
    assert h.run("deb822_repository", {"name": "x", "uris": "http://e.com", "signed_by": keyfile.as_uri()}).status == "ok"
    missing = h.run("deb822_repository", {"name": "x", "uris": "http://e.com", "signed_by": "file:///nonexistent"})
    assert missing.failed and missing.msg.startswith("Could not fetch signed_by key")
    gone = h.run("deb822_repository", {"name": "x", "state": "absent"})
    assert gone.changed and not ring.exists()


def test_bad_input(h):
    with pytest.raises(vol.Invalid):
        h.params("deb822_repository", {"name": "x", "types": ["rpm"]})
    with pytest.raises(vol.Invalid):
        h.params("deb822_repository", {"uris": "http://e.com"})


def test_helpers():
    assert slug_of("My Repo_2.0!") == "my-repo-20"
    assert render({"name": "x", "components": [], "types": ["deb", "deb-src"]}) == \
        "Components:\nX-Repolib-Name: x\nTypes: deb deb-src\n"


def ansible_check(args: dict) -> dict:
    """Real Ansible in check mode: it returns the file's text and writes nothing (python-debian in the venv)."""
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    done = subprocess.run([str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-o", "--check",
                           "-m", "deb822_repository", "-a", json.dumps(args)],
                          capture_output=True, text=True, timeout=300, env=env)
    line = next(line for line in done.stdout.splitlines() if line.startswith("localhost | "))
    return json.loads(line.split(" => ", 1)[1])


@pytest.mark.parametrize("args", [
    DOCKER,
    {"name": "plain", "uris": ["http://deb.debian.org/debian"], "suites": "bookworm,bookworm-updates",
     "components": ["main", "contrib"], "types": ["deb", "deb-src"], "signed_by": "ABCDEF0123456789ABCDEF",
     "by_hash": True, "check_valid_until": False, "inrelease_path": "x", "languages": ["en"], "pdiffs": False,
     "targets": ["a"], "trusted": False, "allow_weak": True, "allow_insecure": False, "check_date": True},
])
def test_the_text_is_ansibles(h, apt, args):
    oracle = ansible_check({**args, "name": f"recipe-oracle-{slug_of(args['name'])}"})
    ours = h.run("deb822_repository", {**args, "name": f"recipe-oracle-{slug_of(args['name'])}"})
    assert ours.data["repo"] == oracle["repo"]
    assert oracle["dest"].endswith(Path(ours.data["dest"]).name) and oracle["changed"] == ours.changed

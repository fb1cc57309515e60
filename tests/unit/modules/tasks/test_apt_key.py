"""apt_key for real (apt-key and gpg of this machine) against keyrings in tmp_path, never apt's own; a key made
for the test in a throwaway gpg home. Real Ansible, pointed at another keyring in tmp_path, is the oracle."""
import os
import shutil
import subprocess

import pytest
import voluptuous as vol

from modules.tasks.apt_key import parse_key_id, parse_keys
from tests.unit.modules.tasks.conftest import ansible_module

pytestmark = pytest.mark.skipif(not (shutil.which("apt-key") and shutil.which("gpg")), reason="needs apt-key, gpg")


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> tuple[str, str]:
    """(fingerprint, armored public key) of a fresh ed25519 key."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Recipe Test <t@example.com>",
                    "ed25519", "sign", "never"], check=True, capture_output=True, env=env)
    armored = subprocess.run(["gpg", "--armor", "--export"], check=True, capture_output=True, text=True, env=env)
    listing = subprocess.run(["gpg", "--with-colons", "--list-keys"], check=True, capture_output=True, text=True,
                             env=env)
    fingerprint = next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr"))
    # --quick-gen-key started an agent for this home; nothing needs it now, and nothing may outlive the tests
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    return fingerprint, armored.stdout


def test_data_check_mode_add_second_run_and_remove(h, target, key):
    fingerprint, armored = key
    ring = str(target / "ring.gpg")
    checked = h.run("apt_key", {"data": armored, "keyring": ring}, check=True)
    assert checked.changed and checked.data["before"] == []
    assert not (target / "ring.gpg").exists() or (target / "ring.gpg").stat().st_size == 0  # apt-key's listing makes it
    added = h.run("apt_key", {"data": armored, "keyring": ring})
    assert added.changed, added.msg
    assert added.data["fp"] == fingerprint[-16:] and added.data["short_id"] == fingerprint[-8:]
    assert added.data["after"] == [fingerprint[-16:]]
    assert all(armored.splitlines()[2] not in script for script in h.connection.scripts)   # stdin, not argv
    assert h.run("apt_key", {"data": armored, "keyring": ring}).status == "ok"
    assert h.run("apt_key", {"id": fingerprint[-8:], "keyring": ring}).status == "ok"          # short format
    removed = h.run("apt_key", {"id": fingerprint, "keyring": ring, "state": "absent"})
    assert removed.changed and removed.data["after"] == []
    assert h.run("apt_key", {"id": fingerprint, "keyring": ring, "state": "absent"}).status == "ok"


def test_a_file_and_ansible_agrees(h, target, tmp_path, key, monkeypatch):
    fingerprint, armored = key
    (tmp_path / "gnupg").mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(tmp_path / "gnupg"))    # Ansible's gpg would make root's ~/.gnupg
    keyfile = target / "key.asc"
    keyfile.write_text(armored)
    ours = h.run("apt_key", {"file": str(keyfile), "keyring": str(target / "ours.gpg")})
    oracle = ansible_module("apt_key", {"file": str(keyfile), "keyring": str(tmp_path / "theirs.gpg")})
    assert ours.changed == oracle["changed"]
    for field in ("id", "short_id", "fp", "key_id", "before", "after"):
        assert ours.data[field] == oracle[field], field


def test_errors(h, target):
    (target / "junk").write_text("not a key\n")
    junk = h.run("apt_key", {"file": str(target / "junk"), "keyring": str(target / "r.gpg")})
    assert junk.failed and junk.msg.startswith(f"Unable to extract key from '{target / 'junk'}'")
    assert h.run("apt_key", {"id": "12345", "keyring": str(target / "r.gpg")}).msg == "Invalid key_id"
    assert h.run("apt_key", {"keyserver": "keyserver.ubuntu.com"}).msg == "Missing key_id, required with keyserver."
    with pytest.raises(vol.Invalid, match="mutually exclusive"):
        h.params("apt_key", {"data": "x", "url": "https://example.com/key"})


def test_parsers():
    assert parse_key_id("0xabcdef0123456789") == ("23456789", "ABCDEF0123456789", "ABCDEF0123456789")
    with pytest.raises(ValueError):
        parse_key_id("ABCDEF012")
    assert parse_keys("pub   ed25519/4E7E39EA14512019 2026-11-27 [SC]\nsub  rsa/AA [E] [expired: 2020]\n"
                      "pub:-:255:22:4E7E39EA14512019:1\n") == ["4E7E39EA14512019", "4E7E39EA14512019"]

"""openssh_keypair against real ssh-keygen, in tmp_path: made, kept, made again when the type or size differs
(regenerate's rules), its comment updated in place, removed; the passphrase never in a script."""
from __future__ import annotations

import subprocess

from tests.unit.modules.tasks.conftest import mode_of


def keygen_list(path) -> list[str]:
    return subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True,
                          check=True).stdout.split()


def test_made_then_kept_then_made_again_for_another_size(h, target):
    key = target / "ssh_host_rsa_key"
    args = {"path": str(key), "type": "rsa", "size": 2048, "comment": "host"}
    made = h.run("openssh_keypair", args)
    assert made.changed and not made.failed
    size, fingerprint, comment, kind = keygen_list(key)
    data = made.as_register()
    assert (data["size"], data["fingerprint"], data["comment"], data["type"]) == (2048, fingerprint, "host", "rsa")
    assert size == "2048" and kind == "(RSA)" and mode_of(key) == 0o600
    assert data["public_key"] == " ".join((target / "ssh_host_rsa_key.pub").read_text().split()[:2])

    again = h.run("openssh_keypair", args)
    assert again.status == "ok" and again.as_register()["fingerprint"] == fingerprint

    bigger = h.run("openssh_keypair", {**args, "size": 3072})
    assert bigger.changed and keygen_list(key)[0] == "3072" and bigger.as_register()["fingerprint"] != fingerprint


def test_regenerate_fail_and_never(h, target):
    key = target / "k"
    assert h.run("openssh_keypair", {"path": str(key), "type": "ed25519"}).changed
    refused = h.run("openssh_keypair", {"path": str(key), "type": "rsa", "size": 2048, "regenerate": "fail"})
    assert refused.failed and "wrong type and/or size" in refused.msg
    kept = h.run("openssh_keypair", {"path": str(key), "type": "rsa", "size": 2048, "regenerate": "never"})
    assert kept.status == "ok" and kept.as_register()["type"] == "ed25519"


def test_comment_and_mode_change_in_place(h, target):
    key = target / "k"
    h.run("openssh_keypair", {"path": str(key), "type": "ed25519", "comment": "one"})
    fingerprint = keygen_list(key)[1]
    renamed = h.run("openssh_keypair", {"path": str(key), "type": "ed25519", "comment": "two", "mode": "0400"})
    assert renamed.changed and keygen_list(key)[1:3] == [fingerprint, "two"] and mode_of(key) == 0o400
    assert h.run("openssh_keypair", {"path": str(key), "type": "ed25519", "comment": "two"}).status == "ok"


def test_check_mode_and_absent(h, target):
    key = target / "k"
    would = h.run("openssh_keypair", {"path": str(key), "type": "ed25519"}, check=True)
    assert would.changed and not key.exists()
    h.run("openssh_keypair", {"path": str(key), "type": "ed25519"})
    gone = h.run("openssh_keypair", {"path": str(key), "state": "absent"})
    assert gone.changed and not key.exists() and not (target / "k.pub").exists()
    assert h.run("openssh_keypair", {"path": str(key), "state": "absent"}).status == "ok"


def test_a_passphrase_stays_out_of_the_scripts(h, target):
    key = target / "k"
    made = h.run("openssh_keypair", {"path": str(key), "type": "ed25519", "passphrase": "s3cret-phrase"})
    assert made.changed and made.as_register()["type"] == "ed25519"     # read back with the passphrase
    assert all("s3cret-phrase" not in script for script in h.connection.scripts)
    assert h.run("openssh_keypair", {"path": str(key), "type": "ed25519", "passphrase": "s3cret-phrase"}).status == "ok"

"""recipe shell's ssh command line: the build's key, its host key pinned in a file of its own, a password
never on the command line."""
from __future__ import annotations

import stat
import subprocess

from engine.build.shell import ssh_command
from engine.remote.ssh import Endpoint


def test_the_host_key_is_pinned_in_a_known_hosts_file_of_its_own(tmp_path):
    endpoint = Endpoint("127.0.0.1", 2222, "debian", private_key_file="/keys/login", host_key="ssh-ed25519 AAAAkey")
    argv, _ = ssh_command("/usr/bin/ssh", endpoint, tmp_path, ("cat", "/etc/motd"), terminal=False)
    assert (tmp_path / "known_hosts").read_text() == "[127.0.0.1]:2222 ssh-ed25519 AAAAkey\n"
    assert argv[-4:] == ["debian@127.0.0.1", "--", "cat", "/etc/motd"]
    pairs = dict(zip(argv[1:-4:2], argv[2:-4:2], strict=False))
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in argv and "StrictHostKeyChecking=yes" in argv
    assert pairs["-i"] == "/keys/login" and pairs["-p"] == "2222" and "-t" not in argv


def test_a_password_goes_through_askpass_from_a_private_file(tmp_path):
    endpoint = Endpoint("10.0.0.5", 22, "admin", password="pa$$ word")
    argv, env = ssh_command("/usr/bin/ssh", endpoint, tmp_path, (), terminal=True)
    assert not any("pa$$" in word for word in argv) and argv[-2:] == ["-t", "admin@10.0.0.5"]
    assert env["SSH_ASKPASS_REQUIRE"] == "force"
    assert stat.S_IMODE((tmp_path / "password").stat().st_mode) == 0o600
    said = subprocess.run([env["SSH_ASKPASS"]], capture_output=True, text=True, check=True).stdout
    assert said == "pa$$ word"
    assert "StrictHostKeyChecking=accept-new" in argv      # nothing to pin: as the build did, it warned

"""`vagrant ssh-config` as Vagrant 2.3.4 prints it for vagrant-libvirt and VirtualBox machines."""
from __future__ import annotations

import pytest

from engine.errors import BuildError
from modules.platforms.vagrant.ssh_config import parse_ssh_config

LIBVIRT = """\
Host default
  HostName 192.168.123.27
  User vagrant
  Port 22
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /tmp/recipe-web-box-x/vagrant.d/insecure_private_key
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa

"""

VIRTUALBOX = """\
Host default
  HostName 127.0.0.1
  User debian
  Port 2222
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "/home/me/my project/.vagrant/machines/default/virtualbox/private_key"
  IdentityFile /home/me/.vagrant.d/insecure_private_key
  IdentitiesOnly yes
  LogLevel FATAL
"""


def test_libvirt_machine_on_its_management_network():
    target = parse_ssh_config(LIBVIRT)
    assert (target.host, target.port, target.user) == ("192.168.123.27", 22, "vagrant")
    assert target.identity_files == ("/tmp/recipe-web-box-x/vagrant.d/insecure_private_key",)


def test_forwarded_port_quoted_paths_and_the_first_key_that_exists(tmp_path):
    target = parse_ssh_config(VIRTUALBOX)
    assert (target.host, target.port, target.user) == ("127.0.0.1", 2222, "debian")
    assert target.identity_files == ("/home/me/my project/.vagrant/machines/default/virtualbox/private_key",
                                     "/home/me/.vagrant.d/insecure_private_key")
    assert target.identity_file() is None
    key = tmp_path / "insecure_private_key"
    key.write_text("key")
    text = VIRTUALBOX.replace("/home/me/.vagrant.d/insecure_private_key", str(key))
    assert parse_ssh_config(text).identity_file() == str(key)


@pytest.mark.parametrize("text, words", [
    ("Host default\n  User vagrant\n  Port 22\n", "gives no HostName"),
    ("Host default\n  HostName 10.0.0.2\n  Port twenty-two\n", "Port that is not a number"),
    ("", "gives no HostName"),
])
def test_what_is_not_an_address_is_a_clear_error(text, words):
    with pytest.raises(BuildError, match=words):
        parse_ssh_config(text)

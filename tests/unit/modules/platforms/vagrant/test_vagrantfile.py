"""The Vagrantfile a build writes, checked by the real `vagrant validate` (Vagrant 2.3.4, vagrant-libvirt)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from modules.platforms.vagrant.config import ManagementNetwork, VagrantConfig
from modules.platforms.vagrant.vagrantfile import Names, render, ruby_string

NAMES = Names(box="recipe-web-box-abc123", prefix="recipe-web-box-abc123-", build="web-box", build_id="20261128-1")


def vagrant_validate(folder: Path, text: str) -> subprocess.CompletedProcess:
    if not shutil.which("vagrant"):
        pytest.fail("vagrant is not installed (`make deps` installs vagrant and vagrant-libvirt)")
    (folder / "Vagrantfile").write_text(text)
    env = {**os.environ, "VAGRANT_HOME": str(folder / "home"), "VAGRANT_CHECKPOINT_DISABLE": "1",
           "VAGRANT_NO_COLOR": "1"}
    return subprocess.run(["vagrant", "validate"], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_libvirt_under_tcg_with_the_tests_pool_and_network():
    config = VagrantConfig(box_url="file:///x.box", storage_pool="pool-1", cpus=3, memory=2048,
                           management_network=ManagementNetwork("net-1", "192.168.123.0/24"))
    text = render(config, NAMES, accelerator="tcg")
    for line in ('config.vm.box = "recipe-web-box-abc123"', "config.ssh.insert_key = false",
                 'libvirt.driver = "qemu"', "libvirt.cpus = 3", "libvirt.memory = 2048",
                 'libvirt.default_prefix = "recipe-web-box-abc123-"', 'libvirt.storage_pool_name = "pool-1"',
                 'libvirt.management_network_name = "net-1"',
                 'libvirt.management_network_address = "192.168.123.0/24"', 'libvirt.uri = "qemu:///system"'):
        assert line in text, text
    assert 'libvirt.driver = "kvm"' in render(config, NAMES, accelerator="kvm")


def test_the_sources_text_comes_last_inside_the_configure_block(tmp_path):
    extra = 'config.vm.synced_folder ".", "/vagrant", disabled: true\nconfig.vm.provider :libvirt do |l|\n' \
            '  l.graphics_type = "none"\nend\n'
    text = render(VagrantConfig(box="debian/bookworm64", box_version=">= 12", vagrantfile=extra), NAMES)
    assert text.rstrip().endswith('    l.graphics_type = "none"\n  end\nend')
    assert 'config.vm.box_version = ">= 12"' in text
    done = vagrant_validate(tmp_path, text)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("provider", ["libvirt", "virtualbox", "vmware_desktop"])
def test_vagrant_reads_the_vagrantfile_of_each_provider(tmp_path, provider):
    text = render(VagrantConfig(box="debian/bookworm64", provider=provider), NAMES)
    done = vagrant_validate(tmp_path, text)
    assert done.returncode == 0, text + done.stdout + done.stderr
    assert ("linked_clone = false" in text) == (provider != "libvirt")


def test_names_and_text_are_ruby_literals_never_code():
    assert ruby_string('a "b" #{system("x")} \\ c\n') == '"a \\"b\\" \\#{system(\\"x\\")} \\\\ c\\n"'
    box = 'x"; system("touch /tmp/pwned"); "'
    text = render(VagrantConfig(box=box), Names(box=box, prefix="p-"))
    assert 'config.vm.box = "x\\"; system(\\"touch /tmp/pwned\\"); \\""' in text


def test_a_quoted_name_reaches_vagrant_as_written(tmp_path):
    name = 'odd "name" #{1+1}'
    text = render(VagrantConfig(box="debian/bookworm64"), Names(box="debian/bookworm64", prefix="p-")) \
        .replace("Vagrant.configure", f"puts({ruby_string(name)})\nVagrant.configure")
    done = vagrant_validate(tmp_path, text)
    assert done.returncode == 0 and name in done.stdout, done.stdout + done.stderr

"""`recipe validate` of vagrant sources: every problem at its line:column with a hint, nothing run."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.main import main
from engine.recipe.compile import CompileOptions, compile_recipe
from modules.platforms.vagrant.config import Checksum, ManagementNetwork

DIGEST = "0123456789abcdef" * 4


def validate(tmp_path: Path, capsys, source: str) -> tuple[int, str]:
    path = tmp_path / "box.yml"
    path.write_text(f"name: web\nsources:\n  box:\n    platform: vagrant\n{source}tasks: []\n")
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def config_of(tmp_path: Path, source: str):
    path = tmp_path / "box.yml"
    path.write_text(f"name: web\nsources:\n  box:\n    platform: vagrant\n{source}tasks: []\n")
    (build,) = compile_recipe(path, CompileOptions()).builds
    return build.source


def test_the_readme_source_is_valid_with_its_defaults(tmp_path):
    source = config_of(tmp_path, "    box_url: file:///srv/appliance-libvirt.box\n"
                                 f"    checksum: sha256:{DIGEST.upper()}\n"
                                 "    vagrantfile: |\n"
                                 "      config.vm.synced_folder \".\", \"/vagrant\", disabled: true\n"
                                 "    ssh: {user: vagrant}\n")
    config = source.config
    assert config.box_url == "file:///srv/appliance-libvirt.box" and not config.catalog
    assert config.checksum == Checksum("sha256", DIGEST)
    assert (config.provider, config.cpus, config.memory, config.accelerator) == ("libvirt", 2, 1024, "auto")
    assert config.vagrant_home is None and config.insert_key is False
    assert config.vagrantfile.startswith("config.vm.synced_folder")
    assert config.ssh_user == "vagrant" and source.ssh.user == "vagrant"


def test_without_ssh_user_the_login_is_vagrant_ssh_configs(tmp_path):
    source = config_of(tmp_path, "    box: debian/bookworm64\n")
    assert source.config.ssh_user is None and source.ssh.user == "vagrant"    # as `recipe inspect` shows it


def test_paths_are_taken_from_the_recipes_folder(tmp_path):
    config = config_of(tmp_path, "    box_url: boxes/web.box\n    vagrant_home: vhome\n"
                                 "    management_network: recipe-net\n").config
    assert config.box_url == (tmp_path / "boxes" / "web.box").as_uri()
    assert config.vagrant_home == str(tmp_path / "vhome")
    assert config.management_network == ManagementNetwork("recipe-net")


def test_a_catalog_takes_a_version_and_the_boxs_name(tmp_path):
    config = config_of(tmp_path, "    box: recipe/appliance\n    box_url: https://example.com/appliance.box.json\n"
                                 "    box_version: 1.0\n").config
    assert config.catalog and config.box_version == "1.0"


@pytest.mark.parametrize("source, expected", [
    ("    cpus: 2\n", "box.yml:4:15: sources.box.platform: a vagrant source needs box or box_url (hint: box: "),
    ("    box: x\n    provider: virtualbx\n",
     "box.yml:6:15: sources.box.provider: 'virtualbx' is not a Vagrant provider recipe knows (hint: did you mean "
     "'virtualbox'?)"),
    ("    box: no spaces please\n", "box.yml:5:10: sources.box.box: 'no spaces please' is not a box name"),
    ("    box_url: ftp://example.com/x.box\n",
     "box.yml:5:14: sources.box.box_url: box_url scheme 'ftp' is not one Vagrant fetches boxes from"),
    ("    box_url: file://srv/x.box\n", "box.yml:5:14: sources.box.box_url: 'file://srv/x.box' is not an absolute "
                                       "file URL (hint: file:///srv/x.box (three slashes)"),
    ("    box_url: x.box\n    checksum: md5:abc\n",
     "box.yml:6:15: sources.box.checksum: 'md5:abc' is not a box checksum (hint: checksum: sha256:<hex>"),
    ("    box_url: x.box\n    checksum: sha256:abc\n",
     "box.yml:6:15: sources.box.checksum: a sha256 checksum has 64 hex digits, this one is 'abc'"),
    ("    box_url: https://example.com/c.json\n    box_version: 1.0.0\n",
     "box.yml:5:14: sources.box.box_url: a catalog's box needs its name (hint: add box: <the catalog's name>"),
    (f"    box: a/b\n    box_url: https://example.com/c.json\n    checksum: sha256:{DIGEST}\n",
     "box.yml:7:5: sources.box.checksum: a catalog carries the checksums of its boxes (hint: drop checksum)"),
    (f"    box: a/b\n    checksum: sha256:{DIGEST}\n",
     "box.yml:6:5: sources.box.checksum: checksum is of the box file box_url names, and there is no box_url"),
    ("    box: a/b\n    provider: virtualbox\n    storage_pool: p\n",
     "box.yml:7:5: sources.box.storage_pool: storage_pool applies to the libvirt provider only (hint: drop it, "
     "or use provider: libvirt)"),
    ("    box: a/b\n    management_network: {name: n, adress: 10.0.0.0/24}\n",
     "sources.box.management_network.adress: unknown option 'adress' (hint: did you mean 'address'?)"),
    ("    box: a/b\n    management_network: {name: n, address: 10.0.0.300/24}\n",
     "box.yml:6:44: sources.box.management_network.address: '10.0.0.300/24' is not a subnet"),
    ("    box: a/b\n    ssh: {user: vagrant, port: 2222}\n",
     "box.yml:6:26: sources.box.ssh.port: ssh.port of a vagrant machine comes from vagrant ssh-config (hint: drop "
     "ssh.port)"),
    ("    box: a/b\n    acelerator: tcg\n", "sources.box.acelerator: unknown option 'acelerator' (hint: did you mean "
                                           "'accelerator'?)"),
])
def test_mistakes_are_reported_at_their_line_with_a_hint(tmp_path, capsys, source, expected):
    code, output = validate(tmp_path, capsys, source)
    assert code == 2, output
    assert expected in output
    assert "Traceback" not in output


def test_every_broken_rule_of_a_source_is_reported_at_once(tmp_path, capsys):
    code, output = validate(tmp_path, capsys, f"    box: a/b\n    provider: vmware_desktop\n    accelerator: tcg\n"
                                              f"    libvirt_uri: qemu:///session\n    checksum: sha256:{DIGEST}\n")
    assert code == 2
    assert "(3 problems)" in output, output
    for option in ("accelerator", "libvirt_uri", "checksum"):
        assert f"sources.box.{option}:" in output

"""Builders as sources: each template, in HCL2 and in JSON, imported by `recipe import` and checked by the real
`recipe validate`; the compiled recipe holds what the builder asked for."""
from __future__ import annotations

import textwrap

import pytest

from .conftest import valid

QEMU_HCL = """\
variable "cpus" {
  type    = number
  default = 2
}
source "qemu" "deb" {
  iso_url      = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
  iso_checksum = "file:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS"
  disk_image   = true
  cpus         = var.cpus
  memory       = 2048
  disk_size    = 10240
  efi_boot     = true
  qemuargs     = [["-cpu", "max"]]
  ssh_username = "debian"
  ssh_timeout  = "20m"
  headless     = true
}
build {
  sources = ["source.qemu.deb"]
}
"""
QEMU_JSON = """\
{
  "variables": {"cpus": "2"},
  "builders": [{
    "type": "qemu",
    "name": "deb",
    "iso_url": "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
    "iso_checksum": "file:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
    "disk_image": true,
    "cpus": "{{user `cpus`}}",
    "memory": 2048,
    "disk_size": "10240",
    "efi_boot": true,
    "qemuargs": [["-cpu", "max"]],
    "ssh_username": "debian",
    "ssh_timeout": "20m",
    "headless": true
  }]
}
"""


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", QEMU_HCL), ("web.json", QEMU_JSON)])
def test_qemu_disk_image_becomes_a_qemu_source_with_a_url_base(packer, name, text):
    imported = packer({name: text}, name)
    assert imported.code == 0, imported.err
    (build,) = valid(imported).builds
    config = build.source.config
    assert build.source.platform == "qemu" and build.source.name == "deb"
    assert config.base.url.endswith("debian-12-genericcloud-amd64.qcow2")
    assert config.base.checksum.startswith("file:https://")
    assert (int(config.cpus), config.memory, config.disk_size, config.firmware) == (2, 2048, "10240M", "uefi")
    assert config.qemu_args == ("-cpu", "max")
    assert build.source.ssh.user == "debian" and build.source.ssh.connect_timeout == 1200
    assert "note: headless" in imported.comments


def test_qemu_local_disk_image_is_a_path_base_named_from_the_recipe(packer, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "base.qcow2").write_bytes(b"")
    template = """\
        source "qemu" "vm" {
          iso_url      = "images/base.qcow2"
          iso_checksum = "none"
          disk_image   = true
          ssh_username = "debian"
        }
        build { sources = ["source.qemu.vm"] }
        """
    imported = packer({"vm.pkr.hcl": template}, "vm.pkr.hcl")
    assert imported.code == 0, imported.err
    assert imported.document["sources"]["vm"]["base"] == {"path": "../images/base.qcow2"}
    (build,) = valid(imported).builds
    assert build.source.config.base.path.resolve() == tmp_path / "images" / "base.qcow2"


AMAZON_HCL = """\
variable "region" { default = "eu-west-1" }
source "amazon-ebs" "aws" {
  region        = var.region
  instance_type = "t3.small"
  ami_name      = "web-{{timestamp}}"
  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      virtualization-type = "hvm"
    }
    owners      = ["136693071363"]
    most_recent = true
  }
  ami_regions   = ["us-east-1"]
  ami_users     = ["123456789012"]
  tags          = { Name = "web" }
  run_tags      = { Purpose = "build" }
  ssh_username  = "admin"
  subnet_id     = "subnet-0abc"
  launch_block_device_mappings {
    device_name = "/dev/xvda"
    volume_size = 12
    volume_type = "gp3"
  }
  force_deregister = true
}
build { sources = ["source.amazon-ebs.aws"] }
"""
AMAZON_JSON = """\
{
  "variables": {"region": "eu-west-1"},
  "builders": [{
    "type": "amazon-ebs",
    "name": "aws",
    "region": "{{user `region`}}",
    "instance_type": "t3.small",
    "ami_name": "web-{{timestamp}}",
    "source_ami_filter": {
      "filters": {"name": "debian-12-amd64-*", "virtualization-type": "hvm"},
      "owners": ["136693071363"],
      "most_recent": true
    },
    "ami_regions": ["us-east-1"],
    "ami_users": ["123456789012"],
    "tags": {"Name": "web"},
    "run_tags": {"Purpose": "build"},
    "ssh_username": "admin",
    "subnet_id": "subnet-0abc",
    "launch_block_device_mappings": [{"device_name": "/dev/xvda", "volume_size": 12, "volume_type": "gp3"}],
    "force_deregister": true
  }]
}
"""


@pytest.mark.parametrize("name, text", [("aws.pkr.hcl", AMAZON_HCL), ("aws.json", AMAZON_JSON)])
def test_amazon_ebs_becomes_the_amazon_platform(packer, name, text):
    imported = packer({name: text}, name)
    assert imported.code == 0, imported.err
    (build,) = valid(imported).builds
    config = build.source.config
    assert build.source.platform == "amazon" and config.region == "eu-west-1"
    assert config.source_ami.filters == {"name": ["debian-12-amd64-*"], "virtualization-type": ["hvm"]}
    assert config.source_ami.owners == ("136693071363",) and config.source_ami.most_recent
    assert config.instance_type == "t3.small" and config.regions == ("us-east-1",)
    assert config.share.users == ("123456789012",)
    assert config.tags == {"Name": "web"} and config.run_tags == {"Purpose": "build"}
    assert config.subnet_id == "subnet-0abc" and config.force_deregister
    assert (config.root_volume.size, config.root_volume.type) == (12, "gp3")
    assert config.ami_name.startswith("web-") and config.ami_name[4:].isdigit()   # {{timestamp}}: build.timestamp
    assert build.source.ssh.user == "admin"


def test_amazon_credentials_are_never_copied_into_the_recipe(packer):
    template = AMAZON_HCL.replace('  ssh_username  = "admin"', '  ssh_username  = "admin"\n'
                                  '  access_key = "AKIAEXAMPLEKEY"\n  secret_key = "wJalrXUtnFEMIexamplesecret"')
    imported = packer({"aws.pkr.hcl": template}, "aws.pkr.hcl")
    assert imported.code == 3
    assert ": access_key: recipe reads AWS credentials" in imported.err
    assert "wJalrXUtnFEMIexamplesecret" not in imported.err + imported.text
    assert "#   secret_key = (not shown)" in imported.text
    recipe = valid(imported)
    assert "secret_key" not in imported.document["sources"]["aws"]
    assert recipe.builds[0].source.config.profile is None


VBOX_HCL = """\
source "virtualbox-iso" "vbox" {
  iso_url       = "https://example.com/debian.iso"
  iso_checksum  = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  guest_os_type = "Debian_64"
  cpus          = 2
  memory        = 2048
  disk_size     = 20000
  vm_name       = "web-appliance"
  format        = "ova"
  ssh_username  = "vagrant"
  ssh_password  = "vagrant"
  headless      = true
}
build { sources = ["source.virtualbox-iso.vbox"] }
"""
VBOX_JSON = """\
{"builders": [{"type": "virtualbox-iso", "name": "vbox", "iso_url": "https://example.com/debian.iso",
  "iso_checksum": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
  "guest_os_type": "Debian_64", "cpus": 2, "memory": 2048, "disk_size": 20000, "vm_name": "web-appliance",
  "format": "ova", "ssh_username": "vagrant", "ssh_password": "vagrant", "headless": true}]}
"""


@pytest.mark.parametrize("name, text", [("vbox.pkr.hcl", VBOX_HCL), ("vbox.json", VBOX_JSON)])
def test_virtualbox_is_built_on_qemu_and_exported_as_the_appliance(packer, name, text):
    imported = packer({name: text}, name)
    assert imported.code == 0, imported.err              # its ISO is the installer base (test_installers)
    assert "note: Packer's virtualbox-iso builder: recipe builds the machine with QEMU" in imported.comments
    (build,) = valid(imported).builds
    assert build.source.platform == "qemu"
    assert (build.source.config.memory, build.source.config.base.size) == (2048, "20000M")
    # the OVA, after the qcow2 every image build keeps (as Packer's builders keep their disk)
    assert [e.kind for e in build.exports] == ["qcow2", "ova"]
    assert build.exports[1].config.name == "web-appliance"


def test_virtualbox_default_format_is_ovf_and_vmware_the_vmdk(packer):
    template = """\
        source "virtualbox-iso" "vbox" {
          ssh_username = "vagrant"
        }
        source "vmware-iso" "vmw" {
          ssh_username      = "vagrant"
          disk_adapter_type = "lsilogic"
        }
        build { sources = ["source.virtualbox-iso.vbox", "source.vmware-iso.vmw"] }
        """
    imported = packer({"two.pkr.hcl": template}, "two.pkr.hcl")
    assert imported.code == 0, imported.err
    recipe = valid(imported)
    kinds = {b.source.name: [e.kind for e in b.exports] for b in recipe.builds}
    assert kinds == {"vbox": ["ovf", "vmdk"], "vmw": ["ovf", "vmdk"]}     # exports apply to every image source
    assert "note: the exports apply to every image source" in imported.comments
    vmdk = next(e for e in recipe.builds[1].exports if e.kind == "vmdk")
    assert vmdk.config.adapter_type == "lsilogic"


VAGRANT_HCL = """\
source "vagrant" "box" {
  source_path  = "debian/bookworm64"
  provider     = "libvirt"
  communicator = "ssh"
}
build { sources = ["source.vagrant.box"] }
"""
VAGRANT_JSON = """\
{"builders": [{"type": "vagrant", "name": "box", "source_path": "debian/bookworm64", "provider": "libvirt",
               "communicator": "ssh"}]}
"""


@pytest.mark.parametrize("name, text", [("box.pkr.hcl", VAGRANT_HCL), ("box.json", VAGRANT_JSON)])
def test_the_vagrant_builder_is_the_vagrant_export(packer, name, text):
    imported = packer({name: text}, name)
    assert imported.code == 3                                       # a box cannot be the base
    assert ": source_path: recipe cannot boot a Vagrant box as its base" in imported.err
    assert "note: Packer's vagrant builder: recipe builds the machine with QEMU" in imported.comments
    (build,) = valid(imported).builds
    assert [e.kind for e in build.exports] == ["qcow2", "vagrant"]
    assert build.exports[1].config.provider == ("libvirt",)


def test_the_null_builder_is_the_ssh_platform(packer):
    template = '{"builders": [{"type": "null", "ssh_host": "10.0.0.5", "ssh_username": "admin", "ssh_port": 2222}]}'
    imported = packer({"host.json": template}, "host.json")
    assert imported.code == 0, imported.err
    (build,) = valid(imported).builds
    assert build.source.platform == "ssh" and build.source.name == "null"
    assert (build.source.ssh.host, build.source.ssh.user, build.source.ssh.port) == ("10.0.0.5", "admin", 2222)


def test_winrm_and_an_unknown_builder_are_left_with_their_lines(packer):
    template = """\
        source "qemu" "win" {
          communicator   = "winrm"
          winrm_username = "Administrator"
        }
        source "docker" "ctr" {
          image = "debian:12"
        }
        build { sources = ["source.qemu.win", "source.docker.ctr"] }
        """
    imported = packer({"win.pkr.hcl": template}, "win.pkr.hcl")
    assert imported.code == 3
    assert "win.pkr.hcl:2:3: communicator: recipe reaches guests over SSH" in imported.err
    assert "win.pkr.hcl:3:3: winrm_username:" in imported.err
    assert "win.pkr.hcl:5:1: builder docker.ctr: recipe has no docker platform" in imported.err
    assert [b.source.name for b in valid(imported).builds] == ["win"]


def test_amazon_user_data_file_is_read_when_the_recipe_is_rendered(packer, tmp_path):
    template = AMAZON_HCL.replace('  ssh_username  = "admin"', '  ssh_username  = "admin"\n'
                                  '  user_data_file = "${path.root}/cloud-init.yml"')
    imported = packer({"packer/aws.pkr.hcl": template, "packer/cloud-init.yml": "#cloud-config\nhostname: web\n"},
                      "packer/aws.pkr.hcl")
    assert imported.code == 0, imported.err
    (build,) = valid(imported).builds
    assert build.source.config.user_data == "#cloud-config\nhostname: web"     # the file lookup strips the end


def test_hcl2_json_syntax_files_of_a_folder(packer):
    """*.pkr.json files are HCL2 in JSON syntax: their strings are templates; a folder reads them all."""
    files = {
        "vmw/variables.pkr.json": """\
            {"variable": {"size": {"type": "string", "default": "20480"}, "name": {"default": "web"}},
             "locals": {"vm_name": "${var.name}-vmware"}}
            """,
        "vmw/build.pkr.json": """\
            {
              "source": {"vmware-iso": {"vmw": {"disk_size": "${var.size}", "memory": 2048,
                                                "vm_name": "${local.vm_name}", "format": "ova",
                                                "ssh_username": "vagrant", "vmx_data": {"svga.autodetect": "TRUE"}}}},
              "build": {"sources": ["source.vmware-iso.vmw"],
                        "provisioner": [{"shell": {"inline": ["echo ${var.name}"]}}]}
            }
            """,
    }
    imported = packer(files, "vmw")
    assert imported.code == 3
    lines = textwrap.dedent(files["vmw/build.pkr.json"]).splitlines()
    line = next(i for i, text in enumerate(lines, 1) if '"vmx_data"' in text)
    column = lines[line - 1].index('"vmx_data"') + 1
    assert f"vmw/build.pkr.json:{line}:{column}: vmx_data: recipe builds with QEMU" in imported.err
    (build,) = valid(imported).builds
    assert build.source.config.disk_size == "20480M"          # a plain number from a variable: megabytes
    assert [e.kind for e in build.exports] == ["qcow2", "ova"]
    assert build.exports[1].config.name == "web-vmware"
    assert imported.task("shell")["shell"] == "set -e\necho {{ name }}\n"

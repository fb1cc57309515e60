"""ISO builds as installer bases: a Debian preseed template, in JSON and in HCL2, imported by `recipe import` into
`base: {installer: ...}` (the exact YAML it writes), then checked by the real `recipe validate`; the other
forms of Packer's ISO options, and what stays a comment."""
from __future__ import annotations

import json
import textwrap

import pytest

from modules.platforms.qemu.base_spec import InstallerBase, PathBase, UrlBase
from modules.platforms.qemu.install_http import GUEST_HOST_ADDRESS, HTTP_PORT

from .conftest import valid

ISO = "https://cdimage.debian.org/cdimage/archive/12.5.0/amd64/iso-cd/debian-12.5.0-amd64-netinst.iso"
SHA256 = "013f5b44670d81280b5b1bc02455842b250df2f0c6763398feb69af1a805a14f"
PRESEED = "d-i passwd/username string packer\nd-i passwd/user-password password packer\n"

DEBIAN_JSON = """\
{
  "variables": {
    "iso_checksum": "%(sha)s",
    "ssh_password": "packer",
    "hostname": "debian12"
  },
  "builders": [{
    "type": "qemu",
    "name": "debian",
    "iso_url": "%(iso)s",
    "iso_checksum": "{{user `iso_checksum`}}",
    "iso_checksum_type": "sha256",
    "output_directory": "output-debian",
    "shutdown_command": "echo '{{user `ssh_password`}}' | sudo -S /sbin/shutdown -hP now",
    "disk_size": "8192",
    "format": "qcow2",
    "accelerator": "kvm",
    "headless": true,
    "http_directory": "http",
    "ssh_username": "packer",
    "ssh_password": "{{user `ssh_password`}}",
    "ssh_timeout": "30m",
    "vm_name": "debian-12",
    "boot_wait": "5s",
    "boot_command": [
      "<esc><wait>",
      "auto preseed/url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg ",
      "debian-installer=en_US.UTF-8 locale=en_US.UTF-8 keymap=us ",
      "netcfg/get_hostname={{user `hostname`}} netcfg/get_domain=local ",
      "<enter>"
    ]
  }]
}
""" % {"sha": SHA256, "iso": ISO}
DEBIAN_JSON_SOURCE = """\
  debian:
    platform: qemu
    base:
      installer:
        iso:
          url: %s
          checksum: sha256:{{ iso_checksum }}
        boot_wait: 5s
        boot_command:
          - <esc><wait>
          - 'auto preseed/url=http://{{ http_ip }}:{{ http_port }}/preseed.cfg '
          - 'debian-installer=en_US.UTF-8 locale=en_US.UTF-8 keymap=us '
          - 'netcfg/get_hostname={{ hostname }} netcfg/get_domain=local '
          - <enter>
        http:
          directory: ../http
        install_timeout: 30m
        size: 8192M
    ssh:
      user: packer
      password: '{{ ssh_password }}'
      connect_timeout: 1800
""" % ISO

DEBIAN_HCL = """\
variable "debian_version" {
  type    = string
  default = "12.5.0"
}
variable "ssh_password" {
  type      = string
  default   = "packer"
  sensitive = true
}
locals {
  iso_base = "https://cdimage.debian.org/cdimage/archive/${var.debian_version}/amd64/iso-cd"
}

source "qemu" "debian" {
  iso_url          = "${local.iso_base}/debian-${var.debian_version}-amd64-netinst.iso"
  iso_checksum     = "file:${local.iso_base}/SHA256SUMS"
  disk_size        = "8G"
  memory           = 2048
  format           = "qcow2"
  accelerator      = "kvm"
  headless         = true
  http_directory   = "http"
  ssh_username     = "packer"
  ssh_password     = var.ssh_password
  ssh_timeout      = "1h"
  shutdown_command = "echo '${var.ssh_password}' | sudo -S /sbin/shutdown -hP now"
  boot_wait        = "5s"
  boot_command = [
    "<esc><wait>",
    "auto preseed/url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg ",
    "netcfg/get_hostname={{ .Name }} <enter>"
  ]
}

build {
  sources = ["source.qemu.debian"]
}
"""
DEBIAN_HCL_SOURCE = """\
  debian:
    platform: qemu
    base:
      installer:
        iso:
          url: '{{ iso_base }}/debian-{{ debian_version }}-amd64-netinst.iso'
          checksum: file:{{ iso_base }}/SHA256SUMS
        boot_wait: 5s
        boot_command:
          - <esc><wait>
          - 'auto preseed/url=http://{{ http_ip }}:{{ http_port }}/preseed.cfg '
          - netcfg/get_hostname={{ build.name }} <enter>
        http:
          directory: ../http
        install_timeout: 1h
        size: 8G
    memory: 2048
    ssh:
      user: packer
      password: '{{ ssh_password }}'
      connect_timeout: 3600
"""
URL_LINE = f"auto preseed/url=http://{GUEST_HOST_ADDRESS}:{HTTP_PORT}/preseed.cfg "


def source_text(text: str, name: str) -> str:
    """The recipe's lines of one source, its comments left out: from `  name:` to the next top-level key."""
    lines = text.splitlines()
    start = lines.index(f"  {name}:")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith((" ", "#"))), len(lines))
    return "\n".join(line for line in lines[start:end] if not line.lstrip().startswith("#")) + "\n"


def test_a_json_debian_preseed_build_is_an_installer_base(packer, tmp_path):
    imported = packer({"debian.json": DEBIAN_JSON, "http/preseed.cfg": PRESEED}, "debian.json")
    assert imported.code == 0, imported.err
    assert imported.err == "wrote recipes/web.yml: valid\n"
    assert source_text(imported.text, "debian") == DEBIAN_JSON_SOURCE
    assert "note: the answer file (preseed, kickstart, autoinstall) must set up the ssh user packer with " \
           "ssh.password" in imported.comments
    assert "note: ssh_timeout: Packer's bounded the install too" in imported.comments
    assert "note: shutdown_command: recipe shuts the guest down itself" in imported.comments

    (build,) = valid(imported).builds
    base = build.source.config.base
    assert isinstance(base, InstallerBase)
    assert base.iso == UrlBase(url=ISO, checksum=f"sha256:{SHA256}")
    assert base.boot_command[1] == URL_LINE           # typed with the port the installer's HTTP server gets
    assert base.boot_command[3] == "netcfg/get_hostname=debian12 netcfg/get_domain=local "
    assert base.http_directory.resolve() == tmp_path / "http"
    assert (base.boot_wait, base.install_timeout, base.size) == (5.0, 1800.0, "8192M")
    assert build.source.config.disk_size is None        # the installed disk is the base's; nothing grows it
    assert (build.source.ssh.user, build.source.ssh.password) == ("packer", "packer")


def test_an_hcl2_debian_preseed_build_is_an_installer_base(packer, tmp_path, monkeypatch):
    monkeypatch.setenv("RECIPE_VAR_ssh_password", "packer")      # a secret: given to the recipe, never written
    imported = packer({"debian.pkr.hcl": DEBIAN_HCL, "http/preseed.cfg": PRESEED}, "debian.pkr.hcl")
    assert imported.code == 0, imported.err
    assert source_text(imported.text, "debian") == DEBIAN_HCL_SOURCE
    assert imported.document["secrets"] == ["ssh_password"]
    assert "note: boot_command: {{ .Name }} is recipe's build.name (<recipe>-<source>), not Packer's vm_name" \
        in imported.comments

    (build,) = valid(imported).builds
    base = build.source.config.base
    assert base.iso == UrlBase(url=ISO, checksum=f"file:{ISO.rsplit('/', 1)[0]}/SHA256SUMS")
    assert base.boot_command == ("<esc><wait>", URL_LINE, "netcfg/get_hostname=debian-debian <enter>")
    assert base.http_directory.resolve() == tmp_path / "http"
    assert (base.install_timeout, base.size, build.source.config.memory) == (3600.0, "8G", 2048)
    assert build.source.ssh.password == "packer"


def test_without_the_secret_the_recipe_waits_for_it(packer):
    imported = packer({"debian.pkr.hcl": DEBIAN_HCL}, "debian.pkr.hcl")
    assert imported.code == 3                             # it does not validate until the password is given
    assert "undefined variable 'ssh_password'" in imported.err
    assert "packer" not in imported.document["sources"]["debian"]["ssh"]["password"]


def _json(**options: object) -> str:
    builder = {"type": "qemu", "name": "vm", "iso_url": ISO, "ssh_username": "packer", "ssh_password": "packer",
               "boot_command": ["<enter>"], **options}
    return json.dumps({"builders": [builder]}, indent=2)


@pytest.mark.parametrize("options, checksum", [
    ({"iso_checksum": f"sha256:{SHA256}"}, f"sha256:{SHA256}"),
    ({"iso_checksum": SHA256}, f"sha256:{SHA256}"),                        # Packer infers it from the length
    ({"iso_checksum": SHA256 * 2, "iso_checksum_type": "sha512"}, f"sha512:{SHA256 * 2}"),
    ({"iso_checksum": "file:https://example.com/SHA256SUMS"}, "file:https://example.com/SHA256SUMS"),
    ({"iso_checksum_url": "https://example.com/SHA256SUMS", "iso_checksum_type": "sha256"},
     "file:https://example.com/SHA256SUMS"),
], ids=["prefixed", "bare", "typed", "file", "checksum-url"])
def test_packers_checksum_forms(packer, options, checksum):
    imported = packer({"vm.json": _json(**options)}, "vm.json")
    assert imported.code == 0, imported.err
    assert imported.document["sources"]["vm"]["base"]["installer"]["iso"] == {"url": ISO, "checksum": checksum}
    valid(imported)


@pytest.mark.parametrize("value, words", [("none", "(Packer's none skipped the check"),
                                          ("md5:0123456789abcdef0123456789abcdef", "give sha256:<hex>")])
def test_a_checksum_recipe_cannot_verify_is_left_and_the_recipe_asks_for_one(packer, value, words):
    imported = packer({"vm.json": _json(iso_checksum=value)}, "vm.json")
    assert imported.code == 3
    assert ": iso_checksum: recipe verifies every ISO it downloads, so it needs a checksum" in imported.err
    assert words in imported.err
    assert "an iso url needs a checksum" in imported.err                   # validate says so at the base
    assert imported.document["sources"]["vm"]["base"]["installer"]["iso"] == {"url": ISO}


def test_a_local_iso_is_a_path_named_from_the_recipe(packer, tmp_path):
    (tmp_path / "isos").mkdir()
    (tmp_path / "isos" / "debian.iso").write_bytes(b"")
    template = """\
        source "qemu" "vm" {
          iso_url      = "isos/debian.iso"
          iso_checksum = "none"
          ssh_username = "packer"
          ssh_password = "packer"
        }
        build { sources = ["source.qemu.vm"] }
        """
    imported = packer({"vm.pkr.hcl": template}, "vm.pkr.hcl")
    assert imported.code == 0, imported.err
    installer = imported.document["sources"]["vm"]["base"]["installer"]
    assert installer == {"iso": {"path": "../isos/debian.iso"}, "size": "40960M"}    # Packer's default disk
    assert "note: disk_size: not set, so Packer's qemu builder installed onto its default 40960M" in imported.comments
    (build,) = valid(imported).builds
    base = build.source.config.base
    assert isinstance(base.iso, PathBase) and base.iso.path.resolve() == tmp_path / "isos" / "debian.iso"


def test_what_an_installer_has_no_equivalent_for_stays_a_comment(packer, tmp_path):
    template = """\
        source "qemu" "vm" {
          iso_url           = "%s"
          iso_checksum      = "sha256:%s"
          ssh_username      = "packer"
          ssh_password      = "packer"
          boot_wait         = "-1s"
          boot_key_interval = "10ms"
          http_port_min     = 8100
          http_port_max     = 8200
          http_content      = {
            "/preseed.cfg" = templatefile("preseed.pkrtpl", { user = "packer" })
          }
          floppy_files      = ["ks.cfg"]
          cd_files          = ["./cidata/*"]
          iso_interface     = "sata"
          boot_command      = ["<leftCtrlOn>c<leftCtrlOff><wait5>linux /install/vmlinuz<enter>"]
        }
        build { sources = ["source.qemu.vm"] }
        """ % (ISO, SHA256)
    imported = packer({"vm.pkr.hcl": template, "preseed.pkrtpl": "d-i x string ${user}\n"}, "vm.pkr.hcl")
    assert imported.code == 3
    lines = [line.strip() for line in imported.err.splitlines()]
    assert lines[0] == "4 settings of the template not imported (kept as comments in recipes/web.yml):"
    assert lines[1].startswith("vm.pkr.hcl:10:3: http_content: Packer's templatefile() function has no recipe "
                               "equivalent; http.content takes each file's text: write the template in Jinja")
    assert lines[2] == "vm.pkr.hcl:13:3: floppy_files: recipe attaches no floppy: serve the files over http: " \
                       "instead (base.installer.http)"
    assert lines[3].startswith("vm.pkr.hcl:14:3: cd_files: recipe attaches no CD to the installer but its ISO")
    assert lines[4] == "vm.pkr.hcl:15:3: iso_interface: recipe attaches the ISO as QEMU's default CD-ROM drive"
    assert "note: http_port_min: recipe serves http_directory and http_content on a free port" in imported.comments
    installer = imported.document["sources"]["vm"]["base"]["installer"]
    assert (installer["boot_wait"], installer["boot_key_interval"]) == (0, "10ms")   # -1s: Packer waits not at all
    assert installer["boot_command"] == ["<leftCtrlOn>c<leftCtrlOff><wait5>linux /install/vmlinuz<enter>"]
    (build,) = valid(imported).builds
    assert build.source.config.base.boot_key_interval == 0.01


def test_http_content_is_the_installers(packer, tmp_path):
    template = """\
        source "qemu" "vm" {
          iso_url      = "%s"
          iso_checksum = "sha256:%s"
          ssh_username = "packer"
          ssh_password = "packer"
          disk_size    = 4096
          http_content = {
            "/preseed.cfg" = file("http/preseed.cfg")
            "/meta-data"   = ""
          }
        }
        build { sources = ["source.qemu.vm"] }
        """ % (ISO, SHA256)
    imported = packer({"vm.pkr.hcl": template, "http/preseed.cfg": PRESEED}, "vm.pkr.hcl")
    assert imported.code == 0, imported.err
    assert imported.document["sources"]["vm"]["base"]["installer"]["http"] == {
        "content": {"/preseed.cfg": "{{ lookup('file', '../http/preseed.cfg') }}", "/meta-data": ""}}
    (build,) = valid(imported).builds
    assert dict(build.source.config.base.http_content) == {"/preseed.cfg": PRESEED.rstrip(), "/meta-data": ""}
    assert build.source.config.base.size == "4096M"


def test_boot_command_fields_are_known_in_the_boot_command_alone(packer):
    """{{ .HTTPIP }} is Packer's only while it types a boot_command: anywhere else it stays a comment."""
    template = DEBIAN_HCL.replace('  sources = ["source.qemu.debian"]', '  sources = ["source.qemu.debian"]\n'
                                  '  provisioner "shell" { inline = ["echo {{ .HTTPIP }}"] }')
    imported = packer({"debian.pkr.hcl": template}, "debian.pkr.hcl")
    assert imported.code == 3
    assert "inline: {{ .HTTPIP }} is filled in by Packer while it builds" in imported.err
    assert "{{ http_ip }}" in imported.document["sources"]["debian"]["base"]["installer"]["boot_command"][1]


VBOX_HCL = """\
source "virtualbox-iso" "vbox" {
  iso_url        = "%s"
  iso_checksum   = "sha256:%s"
  guest_os_type  = "Debian_64"
  disk_size      = 20000
  vm_name        = "web-appliance"
  format         = "ova"
  http_directory = "http"
  ssh_username   = "vagrant"
  ssh_password   = "vagrant"
  boot_command   = ["<esc><wait>auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg<enter>"]
}
build { sources = ["source.virtualbox-iso.vbox"] }
""" % (ISO, SHA256)


@pytest.mark.parametrize("kind, exports", [("virtualbox-iso", ["qcow2", "ova"]), ("vmware-iso", ["vmdk"])])
def test_virtualbox_and_vmware_installers_run_under_qemu(packer, tmp_path, kind, exports):
    template = VBOX_HCL.replace("virtualbox-iso", kind)
    if kind == "vmware-iso":
        template = template.replace('  format         = "ova"\n', "").replace("Debian_64", "debian12-64")
    imported = packer({"vbox.pkr.hcl": template}, "vbox.pkr.hcl")
    assert imported.code == 0, imported.err
    installer = imported.document["sources"]["vbox"]["base"]["installer"]
    assert installer == {
        "iso": {"url": ISO, "checksum": f"sha256:{SHA256}"},
        "boot_command": ["<esc><wait>auto url=http://{{ http_ip }}:{{ http_port }}/preseed.cfg<enter>"],
        "http": {"directory": "../http"}, "size": "20000M"}
    (build,) = valid(imported).builds
    assert build.source.config.base.boot_command == (
        f"<esc><wait>auto url=http://{GUEST_HOST_ADDRESS}:{HTTP_PORT}/preseed.cfg<enter>",)
    assert [e.kind for e in build.exports] == exports
    assert build.exports[-1].config.name == "web-appliance"


def test_a_source_blocks_override_of_the_boot_command_is_read_the_same(packer):
    """A build's `source` block may set the boot_command: its {{ .HTTPIP }} is the boot_command's too."""
    template = DEBIAN_HCL.replace('build {\n  sources = ["source.qemu.debian"]\n}', textwrap.dedent("""\
        build {
          source "source.qemu.debian" {
            boot_command = ["<esc>auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/other.cfg<enter>"]
          }
        }"""))
    imported = packer({"debian.pkr.hcl": template}, "debian.pkr.hcl")
    installer = imported.document["sources"]["debian"]["base"]["installer"]
    assert installer["boot_command"] == ["<esc>auto url=http://{{ http_ip }}:{{ http_port }}/other.cfg<enter>"]

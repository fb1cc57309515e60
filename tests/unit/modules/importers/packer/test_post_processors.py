"""Post-processors as exports, in HCL2 and JSON templates: imported, validated by the real `recipe validate`, and
the compiled builds carry the exports (and their options) in order."""
from __future__ import annotations

import pytest

from .conftest import valid

SOURCE_HCL = """\
source "qemu" "vm" {
  iso_url      = "/srv/images/base.qcow2"
  disk_image   = true
  ssh_username = "debian"
}
"""
POST_HCL = SOURCE_HCL + """\
build {
  sources = ["source.qemu.vm"]
  post-processors {
    post-processor "vagrant" {
      compression_level    = 9
      keep_input_artifact  = false
      output               = "boxes/{{.BuildName}}.box"
    }
    post-processor "checksum" {
      checksum_types = ["sha256"]
      output         = "SUMS"
    }
  }
  post-processor "manifest" {
    output     = "manifest.json"
    strip_path = true
  }
}
"""
POST_JSON = """\
{
  "builders": [{"type": "qemu", "name": "vm", "iso_url": "/srv/images/base.qcow2", "disk_image": true,
                "ssh_username": "debian"}],
  "post-processors": [
    [{"type": "vagrant", "compression_level": 9, "keep_input_artifact": false, "output": "boxes/{{.BuildName}}.box"},
     {"type": "checksum", "checksum_types": ["sha256"], "output": "SUMS"}],
    {"type": "manifest", "output": "manifest.json", "strip_path": true}
  ]
}
"""


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", POST_HCL), ("web.json", POST_JSON)])
def test_vagrant_checksum_and_manifest_in_order(packer, name, text):
    imported = packer({name: text}, name)
    assert imported.code == 0, imported.err
    (build,) = valid(imported).builds
    assert [e.kind for e in build.exports] == ["qcow2", "vagrant", "checksum", "manifest"]
    vagrant, checksum, manifest = build.exports[1:]
    assert vagrant.config.provider == ("libvirt",)          # a qemu source makes libvirt boxes
    assert (vagrant.config.compress, vagrant.config.compression_level, vagrant.keep_input) == (True, 9, False)
    assert checksum.config.name == "SUMS" and manifest.config.path == "manifest.json"
    assert "note: Packer ran 2 post-processor chains" in imported.comments


COMPRESS_HCL = SOURCE_HCL + """\
build {
  sources = ["source.qemu.vm"]
  post-processor "compress" {
    output = "web.tar.gz"
  }
}
"""
COMPRESS_JSON = """\
{"builders": [{"type": "qemu", "name": "vm", "iso_url": "/srv/images/base.qcow2", "disk_image": true,
               "ssh_username": "debian"}],
 "post-processors": [{"type": "compress", "output": "web.tar.gz"}]}
"""


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", COMPRESS_HCL), ("web.json", COMPRESS_JSON)])
def test_compress_is_a_compressed_qcow2(packer, name, text):
    imported = packer({name: text}, name)
    assert imported.code == 0, imported.err
    (build,) = valid(imported).builds
    (export,) = build.exports
    assert export.kind == "qcow2" and export.config.compress is True
    assert "note: Packer's compress archived the artifact" in imported.comments


IMPORT_HCL = SOURCE_HCL + """\
build {
  sources = ["source.qemu.vm"]
  post-processor "amazon-import" {
    region          = "eu-west-1"
    s3_bucket_name  = "my-imports"
    ami_name        = "web-{{timestamp}}"
    ami_description = "imported"
    tags            = { Name = "web" }
    boot_mode       = "uefi"
    ami_users       = ["123456789012"]
  }
}
"""
IMPORT_JSON = """\
{"builders": [{"type": "qemu", "name": "vm", "iso_url": "/srv/images/base.qcow2", "disk_image": true,
               "ssh_username": "debian"}],
 "post-processors": [{"type": "amazon-import", "region": "eu-west-1", "s3_bucket_name": "my-imports",
                      "ami_name": "web-{{timestamp}}", "ami_description": "imported", "tags": {"Name": "web"},
                      "boot_mode": "uefi", "ami_users": ["123456789012"]}]}
"""


@pytest.mark.parametrize("name, text, line", [("web.pkr.hcl", IMPORT_HCL, 15), ("web.json", IMPORT_JSON, 5)])
def test_amazon_import_is_the_ami_export(packer, name, text, line):
    imported = packer({name: text}, name)
    assert imported.code == 3
    assert f"{name}:{line}:" in imported.err and "ami_users: the ami export shares nothing" in imported.err
    (build,) = valid(imported).builds
    ami = build.exports[-1]
    assert ami.kind == "ami"
    config = ami.config
    assert (config.region, config.upload, config.bucket) == ("eu-west-1", "s3", "my-imports")
    assert config.name.startswith("web-") and config.description == "imported"
    assert config.tags == {"Name": "web"} and config.boot_mode == "uefi"


def test_a_post_processor_recipe_has_not_is_a_leftover(packer):
    text = SOURCE_HCL + """\
build {
  sources = ["source.qemu.vm"]
  post-processor "docker-tag" {
    repository = "web"
  }
  post-processor "checksum" {
    checksum_types = ["md5", "sha256"]
  }
}
"""
    imported = packer({"web.pkr.hcl": text}, "web.pkr.hcl")
    assert imported.code == 3
    assert "web.pkr.hcl:8:3: post-processor 'docker-tag': recipe has no docker-tag export" in imported.err
    assert "web.pkr.hcl:12:5: checksum_types: recipe writes SHA-256 sums only (not md5)" in imported.err
    (build,) = valid(imported).builds
    assert [e.kind for e in build.exports] == ["qcow2", "checksum"]

"""Packer templates imported by `recipe import` build for real.

The first is the usual cloud-image one: qemu with disk_image = true on the bootstrap base, a shell inline
provisioner and file provisioners (a file, and a folder's contents), then a shell step that checks in the
guest that everything arrived. The second is an ISO build (iso_url, a boot_command typed with
{{ .HTTPIP }}:{{ .HTTPPort }}, http_directory, ssh_password): imported and validated; test_installer.py
installs. Both commands are the installed `recipe`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


RECIPE = str(Path(sys.executable).parent / "recipe")

TEMPLATE = """\
variable "greeting" {{
  type    = string
  default = "imported from packer"
}}

source "qemu" "vm" {{
  iso_url      = "{base}"
  iso_checksum = "none"
  disk_image   = true
  cpus         = 1
  memory       = 1024
  headless     = true
  ssh_username = "debian"
  ssh_timeout  = "15m"
}}

build {{
  sources = ["source.qemu.vm"]

  provisioner "shell" {{
    inline           = ["echo \\"${{var.greeting}} $GREETING_SUFFIX\\" > $${{HOME}}/inline.txt"]
    environment_vars = ["GREETING_SUFFIX=(inline)"]
  }}
  provisioner "file" {{
    source      = "files/motd"
    destination = "/home/debian/motd"
  }}
  provisioner "file" {{
    source      = "${{path.root}}/site/"
    destination = "/home/debian"
  }}
  provisioner "shell" {{
    inline = [
      "test \\"$(cat /home/debian/inline.txt)\\" = \\"imported from packer (inline)\\"",
      "test \\"$(cat /home/debian/motd)\\" = \\"hello from the file provisioner\\"",
      "test \\"$(cat /home/debian/index.html)\\" = \\"<p>the folder's contents</p>\\"",
    ]
  }}
}}
"""


def events_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# one TCG boot (40-130 s to SSH here), four tasks, and the qcow2 every image build keeps
@pytest.mark.timeout(1200)
def test_an_imported_qemu_template_builds(bootstrap_base, tmp_path):
    packer = tmp_path / "packer"
    (packer / "files").mkdir(parents=True)
    (packer / "site").mkdir()
    (packer / "web.pkr.hcl").write_text(TEMPLATE.format(base=bootstrap_base.path))
    (packer / "files" / "motd").write_text("hello from the file provisioner\n")
    (packer / "site" / "index.html").write_text("<p>the folder's contents</p>\n")

    # imported as Packer is run: from the template's folder, the recipe written elsewhere
    imported = subprocess.run([RECIPE, "import", "web.pkr.hcl", "-o", "../recipes/web.yml"], cwd=packer,
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    recipe = tmp_path / "recipes" / "web.yml"
    assert "src: ../packer/files/motd" in recipe.read_text()

    events = tmp_path / "events.jsonl"
    output = tmp_path / "output"
    result = subprocess.run([RECIPE, "run", str(recipe), "--output-dir", str(output), "--json", str(events)],
                            capture_output=True, text=True, timeout=1100)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    ended = [e for e in events_of(events) if e["event"] == "task.end"]
    assert [e["status"] for e in ended] == ["changed"] * 4, ended      # the last one checked the files in the guest
    assert ended[-1]["task"].startswith("shell: test ")
    assert (output / "web-vm" / "web-vm.qcow2").stat().st_size > 0


ISO_TEMPLATE = """\
variable "password" {{
  type      = string
  sensitive = true
}}

source "qemu" "installed" {{
  iso_url          = "{iso_url}"
  iso_checksum     = "sha256:{iso_sum}"
  memory           = 1024
  disk_size        = 4096
  headless         = true
  http_directory   = "http"
  boot_wait        = "15s"
  boot_command     = ["install url=http://{{{{ .HTTPIP }}}}:{{{{ .HTTPPort }}}}/answers.cfg<enter>"]
  ssh_username     = "packer"
  ssh_password     = var.password
  ssh_timeout      = "40m"
  shutdown_command = "echo '${{var.password}}' | sudo -S poweroff"
}}

build {{
  sources = ["source.qemu.installed"]

  provisioner "shell" {{
    inline = ["echo 'installed from an ISO' | sudo tee /etc/imported-by"]
  }}
}}
"""
# the test installer's answer file, served from http_directory; it reboots when done, as Debian's installer
# does at the end of a preseeded install (recipe's QEMU runs with -no-reboot, so that ends the install)
ANSWERS = """\
INSTALL_HOSTNAME=imported
INSTALL_USER=packer
INSTALL_PASSWORD='{password}'
INSTALL_ROOTFS=rootfs.tar.gz
INSTALL_AFTER=reboot
"""
PASSWORD = "imported-horse-battery"


def test_an_imported_iso_template_is_a_valid_installer_recipe(tmp_path):
    """The import, and `recipe validate` of what it wrote. The install itself is test_installer.py's: one
    install per test run (an imported template installs the same way a written recipe does)."""
    packer = tmp_path / "packer"
    (packer / "http").mkdir(parents=True)
    (packer / "http" / "answers.cfg").write_text(ANSWERS.format(password=PASSWORD))
    (packer / "installed.pkr.hcl").write_text(ISO_TEMPLATE.format(iso_url="https://example.org/installer.iso",
                                                                  iso_sum="ab" * 32))
    env = {**os.environ, "RECIPE_VAR_password": PASSWORD}
    imported = subprocess.run([RECIPE, "import", "installed.pkr.hcl", "-o", "../recipes/installed.yml"],
                              cwd=packer, capture_output=True, text=True, env=env, timeout=120)
    assert imported.returncode == 0, imported.stderr
    recipe = tmp_path / "recipes" / "installed.yml"
    text = recipe.read_text()
    assert "directory: ../packer/http" in text
    assert "install url=http://{{ http_ip }}:{{ http_port }}/answers.cfg<enter>" in text
    assert PASSWORD not in text + imported.stdout + imported.stderr
    validated = subprocess.run([RECIPE, "validate", str(recipe)], capture_output=True, text=True, env=env,
                               timeout=120)
    assert validated.returncode == 0, validated.stdout + validated.stderr

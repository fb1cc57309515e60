"""A Packer template imported by `recipe import` builds for real: one TCG boot of the bootstrap base.

The template is the usual cloud-image one: qemu with disk_image = true on the base, a shell inline
provisioner and file provisioners (a file, and a folder's contents), then a shell step that checks in the
guest that everything arrived. Both commands are the installed `recipe`.
"""
from __future__ import annotations

import json
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

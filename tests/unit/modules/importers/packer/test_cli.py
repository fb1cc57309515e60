"""`recipe import` as a command: exit 0 when everything mapped, 3 when something is left as a comment, 2 when
the template is invalid (one line per problem with file:line:column and a hint, no traceback)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import valid

RECIPE = str(Path(sys.executable).parent / "recipe")
GOOD = """\
source "qemu" "vm" {
  iso_url      = "/srv/images/base.qcow2"
  disk_image   = true
  ssh_username = "debian"
}
build {
  sources = ["source.qemu.vm"]
  provisioner "shell" { inline = ["echo hello"] }
}
"""

# (id, files, template, expected "file:line:col", words of the message)
INVALID = [
    ("hcl-syntax", {"t.pkr.hcl": 'source "qemu" "a" {\n  cpus = \n}\n'}, "t.pkr.hcl", "t.pkr.hcl:2:10",
     "HCL2 syntax error: unexpected end of line"),
    ("hcl-unclosed-block", {"t.pkr.hcl": 'source "qemu" "a" {\n  cpus = 1\n'}, "t.pkr.hcl", "t.pkr.hcl:3:",
     "HCL2 syntax error"),
    ("json-syntax", {"t.json": '{\n  "builders": [\n    {"type": "qemu",}\n  ]\n}\n'}, "t.json", "t.json:3:21",
     "JSON syntax error"),
    ("undeclared-var", {"t.pkr.hcl": GOOD.replace('"debian"', "var.user")}, "t.pkr.hcl", "t.pkr.hcl:4:3",
     "var.user: no variable 'user' is declared"),
    ("undeclared-local", {"t.pkr.hcl": GOOD.replace('"debian"', "local.user")}, "t.pkr.hcl", "t.pkr.hcl:4:3",
     "local.user: no local 'user' is declared"),
    ("unknown-source", {"t.pkr.hcl": GOOD.replace("source.qemu.vm", "source.qemu.web")}, "t.pkr.hcl",
     "t.pkr.hcl:7:3", "the build names 'source.qemu.web', which no source block defines"),
    ("twice-set", {"t.pkr.hcl": GOOD.replace("  disk_image", "  memory = 1\n  memory = 2\n  disk_image")},
     "t.pkr.hcl", "t.pkr.hcl:4:3", "memory is set twice"),
    ("unknown-block", {"t.pkr.hcl": GOOD + 'builder "qemu" {}\n'}, "t.pkr.hcl", "t.pkr.hcl:10:1",
     "unknown block type 'builder'"),
    ("no-build", {"t.pkr.hcl": GOOD.split("build")[0]}, "t.pkr.hcl", "t.pkr.hcl", "no build block"),
    ("json-user-undeclared", {"t.json": '{"builders": [{"type": "qemu", "ssh_username": "{{user `u`}}"}]}'},
     "t.json", "t.json:1:32", "{{user `u`}}: no variable 'u' is declared"),
    ("json-no-builders", {"t.json": '{"builders": [], "variables": {}}'}, "t.json", "t.json:1:2",
     "builders must be a list of at least one builder"),
    ("json-unknown-key", {"t.json": '{"builders": [{"type": "qemu"}],\n "provisoners": []}'}, "t.json",
     "t.json:2:2", "unknown top-level key 'provisoners'"),
    ("var-file-unknown-variable", {"t.pkr.hcl": GOOD, "x.pkrvars.hcl": 'cpus = 2\n'}, "t.pkr.hcl",
     "x.pkrvars.hcl:1:1", "'cpus' is not a variable of the template"),
    ("missing-template", {}, "nowhere.pkr.hcl", "nowhere.pkr.hcl", "no such file or folder"),
    ("empty-folder", {"empty/readme.txt": "nothing"}, "empty", "empty", "not a template any importer recognizes"),
]


@pytest.mark.parametrize("case, files, template, where, words", INVALID, ids=[c[0] for c in INVALID])
def test_an_invalid_template_exits_2_and_names_the_place(packer, case, files, template, where, words):
    options = ("-var-file", "x.pkrvars.hcl") if "x.pkrvars.hcl" in files else ()
    imported = packer(files, template, *options)
    assert imported.code == 2, imported.err
    assert imported.err.startswith(("error: the template is invalid", "error: cannot import")), imported.err
    problem = imported.err.splitlines()[1].strip()
    assert problem.startswith(where) and words in problem, problem
    assert "hint:" in problem and "Traceback" not in imported.err
    assert not imported.path.exists()


def test_everything_mapped_exits_0_and_the_recipe_validates(packer):
    imported = packer({"web.pkr.hcl": GOOD}, "web.pkr.hcl")
    assert imported.code == 0
    assert imported.err == "wrote recipes/web.yml: valid\n"
    assert "not imported" not in imported.comments
    valid(imported)


def test_leftovers_exit_3_each_listed_with_its_place_and_kept_in_the_recipe(packer):
    text = GOOD.replace('  ssh_username = "debian"', '  ssh_username = "debian"\n  boot_wait = "5s"\n'
                        '  floppy_files = ["ks.cfg"]')
    imported = packer({"web.pkr.hcl": text}, "web.pkr.hcl")
    assert imported.code == 3
    lines = imported.err.splitlines()
    assert lines[0] == "2 settings of the template not imported (kept as comments in recipes/web.yml):"
    assert lines[1].startswith("  web.pkr.hcl:5:3: boot_wait: no installer runs in this build")
    assert lines[2].startswith("  web.pkr.hcl:6:3: floppy_files:")
    assert lines[3] == "wrote recipes/web.yml: valid"
    assert '\n  #   floppy_files = ["ks.cfg"]\n' in imported.text         # the setting itself, under its comment
    valid(imported)


def test_the_command_itself_writes_to_stdout_without_o(tmp_path):
    (tmp_path / "web.pkr.hcl").write_text(GOOD)
    result = subprocess.run([RECIPE, "import", "web.pkr.hcl"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Imported by `recipe import` from the Packer template web.pkr.hcl")
    assert "platform: qemu" in result.stdout and result.stderr == ""
    assert list(tmp_path.iterdir()) == [tmp_path / "web.pkr.hcl"]        # the scratch copy validated is gone
    (tmp_path / "web.yml").write_text(result.stdout)
    check = subprocess.run([RECIPE, "validate", "web.yml"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_command_itself_exits_2_without_a_traceback(tmp_path):
    (tmp_path / "bad.pkr.hcl").write_text('source "qemu" "a" {\n  cpus = [1,\n}\n')
    result = subprocess.run([RECIPE, "import", "bad.pkr.hcl", "-o", "bad.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: the template is invalid (1 problem):\n  bad.pkr.hcl:3:1: HCL2 syntax")
    assert "Traceback" not in result.stderr and not (tmp_path / "bad.yml").exists()


def test_paths_lead_to_the_same_files_from_the_recipe_folder(packer, tmp_path):
    """scripts/setup.sh is not in the directory the import runs in (where Packer would look): it is the one
    beside the template, named from where the recipe is written."""
    text = GOOD.replace('inline = ["echo hello"]', 'script = "scripts/setup.sh"')
    files = {"packer/web.pkr.hcl": text, "packer/scripts/setup.sh": "#!/bin/sh\ntrue\n"}
    imported = packer(files, "packer/web.pkr.hcl", output="deploy/web.yml")
    assert imported.code == 0, imported.err
    assert imported.task("script")["script"] == "../packer/scripts/setup.sh"
    assert (imported.path.parent / "../packer/scripts/setup.sh").resolve() == tmp_path / "packer/scripts/setup.sh"
    assert "not found" not in imported.validate()[1]


def test_a_byte_order_mark_is_read_past_and_other_encodings_are_named(packer, tmp_path):
    (tmp_path / "bom.pkr.hcl").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert packer({}, "bom.pkr.hcl").code == 0
    (tmp_path / "latin.pkr.hcl").write_bytes(GOOD.replace("debian", "d\xe9bian").encode("latin-1"))
    imported = packer({}, "latin.pkr.hcl")
    assert imported.code == 2
    assert f"latin.pkr.hcl: not UTF-8 text (byte {GOOD.index('debian') + 1})" in imported.err
    assert "Traceback" not in imported.err

"""`base: {installer: ...}`: its schema, the {{ http_ip }}/{{ http_port }} rendering, parsing, and the key of an
installed base (what reinstalls, and what does not)."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import RecipeError
from engine.recipe.compile import compile_recipe
from engine.recipe.schema import strict, validate
from modules.platforms.qemu.base import BASE_SCHEMA, parse_base
from modules.platforms.qemu.base_spec import InstallerBase, Netboot, PathBase, UrlBase
from modules.platforms.qemu.install_http import HTTP_PORT, with_port
from modules.platforms.qemu.installer import InstallVm, installed_key

SHA = "sha256:" + "ab" * 32
SOURCE = strict({"base": BASE_SCHEMA}, what="option")


def problems(installer):
    _, found = validate(SOURCE, {"base": {"installer": installer}})
    return [(p.path, p.message) for p in found]


def test_an_iso_installer_with_everything(tmp_path):
    value, found = validate(SOURCE, {"base": {"installer": {
        "iso": {"url": "https://example.org/d.iso", "checksum": SHA}, "boot_wait": "1m30s",
        "boot_key_interval": "10ms", "boot_command": "<esc>auto<enter>", "install_timeout": 600,
        "http": {"directory": "http", "content": {"preseed.cfg": "x"}}, "size": "6G"}}})
    assert found == []
    base = parse_base(value["base"], tmp_path)
    assert isinstance(base, InstallerBase) and base.iso == UrlBase("https://example.org/d.iso", SHA)
    assert (base.boot_wait, base.boot_key_interval, base.install_timeout) == (90.0, 0.01, 600.0)
    assert base.boot_command == ("<esc>auto<enter>",)
    assert base.http_directory == tmp_path / "http" and base.http_content == (("/preseed.cfg", "x"),)
    assert base.size_bytes == 6 << 30


def test_kernel_and_netboot_installers(tmp_path):
    kernel = parse_base({"installer": {"kernel": "linux", "initrd": "/srv/initrd.gz", "append": "auto"}}, tmp_path)
    assert (kernel.kernel, kernel.initrd, kernel.append) == (tmp_path / "linux", Path("/srv/initrd.gz"), "auto")
    netboot = parse_base({"installer": {"netboot": {"tftp_dir": "tftp"}}}, tmp_path)
    assert netboot.netboot == Netboot(tmp_path / "tftp", "pxelinux.0")
    assert parse_base({"installer": {"iso": {"path": "d.iso"}}}, tmp_path).iso == PathBase(tmp_path / "d.iso")


@pytest.mark.parametrize("installer, path, words", [
    ({}, "base.installer", "an iso, a kernel or netboot"),
    ({"iso": {"path": "a.iso"}, "kernel": "k"}, "base.installer.kernel", "not iso and kernel"),
    ({"iso": {"url": "https://example.org/d.iso"}}, "base.installer.iso.checksum", "an iso url needs a checksum"),
    ({"iso": {"path": "a.iso"}, "append": "x"}, "base.installer.append", "append goes with kernel"),
    ({"iso": {"path": "a.iso"}, "boot_command": ["<enter>é"]}, "base.installer.boot_command", "cannot be typed"),
    ({"iso": {"path": "a.iso"}, "boot_wait": "soon"}, "base.installer.boot_wait", "is not a duration"),
    ({"iso": {"path": "a.iso"}, "size": "100M"}, "base.installer.size", "too small"),
    ({"iso": {"path": "a.iso"}, "bootcommand": []}, "base.installer.bootcommand", "unknown option"),
])
def test_what_is_wrong_is_said_where(installer, path, words):
    found = problems(installer)
    assert any(where == path and words in message for where, message in found), found


def test_http_ip_and_port_render_into_the_source(tmp_path):
    recipe = tmp_path / "r.yml"
    recipe.write_text("""name: r
vars: {user: me}
sources:
  local:
    platform: qemu
    base:
      installer:
        iso: {path: d.iso}
        boot_command: ["<esc>auto url=http://{{ http_ip }}:{{ http_port }}/a.cfg<enter>"]
        http: {content: {/a.cfg: "user={{ user }} port={{ http_port }}"}}
    ssh: {user: me, password: pw}
tasks: []
""")
    base = compile_recipe(recipe).builds[0].source.config.base
    assert base.boot_command == (f"<esc>auto url=http://10.0.2.2:{HTTP_PORT}/a.cfg<enter>",)
    assert with_port(base.http_content[0][1], 8123) == "user=me port=8123"


def test_an_installer_needs_a_first_login(tmp_path):
    recipe = tmp_path / "r.yml"
    recipe.write_text("name: r\nsources:\n  local:\n    platform: qemu\n"
                      "    base: {installer: {iso: {path: d.iso}}}\n    ssh: {user: me}\ntasks: []\n")
    with pytest.raises(RecipeError) as raised:
        compile_recipe(recipe)
    found = raised.value.problems
    assert [(p.path, p.position.line) for p in found] == [("sources.local.ssh", 6)]
    assert "needs ssh.password" in found[0].message


def test_the_key_follows_what_the_installed_disk_depends_on(tmp_path):
    iso = tmp_path / "d.iso"
    iso.write_bytes(b"one")
    http = tmp_path / "http"
    http.mkdir()
    (http / "preseed.cfg").write_text("a")
    base = InstallerBase(iso=PathBase(iso), boot_command=(f"url=:{HTTP_PORT}",), http_directory=http)
    vm = InstallVm()
    key = installed_key(base, vm, "me")
    assert installed_key(base, InstallVm(cpus=4, memory=4096), "me") == key     # the VM's speed is not in it
    assert installed_key(base, InstallVm(firmware="uefi"), "me") != key
    assert installed_key(base, vm, "you") != key
    assert installed_key(InstallerBase(iso=PathBase(iso), http_directory=http), vm, "me") != key
    (http / "preseed.cfg").write_text("b")
    changed = installed_key(base, vm, "me")
    assert changed != key
    iso.write_bytes(b"two")
    assert installed_key(base, vm, "me") not in (key, changed)


def test_a_file_lookup_in_the_answer_files_reads_from_the_recipes_folder(tmp_path, monkeypatch):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "preseed.cfg").write_text("d-i passwd/username string {{ user }}\n")
    recipe = tmp_path / "recipes" / "r.yml"
    recipe.write_text("""name: r
vars: {user: me}
sources:
  local:
    platform: qemu
    base:
      installer:
        iso: {path: d.iso}
        http: {content: {/preseed.cfg: "{{ lookup('template', 'preseed.cfg') }}"}}
    ssh: {user: me, password: pw}
tasks: []
""")
    monkeypatch.chdir(tmp_path)                 # not the recipe's folder
    base = compile_recipe(recipe).builds[0].source.config.base
    assert base.http_content == (("/preseed.cfg", "d-i passwd/username string me\n"),)

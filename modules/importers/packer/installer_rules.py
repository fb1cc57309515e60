"""Packer's ISO builds as recipe's installer base: an OS installer run once into an empty disk.

A qemu, virtualbox-iso or vmware-iso builder with iso_url (and no disk_image)
boots an installer ISO, types its boot_command and serves its answer file over
HTTP: recipe's qemu platform does the same with `base: {installer: {...}}`.

    iso_url / iso_urls, iso_checksum     base.installer.iso: {url, checksum}, or {path} for a file here
    boot_command, boot_wait,             the same options (recipe reads Packer's key names and Go durations;
      boot_key_interval                    {{ .HTTPIP }} and {{ .HTTPPort }} are {{ http_ip }}, {{ http_port }})
    http_directory, http_content         base.installer.http: {directory, content}
    disk_size                            base.installer.size: the disk the system is installed onto
    ssh_timeout                          ssh.connect_timeout, and base.installer.install_timeout

Packer's install ends when SSH answers on the installed system, after the
installer rebooted it; recipe's when QEMU exits, and it runs QEMU with
-no-reboot, so the reboot that ends an install ends it there too. recipe then
logs in once with ssh.user and ssh.password, which the answer file must have
set up, as Packer needed it to.
"""
from __future__ import annotations

import re
from typing import Any

from modules.importers.packer.builder_rules import BASE_OPTIONS, boots_disk_image, image_options, packer_size
from modules.importers.packer.mapping import Assembly, Rule, apply, leftover, note, seconds, to, to_path
from modules.importers.packer.expressions import literal_code
from modules.importers.packer.template import Plugin, Value

INSTALLER = "base.installer"
# the order recipe's docs write an installer's options in: the recipe should read as if written by hand
ORDER = ("iso", "boot_wait", "boot_command", "boot_key_interval", "http", "install_timeout", "size")
# the disk Packer's builders install onto when disk_size is not given (megabytes); recipe's default is 8G
PACKER_DISK_SIZES = {"qemu": 40960, "virtualbox-iso": 40000, "vmware-iso": 40000}
# what recipe's installer options read as a duration as they are (boot_command.go_duration)
RECIPE_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+", re.IGNORECASE)
NAME_FIELD = re.compile(r"\{\{-?\s*\.Name\b")

HTTP_SERVER = ("recipe serves http_directory and http_content on a free port of its choosing, on 127.0.0.1 "
               "(the guest reaches it as {{ http_ip }}:{{ http_port }})")
FLOPPY_WHY = "recipe attaches no floppy: serve the files over http: instead (base.installer.http)"
CD_WHY = ("recipe attaches no CD to the installer but its ISO: serve the files over http: instead "
          "(base.installer.http), and point the boot_command at them")
TEMPLATEFILE_HINT = ("http.content takes each file's text: write the template in Jinja and give content: "
                     "{/preseed.cfg: \"{{ lookup('template', 'preseed.cfg.j2') }}\"}, or serve the file from "
                     "http_directory")


def installs(plugin: Plugin) -> bool:
    """An ISO build: iso_url names an installer to boot, not the disk (disk_image = true)."""
    settings = dict(plugin.settings)
    return ("iso_url" in settings or "iso_urls" in settings) and not boots_disk_image(settings)


def duration(data: Any) -> Any:
    """Packer's Go duration (boot_wait = "10s") as recipe's installer options take it: the same text, since they
    read Go durations; a template as it is (rendered, then read); Packer's negative "-1s" (no wait) as 0;
    anything else in seconds."""
    if isinstance(data, str):
        text = data.strip()
        if "{{" in text or RECIPE_DURATION.fullmatch(text):
            return text
        if text.startswith("-"):
            return 0
    return seconds(data)


# -- rules -----------------------------------------------------------------------------------

def _boot_command(assembly: Assembly, name: str, value: Value) -> None:
    # the key names (<esc>, <wait5>, <leftCtrlOn>) are Packer's in recipe too; the fields Packer filled in were
    # read as recipe's variables already (go_templates.BOOT_COMMAND_FIELDS)
    assembly.set(f"{INSTALLER}.boot_command", value.data)
    if NAME_FIELD.search(value.source):
        assembly.note(f"{name}: {{{{ .Name }}}} is recipe's build.name (<recipe>-<source>), not Packer's vm_name")


def _http_content(assembly: Assembly, name: str, value: Value) -> None:
    if not value.translated:          # most often templatefile(), whose HCL template Jinja cannot render
        assembly.leftover(name, value, f"{value.problem}; {TEMPLATEFILE_HINT}")
        return
    content = value.data
    if isinstance(content, dict):
        content = {path: _file_lookup_from_recipe(text, assembly) for path, text in content.items()}
    assembly.set(f"{INSTALLER}.http.content", content)


FILE_LOOKUP = re.compile(r"lookup\('file', '(/[^']*)'\)")


def _file_lookup_from_recipe(text: object, assembly: Assembly) -> object:
    """file("http/preseed.cfg") read from Packer's folder: the lookup names it from the recipe's, which is
    where recipe's lookups start (the expression made the path absolute)."""
    if not isinstance(text, str):
        return text
    return FILE_LOOKUP.sub(lambda m: f"lookup('file', {literal_code(assembly.paths.local(m.group(1)))})", text)


_http_content.reads_value = False     # type: ignore[attr-defined]   # an untranslated value gets its own hint


def _disk_size(assembly: Assembly, name: str, value: Value) -> None:
    # an installed base's disk is the one the installer was given, as Packer's ISO build had one disk; the
    # source's disk_size would only grow each build's overlay past it, so it is not set as well
    assembly.set(f"{INSTALLER}.size", packer_size(value.data))


def _ssh_timeout(assembly: Assembly, name: str, value: Value) -> None:
    assembly.set("ssh.connect_timeout", seconds(value.data))
    # Packer waited this long for SSH on the installed system, the install included; recipe bounds the install
    # by install_timeout (its default, 1h, may be too short for what the template allowed, or too long)
    assembly.set(f"{INSTALLER}.install_timeout", duration(value.data))
    assembly.note(f"{name}: Packer's bounded the install too (it waited for SSH on the installed system): it is "
                  "the installer's install_timeout as well")


INSTALLER_RULES: dict[str, Rule] = {
    "boot_command": _boot_command,
    "boot_wait": to(f"{INSTALLER}.boot_wait", duration),
    "boot_key_interval": to(f"{INSTALLER}.boot_key_interval", duration),
    "boot_keygroup_interval": note("recipe types every key boot_key_interval apart, a group's too"),
    "http_directory": to_path(f"{INSTALLER}.http.directory"),
    "http_content": _http_content,
    **{key: note(HTTP_SERVER) for key in ("http_port_min", "http_port_max", "http_bind_address", "http_interface",
                                          "http_network_protocol")},
    "disk_size": _disk_size,
    "ssh_timeout": _ssh_timeout,
    "ssh_wait_timeout": _ssh_timeout,
    "iso_interface": leftover("recipe attaches the ISO as QEMU's default CD-ROM drive"),
    **{key: leftover(FLOPPY_WHY) for key in ("floppy_files", "floppy_dirs", "floppy_content", "floppy_label")},
    **{key: leftover(CD_WHY) for key in ("cd_files", "cd_content", "cd_label")},
}


# -- the base --------------------------------------------------------------------------------

def map_installer(plugin: Plugin, assembly: Assembly, table: dict[str, Rule], skip: tuple[str, ...]) -> None:
    """base: {installer: ...} of an ISO build, then the builder's options through its table with the installer's
    rules over it (its ISO options are skipped: they are the base)."""
    assembly.set("base", {"installer": {}})
    iso = image_options(dict(plugin.settings), assembly, "ISO")
    blamed = plugin.settings.get("iso_url") or plugin.settings.get("iso_urls")
    if iso is not None:
        assembly.set(f"{INSTALLER}.iso", iso)
    elif blamed is not None:     # iso_url could not be translated: validate says the installer has nothing to boot
        assembly.leftover("iso_url" if "iso_url" in plugin.settings else "iso_urls", blamed, blamed.problem)
    apply({**table, **INSTALLER_RULES}, assembly, skip=tuple(dict.fromkeys((*BASE_OPTIONS, *skip))))
    installer = assembly.options["base"]["installer"]
    if "size" not in installer and plugin.type in PACKER_DISK_SIZES:
        installer["size"] = f"{PACKER_DISK_SIZES[plugin.type]}M"
        assembly.note(f"disk_size: not set, so Packer's {plugin.type} builder installed onto its default "
                      f"{installer['size']}; so does this installer")
    assembly.options["base"]["installer"] = {key: installer[key] for key in sorted(installer, key=_order)}
    user = (assembly.options.get("ssh") or {}).get("user", "root")
    assembly.note(f"the answer file (preseed, kickstart, autoinstall) must set up the ssh user {user} with "
                  "ssh.password (or authorize ssh.private_key_file), as Packer needed it to: recipe logs in with "
                  "them once the install has ended, then authorizes a key of its own")


def _order(key: str) -> int:
    return ORDER.index(key) if key in ORDER else len(ORDER)

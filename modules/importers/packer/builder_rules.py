"""What the builders share: SSH and installer options, sizes, the base image a build boots.

Packer's builders that make a local machine (qemu, virtualbox-*, vmware-*,
vagrant) all become recipe's qemu platform: they share the rules for options
of the communicator, the installer Packer typed into, and the disk.
"""
from __future__ import annotations

import re
from typing import Any

from modules.importers.packer.expressions import Untranslatable
from modules.importers.packer.files import PathMapper
from modules.importers.packer.mapping import (WHOLE_EXPRESSION, Assembly, Rule, leftover, note, seconds, skip, to,
                                              to_path)
from modules.importers.packer.template import Plugin, Value

PACKER_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)
GOOD_CHECKSUMS = ("sha256", "sha512")
INSTALLER_WHY = ("recipe types into no installer: a build starts from a cloud image, or from Debian made by "
                 "debootstrap (the base here); to keep another system, give base: {url: <its cloud image>, "
                 "checksum: ...}")
SEED_WHY = ("recipe writes its own cloud-init seed (the build's key and ssh user); put other first-boot settings "
            "into tasks")
WINDOWS_WHY = "recipe reaches guests over SSH with a POSIX shell: Windows guests (WinRM) are not supported"


# -- sizes, checksums and bases ----------------------------------------------------------------

def packer_size(data: Any) -> str:
    """Packer's disk_size: a plain number is megabytes ("10G", "20480M" or 20480) as recipe's "10G"/"20480M"."""
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return f"{int(data)}M"
    text = str(data)
    whole = WHOLE_EXPRESSION.match(text)
    if whole:     # from a variable: the same conversion, when the recipe is rendered
        value = f"({whole.group(1)})"
        return f"{{{{ ({value} | string) ~ 'M' if ({value} | string) is match('[0-9]+$') else {value} }}}}"
    if "{{" in text:
        raise Untranslatable("a size made of text and variables: write disk_size with its unit (e.g. 20G)")
    match = PACKER_SIZE.match(text.strip())
    if not match:
        raise Untranslatable(f"{text!r} is not a disk size")
    return f"{match.group(1)}{(match.group(2) or 'M').upper()}"


def checksum(settings: dict[str, Value]) -> str | None:
    """iso_checksum ("sha256:<hex>", "file:<url>", or <hex> with the old iso_checksum_type) in recipe's form;
    None when recipe cannot verify it."""
    value = settings.get("iso_checksum")
    text = str(value.data) if value and value.translated else ""
    kind = settings.get("iso_checksum_type")
    if kind and kind.translated and ":" not in text:
        text = f"{kind.data}:{text}"
    algorithm = text.split(":", 1)[0].lower()
    if algorithm == "file" or (algorithm in GOOD_CHECKSUMS and ":" in text) or "{{" in text:
        return text
    return None


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def disk_image_base(settings: dict[str, Value], paths: PathMapper, assembly: Assembly) -> dict[str, Any] | None:
    """base: of a build that boots iso_url as its disk (disk_image = true): a path, or a url with its checksum."""
    value = settings.get("iso_url") or settings.get("iso_urls")
    if value is None or not value.translated:
        return None
    url = value.data[0] if isinstance(value.data, list) else value.data
    if isinstance(value.data, list) and len(value.data) > 1:
        assembly.note("iso_urls: recipe downloads from the first url; the others were Packer's mirrors")
    url = str(url)
    if _is_local(url) and "{{" not in url:
        assembly.note("the base is a file on this machine: recipe reads it as it is, without a checksum")
        return {"path": paths.local(url.removeprefix("file://"))}
    found = checksum(settings)
    if found is None:
        where = settings.get("iso_checksum") or value
        assembly.leftover("iso_checksum", where, "recipe verifies a downloaded base with sha256:, sha512: or "
                                                 "file:<url of the checksum list>; give one of those")
        return {"url": url}
    return {"url": url, "checksum": found}


def firmware(assembly: Assembly, name: str, value: Value) -> None:
    if value.data in (True, "true") or (isinstance(value.data, str) and re.search(r"ovmf|efi", value.data, re.I)):
        assembly.set("firmware", "uefi")
        if isinstance(value.data, str):
            assembly.note(f"{name}: recipe boots UEFI with the host's OVMF")


def communicator(assembly: Assembly, name: str, value: Value) -> None:
    if value.data == "winrm":
        assembly.leftover(name, value, WINDOWS_WHY)
    elif value.data != "ssh":
        assembly.leftover(name, value, "recipe runs every task over SSH; a build without a connection has no tasks")


SSH: dict[str, Rule] = {
    "communicator": communicator,
    "ssh_username": to("ssh.user"),
    "ssh_password": to("ssh.password"),
    "ssh_private_key_file": to_path("ssh.private_key_file"),
    "ssh_timeout": to("ssh.connect_timeout", seconds),
    "ssh_wait_timeout": to("ssh.connect_timeout", seconds),
    "ssh_handshake_attempts": note("recipe retries the connection until connect_timeout"),
    "ssh_pty": skip(),
    "ssh_clear_authorized_keys": note("the sysprep task removes the build's key (and others') from the image"),
    "ssh_agent_auth": leftover("recipe logs in with a key it makes for the build, or ssh.private_key_file"),
    "pause_before_connecting": note("recipe connects as soon as SSH answers"),
    **{f"winrm_{key}": leftover(WINDOWS_WHY) for key in ("username", "password", "timeout", "use_ssl", "insecure",
                                                           "use_ntlm", "port", "host", "transport")},
}

NO_INSTALLER_WHY = ("recipe types into no installer and serves no files over HTTP or floppy: a build boots its base "
                    "image (a cloud image, or Debian made by debootstrap) and provisions it over SSH")
NOT_AN_INSTALLER = {
    key: leftover(NO_INSTALLER_WHY) for key in (
        "boot_command", "boot_wait", "boot_key_interval", "boot_keygroup_interval", "http_directory",
        "http_content", "http_port_min", "http_port_max", "http_bind_address", "floppy_files", "floppy_dirs",
        "floppy_content", "floppy_label", "iso_interface")
}
SEED = {key: leftover(SEED_WHY) for key in ("cd_files", "cd_content", "cd_label")}
QUIET = {key: note("QEMU runs headless under recipe (the console is logged to console-build.log)")
         for key in ("headless", "display", "use_default_display", "vnc_bind_address", "vnc_port_min",
                     "vnc_port_max", "vnc_use_password", "vnc_password", "vrdp_bind_address", "vrdp_port_min",
                     "vrdp_port_max")}

BASE_OPTIONS = ("iso_url", "iso_urls", "iso_checksum", "iso_checksum_type", "iso_checksum_url", "disk_image")


def base(plugin: Plugin, assembly: Assembly, installer_why: str = INSTALLER_WHY) -> None:
    """base: the disk image Packer booted (disk_image = true), else Debian by debootstrap, since recipe has
    nothing to run an installer with; the setting that named the installer is the leftover."""
    settings = dict(plugin.settings)
    disk_image = settings.get("disk_image")
    if disk_image is not None and disk_image.data is True:
        found = disk_image_base(settings, assembly.paths, assembly)
        if found is not None:
            assembly.set("base", found)
            return
    assembly.set("base", {"bootstrap": {}})
    blamed = settings.get("iso_url") or settings.get("iso_urls") or settings.get("source_path")
    if blamed is not None:
        name = next(k for k, v in settings.items() if v is blamed)
        assembly.leftover(name, blamed, installer_why)
    else:
        assembly.note("the base is a Debian system made by debootstrap: give base: {url: ..., checksum: ...} "
                      "for a cloud image")

"""What the builders share: SSH options, sizes, checksums, the base image a build boots.

Packer's builders that make a local machine (qemu, virtualbox-*, vmware-*,
vagrant) all become recipe's qemu platform: they share the rules for options
of the communicator, the disk image a build boots, and the disk. An ISO build
(an installer Packer typed into) is installer_rules' business.
"""
from __future__ import annotations

import re
from typing import Any

from modules.importers.packer.expressions import Untranslatable
from modules.importers.packer.mapping import (WHOLE_EXPRESSION, Assembly, Rule, leftover, note, seconds, skip, to,
                                              to_path)
from modules.importers.packer.template import Plugin, Value

PACKER_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)
GOOD_CHECKSUMS = ("sha256", "sha512")
BARE_DIGEST = re.compile(r"^[0-9a-fA-F]+$")
DIGEST_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}    # hex digits: how Packer tells them apart
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
    """iso_checksum in recipe's form: "sha256:<hex>" and "file:<url>" as they are, a bare hex digest with the
    old iso_checksum_type or, as Packer infers it, by its length; the old iso_checksum_url as "file:<url>".
    None when recipe cannot verify it (md5:, sha1:, Packer's "none")."""
    value = settings.get("iso_checksum")
    text = str(value.data).strip() if value and value.translated else ""
    kind = settings.get("iso_checksum_type")
    listed = settings.get("iso_checksum_url")
    if not text and listed is not None and listed.translated:
        return f"file:{listed.data}"
    if kind and kind.translated and ":" not in text:
        text = f"{kind.data}:{text}"
    elif ":" not in text and BARE_DIGEST.match(text):
        text = f"{DIGEST_LENGTHS.get(len(text), 'unknown')}:{text}"
    algorithm = text.split(":", 1)[0].lower()
    if algorithm == "file" or (algorithm in GOOD_CHECKSUMS and ":" in text) or "{{" in text:
        return text
    return None


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def image_options(settings: dict[str, Value], assembly: Assembly, what: str) -> dict[str, Any] | None:
    """The {url, checksum} or {path} of the file iso_url (or the first of iso_urls) names: what a build boots
    as its disk (disk_image = true), or an installer's ISO. None when iso_url could not be translated."""
    value = settings.get("iso_url") or settings.get("iso_urls")
    if value is None or not value.translated:
        return None
    url = value.data[0] if isinstance(value.data, list) else value.data
    if isinstance(value.data, list) and len(value.data) > 1:
        assembly.note("iso_urls: recipe downloads from the first url; the others were Packer's mirrors")
    url = str(url)
    if _is_local(url) and "{{" not in url:
        assembly.note(f"the {what} is a file on this machine: recipe reads it as it is, without a checksum")
        return {"path": assembly.paths.local(url.removeprefix("file://"))}
    found = checksum(settings)
    if found is None:
        given = settings.get("iso_checksum")
        skipped = " (Packer's none skipped the check; recipe has no such choice)" if given is not None and \
            str(given.data).strip().lower() == "none" else ""
        assembly.leftover("iso_checksum", given or value, f"recipe verifies every {what} it downloads, so it needs a "
                                                          "checksum: give sha256:<hex>, sha512:<hex> or file:<url of "
                                                          f"the checksum list>{skipped}")
        return {"url": url}
    return {"url": url, "checksum": found}


def boots_disk_image(settings: dict[str, Value]) -> bool:
    """disk_image = true: iso_url is the disk the build boots, not an installer."""
    disk_image = settings.get("disk_image")
    return disk_image is not None and disk_image.data in (True, "true")


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

NO_INSTALLER_WHY = ("no installer runs in this build: it boots its base (a disk image, or Debian made by "
                    "debootstrap) and provisions it over SSH, so nothing is typed into it or served to it over HTTP "
                    "or floppy (an ISO build, iso_url without disk_image, is imported as an installer base)")
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


def base(plugin: Plugin, assembly: Assembly, source_why: str = "") -> None:
    """base: the disk image Packer booted (disk_image = true), else Debian by debootstrap; an appliance's or a
    box's source_path, which recipe cannot boot, is the leftover (source_why). An ISO build is no business of
    this: installer_rules makes it an installer base."""
    settings = dict(plugin.settings)
    if boots_disk_image(settings):
        found = image_options(settings, assembly, "base")
        if found is not None:
            assembly.set("base", found)
            return
    assembly.set("base", {"bootstrap": {}})
    url = settings.get("iso_url") or settings.get("iso_urls")
    blamed = settings.get("source_path")
    if url is not None and not url.translated:
        assembly.leftover("iso_url" if "iso_url" in settings else "iso_urls", url, url.problem)
    elif blamed is not None and source_why:
        assembly.leftover("source_path", blamed, source_why)
    else:
        assembly.note("the base is a Debian system made by debootstrap: give base: {url: ..., checksum: ...} "
                      "for a cloud image")

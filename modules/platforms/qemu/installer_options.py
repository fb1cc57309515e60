"""`base: {installer: {...}}`: the options of an OS installer run once into an empty disk (Packer's qemu builder
with iso_url, boot_command and http_directory).

    base:
      installer:
        iso: {url: https://.../debian-12.iso, checksum: sha256:<hex>}    # or {path: ...}
        # or  kernel: linux, initrd: initrd.gz, append: "auto url=..."
        # or  netboot: {tftp_dir: /usr/lib/debian-installer/images/12/amd64/text, bootfile: pxelinux.0}
        boot_wait: 10s
        boot_command: ["<esc><wait>auto url=http://{{ http_ip }}:{{ http_port }}/preseed.cfg<enter>"]
        boot_key_interval: 100ms
        http: {directory: http, content: {/preseed.cfg: "{{ lookup('file', 'preseed.cfg') }}"}}
        install_timeout: 1h
        size: 8G

`{{ http_ip }}` and `{{ http_port }}` are rendered with the recipe: the port is known only when the installer
boots, so it renders as a mark (install_http.HTTP_PORT) filled in then.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.recipe.schema import HintedInvalid, strict, type_name
from engine.units import parse_size
from modules.platforms.qemu.base_spec import InstallerBase, Netboot, PathBase, UrlBase
from modules.platforms.qemu.boot_command import BootCommandError, go_duration, parse
from modules.platforms.qemu.image_options import PATH_OPTIONS, url_image
from modules.platforms.qemu.install_http import with_port

BOOTS = ("iso", "kernel", "netboot")
MIN_SIZE = 1 << 30


def _seconds(value: Any) -> float:
    """A number of seconds, or a Go duration as Packer writes them (10s, 100ms, 1h30m)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    try:
        return go_duration(value) if isinstance(value, str) else -1.0
    except ValueError:
        pass
    raise HintedInvalid(f"{value!r} is not a duration", hint="e.g. 10s, 100ms, 1h30m, or a number of seconds")


def _iso(value: Any) -> dict:
    if not isinstance(value, dict) or not ({"url", "path"} & set(value)):
        raise HintedInvalid(f"expected {{url, checksum}} or {{path}}, got {type_name(value)}",
                            hint="e.g. iso: {url: https://.../debian-12.iso, checksum: sha256:<hex>}")
    return url_image(value, what="an iso url") if "url" in value else PATH_OPTIONS(value)


def _file(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HintedInvalid(f"expected a file's path, got {type_name(value)}", hint="e.g. kernel: install/vmlinuz")
    return value


def _boot_command(value: Any) -> list[str]:
    lines = [value] if isinstance(value, str) else value
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise HintedInvalid(f"expected a list of strings, got {type_name(value)}",
                            hint='e.g. boot_command: ["<esc><wait>auto url=http://{{ http_ip }}:{{ http_port }}'
                                 '/preseed.cfg<enter>"]')
    for line in lines:
        try:
            parse(with_port(line, 8000))
        except BootCommandError as exc:
            raise HintedInvalid(str(exc), hint="type special keys by name: <enter>, <esc>, <leftShiftOn>") from None
    return lines


def _size(value: Any) -> str:
    try:
        size = parse_size(value)
    except ValueError:
        raise HintedInvalid(f"{value!r} is not a disk size", hint="e.g. size: 8G") from None
    if size < MIN_SIZE:
        raise HintedInvalid(f"size {value} is too small to install a system on", hint="use 1G or more")
    return str(value)


def _url_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HintedInvalid(f"expected a URL path, got {type_name(value)}", hint="e.g. /preseed.cfg")
    return "/" + value.lstrip("/")


_HTTP = strict({"directory": _file, "content": {_url_path: str}}, what="option")
_NETBOOT = strict({vol.Required("tftp_dir"): _file, "bootfile": _file}, what="option")
INSTALLER_OPTIONS = strict({
    "iso": _iso, "kernel": _file, "initrd": _file, "append": str, "netboot": _NETBOOT,
    "boot_command": _boot_command, "boot_wait": _seconds, "boot_key_interval": _seconds,
    "http": _HTTP, "install_timeout": _seconds, "size": _size,
}, what="option")


def installer_options(value: Any) -> dict:
    """The options of an installer base, with one way to boot it."""
    options = INSTALLER_OPTIONS(value if value is not None else {})
    boots = [boot for boot in BOOTS if boot in options]
    example = "e.g. iso: {url: https://.../debian-12.iso, checksum: sha256:<hex>}"
    if not boots:
        raise HintedInvalid("an installer boots from an iso, a kernel or netboot: give one", hint=example)
    if len(boots) > 1:
        raise HintedInvalid(f"give one of iso, kernel or netboot, not {' and '.join(boots)}", path=[boots[1]],
                            at_key=True, hint=f"remove {boots[1]!r} or {boots[0]!r}")
    for option in ("initrd", "append"):
        if option in options and "kernel" not in options:
            raise HintedInvalid(f"{option} goes with kernel", path=[option], at_key=True,
                                hint="a kernel booted directly takes an initrd and an append line; an iso or "
                                     "netboot installer takes its kernel line from its boot menu (boot_command)")
    return options


def parse_installer(options: dict, relative_to: Path | None) -> InstallerBase:
    def path(text: str) -> Path:
        found = Path(os.path.expanduser(text))
        return found if found.is_absolute() or relative_to is None else Path(relative_to) / found

    iso = options.get("iso")
    image: UrlBase | PathBase | None = None
    if iso and "url" in iso:
        image = UrlBase(url=iso["url"], checksum=iso["checksum"])
    elif iso:
        image = PathBase(path=path(iso["path"]))
    netboot = options.get("netboot")
    http = options.get("http") or {}
    defaults = InstallerBase()
    return InstallerBase(
        iso=image,
        kernel=path(options["kernel"]) if "kernel" in options else None,
        initrd=path(options["initrd"]) if "initrd" in options else None,
        append=options.get("append", ""),
        netboot=Netboot(tftp_dir=path(netboot["tftp_dir"]), bootfile=netboot.get("bootfile", "pxelinux.0"))
        if netboot else None,
        boot_command=tuple(options.get("boot_command", ())),
        boot_wait=options.get("boot_wait", defaults.boot_wait),
        boot_key_interval=options.get("boot_key_interval", defaults.boot_key_interval),
        http_directory=path(http["directory"]) if "directory" in http else None,
        http_content=tuple(sorted((http.get("content") or {}).items())),
        install_timeout=options.get("install_timeout", defaults.install_timeout),
        size=options.get("size", defaults.size))

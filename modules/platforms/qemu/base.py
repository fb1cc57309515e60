"""The `base:` option of a qemu source: the disk image a build starts from.

Exactly one of:

    base: {url: https://.../debian-12-genericcloud-amd64.qcow2, checksum: sha512:<hex>}
    base: {url: https://.../image.qcow2, checksum: "file:https://.../SHA512SUMS", format: qcow2}
    base: {path: /srv/images/debian.qcow2}
    base: {bootstrap: {distro: debian, suite: bookworm, packages: [curl]}}
    base: {installer: {iso: {url:, checksum:}, boot_command: [...], http: {...}}}   (installer_options.py)

A bootstrap base is made as small as its system comfortably fits in, and each
build grows its overlay to the source's disk_size (4G without one); its own
`size:` (optional) fixes the base image's size instead, a floor for disk_size.

BASE_SCHEMA checks the shape (every error at once, each with its path);
parse_base() turns the validated mapping into a frozen UrlBase, PathBase,
BootstrapBase or InstallerBase; resolve_base() makes it a file on disk
(downloaded and verified, built with debootstrap, or installed by the
installer) and says its format. The platform uses
the result read-only, as the backing file of a per-build overlay.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.errors import BuildError
from engine.local_cache import default_cache_dir
from engine.recipe.schema import HintedInvalid, did_you_mean, each, strict, type_name
from modules.platforms.qemu import bootstrap, download
from engine.units import parse_size
from modules.platforms.qemu.base_spec import Base, BootstrapBase, InstallerBase, PathBase, ResolvedBase, UrlBase
from modules.platforms.qemu.bootstrap_steps import Log, Progress, Status
from modules.platforms.qemu.distros import DISTROS
from modules.platforms.qemu.image_options import FORMATS, PATH_OPTIONS, url_image
from modules.platforms.qemu.image_urls import display_url
from modules.platforms.qemu.installer import InstallRun, install_base
from modules.platforms.qemu.installer_options import installer_options, parse_installer

KINDS = ("url", "path", "bootstrap", "installer")
MIN_BOOTSTRAP_SIZE = 2 << 30
COMPRESSED_MAGIC = {b"\xfd7zXZ\x00": "xz", b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2"}


# ---------------------------------------------------------------- the options, parsed

# ---------------------------------------------------------------- the schema

def _distro(value: Any) -> str:
    if not isinstance(value, str) or value not in DISTROS:
        raise HintedInvalid(f"{value!r} is not a distribution bootstrap knows",
                            hint=did_you_mean(str(value), DISTROS, "use " + " or ".join(DISTROS)))
    return value


def _suite(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", value):
        raise HintedInvalid(f"{value!r} is not a suite name", hint="e.g. suite: bookworm")
    return value


def _package(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", value):
        raise HintedInvalid(f"{value!r} is not a package name",
                            hint="give Debian package names, as apt-get install takes them (no versions)")
    return value


def _mirror(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise HintedInvalid(f"{value!r} is not a mirror url", hint="e.g. mirror: http://deb.debian.org/debian")
    return value.rstrip("/")


def _size(value: Any) -> str:
    try:
        size = parse_size(value)
    except ValueError:
        raise HintedInvalid(f"{value!r} is not a disk size", hint="e.g. size: 4G (K, M, G, T are powers of 1024)") from None
    if size < MIN_BOOTSTRAP_SIZE:
        raise HintedInvalid(f"size {value} is too small for a bootable system",
                            hint=f"use {MIN_BOOTSTRAP_SIZE >> 30}G or more; cloud-init grows the disk at boot anyway")
    return str(value)


_BOOTSTRAP_OPTIONS = strict({"distro": _distro, "suite": _suite, "packages": each(_package),
                             "mirror": _mirror, "size": _size}, what="option")


def _bootstrap_base(value: dict) -> dict:
    errors: list[vol.Invalid] = [
        HintedInvalid(f"unknown option {key!r}", path=[key], at_key=True,
                      hint="a bootstrap base takes its options inside bootstrap: {...}")
        for key in value if key != "bootstrap"]
    options = value["bootstrap"] if value["bootstrap"] is not None else {}
    try:
        options = _BOOTSTRAP_OPTIONS(options)
    except vol.MultipleInvalid as exc:
        for error in exc.errors:
            error.prepend(["bootstrap"])
            errors.append(error)
    except vol.Invalid as exc:
        exc.prepend(["bootstrap"])
        errors.append(exc)
    if errors:
        raise vol.MultipleInvalid(errors)
    distro = DISTROS[options.get("distro", "debian")]
    filled = {"distro": distro.name, "suite": options.get("suite", distro.suite),
              "packages": list(dict.fromkeys(options.get("packages", []))),
              "mirror": options.get("mirror", distro.mirror), "size": options.get("size")}
    return {"bootstrap": filled}


def _installer_base(value: dict) -> dict:
    extra = [key for key in value if key != "installer"]
    if extra:
        raise HintedInvalid(f"unknown option {extra[0]!r}", path=[extra[0]], at_key=True,
                            hint="an installer base takes its options inside installer: {...}")
    try:
        return {"installer": installer_options(value["installer"])}
    except vol.MultipleInvalid as exc:
        for error in exc.errors:
            error.prepend(["installer"])
        raise
    except vol.Invalid as exc:
        exc.prepend(["installer"])
        raise


def BASE_SCHEMA(value: Any) -> dict:
    """One of {url, checksum[, format]}, {path[, format]}, {bootstrap: {...}}, {installer: {...}}."""
    if not isinstance(value, dict):
        raise HintedInvalid(f"expected a mapping, got {type_name(value)}",
                            hint="e.g. base: {bootstrap: {distro: debian, suite: bookworm}}")
    kinds = [kind for kind in KINDS if kind in value]
    if len(kinds) > 1:
        raise HintedInvalid(f"give one of url, path, bootstrap or installer, not {' and '.join(kinds)}",
                            path=[kinds[1]], at_key=True, hint=f"remove {kinds[1]!r} or {kinds[0]!r}")
    if not kinds:
        example = "e.g. base: {bootstrap: {distro: debian, suite: bookworm}}"
        unknown = next(iter(value), None)
        if unknown is None:
            raise HintedInvalid("a base is a url (with a checksum), a path, a bootstrap or an installer", hint=example)
        raise HintedInvalid(f"unknown option {unknown!r}: a base is a url (with a checksum), a path, a bootstrap "
                            "or an installer",
                            path=[unknown], at_key=True, hint=did_you_mean(unknown, KINDS, example))
    if kinds == ["url"]:
        return url_image(value)
    if kinds == ["path"]:
        return PATH_OPTIONS(value)
    if kinds == ["installer"]:
        return _installer_base(value)
    return _bootstrap_base(value)


def parse_base(validated: dict, relative_to: Path | None = None) -> Base:
    """The frozen base a validated `base:` mapping describes (a relative path is taken from relative_to)."""
    if "url" in validated:
        return UrlBase(url=validated["url"], checksum=validated["checksum"], format=validated.get("format"))
    if "path" in validated:
        path = Path(os.path.expanduser(validated["path"]))
        if not path.is_absolute() and relative_to is not None:
            path = Path(relative_to) / path
        return PathBase(path=path, format=validated.get("format"))
    if "installer" in validated:
        return parse_installer(validated["installer"], relative_to)
    options = validated["bootstrap"] or {}
    distro = DISTROS[options.get("distro", "debian")]
    return BootstrapBase(distro=distro.name, suite=options.get("suite", distro.suite),
                         packages=tuple(dict.fromkeys(options.get("packages", ()))),
                         mirror=options.get("mirror", distro.mirror).rstrip("/"),
                         size=str(options["size"]) if options.get("size") is not None else None)


# ---------------------------------------------------------------- resolution

async def resolve_base(base: Base, cache_dir: Path | None = None, progress: Progress | None = None,
                       log: Log | None = None, status: Status | None = None,
                       install: InstallRun | None = None) -> ResolvedBase:
    """The base as an image file: downloaded and verified, found, bootstrapped, or installed (an installer base
    needs install: how to run it), with its format."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if isinstance(base, UrlBase):
        path = await download.fetch_image(base.url, base.checksum, cache / "images", progress, log)
        return await inspect_image(path, base.format, what=f"the image downloaded from {display_url(base.url)}",
                                   allow_backing=False)
    if isinstance(base, PathBase):
        path = Path(base.path).expanduser()
        if not path.is_file():
            raise BuildError(f"base image {path} does not exist" if not path.exists() else f"base {path} is not a file",
                             hint="check base.path (a relative path is taken from the recipe's directory)")
        if not os.access(path, os.R_OK):
            raise BuildError(f"base image {path} is not readable", hint="check its permissions")
        return await inspect_image(path.resolve(), base.format, what=f"base image {path}", allow_backing=True)
    if isinstance(base, BootstrapBase):
        path = await bootstrap.build_image(base, cache, progress=progress, log=log, status=status)
        return await inspect_image(path, "qcow2", what=f"bootstrapped image {path.name}", allow_backing=False)
    if isinstance(base, InstallerBase):
        if install is None:
            raise TypeError("an installer base is resolved with install=InstallRun(...)")
        path, login = await install_base(base, cache, install, progress, log, status)
        found = await inspect_image(path, "qcow2", what=f"installed image {path.name}", allow_backing=False)
        return dataclasses.replace(found, login=login)
    raise TypeError(f"not a base: {base!r}")


async def inspect_image(path: Path, declared: str | None, what: str, allow_backing: bool) -> ResolvedBase:
    """Detect the format with qemu-img info and check it against the declared one."""
    info = await qemu_img_info(path)
    detected = info.get("format")
    if detected == "raw":
        kind = compressed_kind(path)
        if kind:
            raise BuildError(f"{what} is {kind}-compressed, not a disk image",
                             hint=f"give the url or path of the uncompressed image, or decompress it first ({kind} -d)")
    if detected not in FORMATS:
        raise BuildError(f"{what} is in {detected} format; a base must be one of {', '.join(FORMATS)}",
                         hint=f"convert it: qemu-img convert -O qcow2 {path} base.qcow2")
    if declared and declared != detected:
        raise BuildError(f"{what} is a {detected} image, but format: {declared} was given",
                         hint=f"use format: {detected}, or leave format out to detect it")
    if not allow_backing and (info.get("backing-filename") or info.get("full-backing-filename")):
        raise BuildError(f"{what} refers to a backing file ({info.get('backing-filename')})",
                         hint="a downloaded base must be self-contained; flatten it with qemu-img convert")
    size = info.get("virtual-size")
    return ResolvedBase(path=path, format=detected, virtual_size=size if isinstance(size, int) else None)


async def qemu_img_info(path: Path) -> dict:
    try:
        process = await asyncio.create_subprocess_exec(
            "qemu-img", "info", "--output=json", "--force-share", str(path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError:
        raise BuildError("qemu-img is not installed", hint="install the Debian package qemu-utils") from None
    try:
        out, err = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise BuildError(f"qemu-img cannot read {path}: {err.decode(errors='replace').strip()}",
                         hint="check that the file is a disk image")
    try:
        info = json.loads(out)
    except ValueError:
        raise BuildError(f"qemu-img info gave no JSON for {path}") from None
    return info if isinstance(info, dict) else {}


def compressed_kind(path: Path) -> str | None:
    with open(path, "rb") as stream:
        head = stream.read(8)
    return next((kind for magic, kind in COMPRESSED_MAGIC.items() if head.startswith(magic)), None)

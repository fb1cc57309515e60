"""The options that name an image file: `{url, checksum[, format]}` or `{path[, format]}` (a qemu base, an
installer's ISO)."""
from __future__ import annotations

from typing import Any

import voluptuous as vol

from engine.recipe.schema import HintedInvalid, did_you_mean, strict, type_name
from modules.platforms.qemu.checksums import parse_checksum
from modules.platforms.qemu.image_urls import check_url

FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhdx")   # what QEMU reads as the backing file of an overlay


def checksum_option(value: Any) -> str:
    try:
        parse_checksum(value)
    except ValueError as exc:
        raise HintedInvalid(str(exc), hint="use sha256:<64 hex digits>, sha512:<128 hex digits> "
                                           "or file:<url of a SHA256SUMS file>") from None
    return value.strip()


def url_option(value: Any) -> str:
    hint = "e.g. url: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
    if not isinstance(value, str):
        raise HintedInvalid(f"expected a url (a string), got {type_name(value)}", hint=hint)
    try:
        return check_url(value)
    except ValueError as exc:
        raise HintedInvalid(str(exc), hint=hint) from None


def format_option(value: Any) -> str:
    if not isinstance(value, str) or value not in FORMATS:
        raise HintedInvalid(f"{value!r} is not an image format",
                            hint=did_you_mean(str(value), FORMATS,
                                              "use qcow2, raw, vmdk, vdi or vhdx, or leave it out to detect it"))
    return value


def path_option(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HintedInvalid(f"expected the path of an image file, got {type_name(value)}",
                            hint="e.g. path: /srv/images/debian-12.qcow2")
    return value


URL_OPTIONS = strict({vol.Required("url"): url_option, "checksum": checksum_option, "format": format_option},
                     what="option")
PATH_OPTIONS = strict({vol.Required("path"): path_option, "format": format_option}, what="option")


def url_image(value: dict, what: str = "a url base") -> dict:
    """{url, checksum[, format]}: a download is always verified."""
    errors: list[vol.Invalid] = []
    try:
        value = URL_OPTIONS(value)
    except vol.MultipleInvalid as exc:
        errors.extend(exc.errors)
    if "checksum" not in value:
        errors.append(HintedInvalid(f"{what} needs a checksum", path=["checksum"],
                                    hint="add checksum: sha256:<hex>, or checksum: file:<url of SHA256SUMS>"))
    if errors:
        raise vol.MultipleInvalid(errors)
    return value

"""Packer post-processors as recipe exports (modules/exports): vagrant, manifest, checksum, compress, amazon-import.

recipe's exports run after every build of an image source, in order, each
taking what the ones before made; Packer's chains start again from the
builder's artifact. The importer flattens the chains in order, and says so
when the template had more than one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from modules.importers.packer.draft import Comment, Part
from modules.importers.packer.files import PathMapper
from modules.importers.packer.mapping import Assembly, Rule, apply, as_list, leftover, note, skip, to
from modules.importers.packer.template import Plugin, Value

COMMON = ("only", "except", "name", "keep_input_artifact", "type")
CREDENTIALS_WHY = ("recipe reads AWS credentials as the AWS CLI does (environment, ~/.aws profile, instance role): "
                   "give them there, never in the recipe")
NAMING = "recipe names its files <recipe>-<source> (or the export's name:) inside --output-dir"


@dataclass(frozen=True)
class Chain:
    """What the post-processors need to know of their build."""

    box_providers: tuple[str, ...]      # the Vagrant providers the build's sources make boxes for


def _compression(assembly: Assembly, name: str, value: Value) -> None:
    level = int(value.data)
    if level > 0:
        assembly.set("compress", True)
        assembly.set("compression_level", min(level, 9))


def _provider(assembly: Assembly, name: str, value: Value) -> None:
    if value.data not in ("libvirt", "virtualbox"):
        assembly.leftover(name, value, "recipe's Vagrant boxes are for libvirt or virtualbox")
    else:
        assembly.set("provider", value.data)


VAGRANT: dict[str, Rule] = {
    "compression_level": _compression,
    "provider_override": _provider,
    "output": note(NAMING),
    "vagrantfile_template": leftover("the box's Vagrantfile is recipe's own (it names the base MAC and, for UEFI, "
                                     "OVMF)"),
    "vagrantfile_template_generated": skip(),
    "include": leftover("recipe's boxes hold the disk, metadata.json and the Vagrantfile only"),
    "architecture": note("recipe's boxes are for the build's own architecture"),
}


def vagrant(plugin: Plugin, chain: Chain, assembly: Assembly) -> str:
    assembly.set("provider", list(chain.box_providers) or ["libvirt"])
    apply(VAGRANT, assembly, skip=COMMON)
    if isinstance(assembly.options["provider"], list) and len(assembly.options["provider"]) == 1:
        assembly.set("provider", assembly.options["provider"][0])
    return "vagrant"


def _file_name(dotted: str) -> Rule:
    """A file name Packer takes from its working directory; recipe's from the run's output folder."""
    def rule(assembly: Assembly, name: str, value: Value) -> None:
        text = str(value.data)
        if "{{" in text or text.startswith("/"):
            assembly.note(f"{name}: {NAMING}")
        else:
            assembly.set(dotted, text)
            assembly.note(f"{name}: written in the run's --output-dir, not in the directory recipe runs in")
    return rule


MANIFEST: dict[str, Rule] = {
    "output": _file_name("path"),
    "strip_path": note("the manifest names artifacts relative to its own folder"),
    "strip_time": note("the manifest records when each build started and finished"),
    "custom_data": leftover("recipe's manifest lists builds and artifacts only"),
}


def manifest(plugin: Plugin, chain: Chain, assembly: Assembly) -> str:
    apply(MANIFEST, assembly, skip=COMMON)
    return "manifest"


def _checksum_types(assembly: Assembly, name: str, value: Value) -> None:
    others = [t for t in as_list(value.data) if str(t).lower() != "sha256"]
    if others:
        assembly.leftover(name, value, f"recipe writes SHA-256 sums only (not {', '.join(map(str, others))})")


CHECKSUM: dict[str, Rule] = {"checksum_types": _checksum_types, "output": _file_name("name")}


def checksum(plugin: Plugin, chain: Chain, assembly: Assembly) -> str:
    apply(CHECKSUM, assembly, skip=COMMON)
    return "checksum"


COMPRESS: dict[str, Rule] = {
    "output": note(NAMING),
    "format": note("the disk is a compressed qcow2 rather than an archive of it"),
    "compression_level": note("qcow2 compresses at zlib's default level"),
}


def compress(plugin: Plugin, chain: Chain, assembly: Assembly) -> str:
    assembly.set("compress", True)
    assembly.note("Packer's compress archived the artifact; recipe writes the disk as a compressed qcow2")
    apply(COMPRESS, assembly, skip=COMMON)
    return "qcow2"


def _boot_mode(assembly: Assembly, name: str, value: Value) -> None:
    assembly.set("boot_mode", {"legacy_bios": "legacy-bios", "uefi": "uefi"}.get(str(value.data), value.data))


def _bucket(assembly: Assembly, name: str, value: Value) -> None:
    assembly.set("upload", "s3")
    assembly.set("bucket", value.data)
    assembly.note("s3_bucket_name: the disk goes through the bucket and ImportSnapshot, as with Packer; without "
                  "upload: s3, recipe uploads it straight into a snapshot (no bucket, faster)")


AMAZON_IMPORT: dict[str, Rule] = {
    "region": to("region"),
    "ami_name": to("name"),
    "ami_description": to("description"),
    "tags": to("tags"),
    "s3_bucket_name": _bucket,
    "s3_key_name": note("recipe names the uploaded object after the build, under key_prefix, and deletes it"),
    "boot_mode": _boot_mode,
    "architecture": to("architecture"),
    "profile": to("profile"),
    "custom_endpoint_ec2": to("endpoint_url"),
    "role_name": note("ImportSnapshot runs with the vmimport service role"),
    "format": note("recipe uploads the disk as raw"),
    "license_type": note("the image is registered from a snapshot; licensing follows the AMI"),
    "skip_clean": note("recipe deletes the uploaded object whatever happens"),
    "ami_users": leftover("the ami export shares nothing: share it with the amazon platform, or afterwards"),
    "ami_groups": leftover("the ami export shares nothing: share it with the amazon platform, or afterwards"),
    "ami_encrypt": leftover("the ami export registers unencrypted snapshots"),
    "ami_kms_key": leftover("the ami export registers unencrypted snapshots"),
    "access_key": leftover(CREDENTIALS_WHY), "secret_key": leftover(CREDENTIALS_WHY),
    "token": leftover(CREDENTIALS_WHY),
}


def amazon_import(plugin: Plugin, chain: Chain, assembly: Assembly) -> str:
    apply(AMAZON_IMPORT, assembly, skip=COMMON)
    if "name" not in assembly.options:
        assembly.set("name", "{{ build.name }}-{{ build.id }}")
        assembly.note("ami_name: the AMI is named after the build, which makes it unique")
    return "ami"


EXPORTS: dict[str, Callable[[Plugin, Chain, Assembly], str]] = {
    "vagrant": vagrant,
    "manifest": manifest,
    "checksum": checksum,
    "compress": compress,
    "amazon-import": amazon_import,
}
LEFTOVER_WHY = {
    "shell-local": "recipe's exports run no commands: run it after `recipe run`, on what the manifest lists",
    "artifice": "recipe's exports are its own; list other files with a task, or after the run",
}


def _keep_input(plugin: Plugin, kind: str, assembly: Assembly) -> None:
    """keep_input_artifact: false drops what the export read; only exports that read an earlier one take it."""
    keep = plugin.settings.get("keep_input_artifact")
    if keep is not None and keep.data is False and kind in ("vagrant", "ami"):
        assembly.set("keep_input", False)


def map_post_processor(plugin: Plugin, chain: Chain, paths: PathMapper) -> Part | Comment:
    """The export for a post-processor, or a leftover comment when recipe has none like it."""
    mapper = EXPORTS.get(plugin.type)
    if mapper is None:
        why = LEFTOVER_WHY.get(plugin.type, f"recipe has no {plugin.type} export")
        return Comment.not_imported(plugin.position, f"post-processor {plugin.type!r}", why)
    assembly = Assembly(plugin=plugin, paths=paths)
    kind = mapper(plugin, chain, assembly)
    _keep_input(plugin, kind, assembly)
    for key in ("only", "except"):
        value = plugin.settings.get(key)
        if value is not None:
            assembly.note(f"{key}: recipe's exports apply to every image source")
    comments = (Comment(f"Packer's {plugin.type} post-processor ({plugin.position})"), *assembly.comments)
    return Part({kind: dict(assembly.options)}, comments=comments)

"""Packer's amazon-ebs builder as recipe's amazon platform: the source AMI, the instance, the image's names,
regions, sharing and tags."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from modules.importers.packer.builder_rules import SSH
from modules.importers.packer.expressions import literal_code
from modules.importers.packer.mapping import Assembly, Rule, apply, boolean, leftover, note, only_if, to
from modules.importers.packer.template import Plugin, Value

CREDENTIALS_WHY = ("recipe reads AWS credentials as the AWS CLI does (environment, ~/.aws profile, instance role): "
                   "give them there, never in the recipe")


def _ami_filter(data: Any) -> dict[str, Any]:
    mapping = data[0] if isinstance(data, list) else data
    query: dict[str, Any] = {"filters": {k: v for k, v in (mapping.get("filters") or {}).items()}}
    if mapping.get("owners"):
        query["owners"] = mapping["owners"]
    if mapping.get("most_recent") is not None:
        query["most_recent"] = mapping["most_recent"]
    return query


def _root_volume(assembly: Assembly, name: str, value: Value) -> None:
    """launch_block_device_mappings: recipe sizes the root volume only (the first mapping given a size)."""
    mappings = value.data if isinstance(value.data, list) else [value.data]
    root = mappings[0] if mappings else {}
    volume = {k: v for k, v in (("size", root.get("volume_size")), ("type", root.get("volume_type"))) if v is not None}
    if volume:
        assembly.set("root_volume", volume)
    if len(mappings) > 1 or set(root) - {"device_name", "volume_size", "volume_type", "delete_on_termination"}:
        assembly.leftover(name, value, "recipe sets the root volume's size and type; add other volumes in a task")


def _security_group(assembly: Assembly, name: str, value: Value) -> None:
    assembly.set("security_group_ids", [value.data] if isinstance(value.data, str) else value.data)


def _user_data_file(assembly: Assembly, name: str, value: Value) -> None:
    """Read when the recipe is rendered, as Packer reads it when it builds. A source's lookups start from the
    directory recipe runs in, not the recipe's: the path is absolute."""
    text = str(value.data)
    path = text if "{{" in text or Path(text).is_absolute() else str(assembly.paths.absolute(text))
    assembly.set("user_data", "{{ lookup('file', " + literal_code(path) + ") }}")


def _snapshot_tags(assembly: Assembly, name: str, value: Value) -> None:
    if value.data != assembly.options.get("tags"):
        assembly.leftover(name, value, "recipe tags the snapshots with the AMI's tags")


def _virtualization(assembly: Assembly, name: str, value: Value) -> None:
    if value.data != "hvm":
        assembly.leftover(name, value, "recipe registers HVM images")


AMAZON: dict[str, Rule] = {
    **SSH,
    "region": to("region"),
    "source_ami": to("source_ami"),
    "source_ami_filter": to("source_ami", _ami_filter),
    "instance_type": to("instance_type"),
    "ami_name": to("ami_name"),
    "ami_description": to("ami_description"),
    "ami_regions": to("regions"),
    "ami_users": to("share.users"),
    "ami_groups": to("share.groups"),
    "ami_org_arns": to("share.org_arns"),
    "ami_ou_arns": to("share.ou_arns"),
    "tags": to("tags"),
    "run_tags": to("run_tags"),
    "snapshot_tags": _snapshot_tags,
    "subnet_id": to("subnet_id"),
    "vpc_id": to("vpc_id"),
    "security_group_id": _security_group,
    "security_group_ids": to("security_group_ids"),
    "iam_instance_profile": to("iam_instance_profile"),
    "user_data": to("user_data"),
    "user_data_file": _user_data_file,
    "launch_block_device_mappings": _root_volume,
    "force_deregister": to("force_deregister", boolean),
    "force_delete_snapshot": note("recipe deletes a deregistered image's snapshots with it"),
    "profile": to("profile"),
    "custom_endpoint_ec2": to("endpoint_url"),
    "ssh_interface": to("ssh_interface"),
    "ssh_keypair_name": to("key_pair"),
    "temporary_security_group_source_cidrs": to("ssh_cidrs"),
    "temporary_key_pair_type": note("recipe's temporary key pair is ed25519"),
    "associate_public_ip_address": note("the instance gets the subnet's public address setting"),
    "ami_virtualization_type": _virtualization,
    "ena_support": note("recipe registers the AMI with ENA support"),
    "sriov_support": note("recipe registers the AMI with ENA support"),
    "shutdown_behavior": note("recipe stops the instance, images it and terminates it"),
    "skip_region_validation": note("recipe checks regions by name only"),
    "aws_polling": note("recipe polls with a backoff up to ami_timeout"),
    "access_key": leftover(CREDENTIALS_WHY), "secret_key": leftover(CREDENTIALS_WHY),
    "token": leftover(CREDENTIALS_WHY), "assume_role": leftover(CREDENTIALS_WHY),
    "ssh_port": only_if(22, "recipe connects to port 22"),
}


def amazon(plugin: Plugin, assembly: Assembly) -> None:
    assembly.set("platform", "amazon")
    apply(AMAZON, assembly)

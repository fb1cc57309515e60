"""The amazon platform: an EBS-backed AMI built on a temporary EC2 instance (Packer's amazon-ebs flow).

  sources:
    aws:
      platform: amazon
      region: eu-west-1
      source_ami: {filters: {name: "debian-12-amd64-*"}, owners: ["136693071363"], most_recent: true}
      instance_type: t3.micro
      ami_name: "web-{{ build.id }}"
      regions: [us-east-1]                 # copies
      share: {users: ["123456789012"]}
      ssh: {user: admin}

The steps (modules.platforms.amazon.steps) make a temporary key pair and
security group, launch the instance, connect over SSH (the host key read from
the console output when the instance has printed it), run the tasks, stop the
instance, create the image, copy, share and tag it. Every temporary resource
carries the tags recipe:build-id and recipe:recipe, so `recipe sweep` finds
what a killed run left. Nothing here talks to AWS at validation time.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.build.platform import Platform
from engine.build.runner import Step
from engine.build.steps import GatherFacts, MakeWorkDir, Provision
from engine.recipe.model import Build, Recipe
from engine.recipe.schema import HintedInvalid, positive_number
from modules.aws.rules import AMI_NAME, REGION, VOLUME_TYPES
from modules.platforms.amazon import steps as ec2_steps
from modules.platforms.amazon import sweep  # noqa: F401  (registers the "aws" sweeper)
from modules.platforms.amazon.config import AmazonConfig, RootVolume, Sharing, SourceAmiQuery

AMI_ID = vol.Match(r"^ami-[0-9a-f]{8,17}$", msg="an AMI id like ami-0123456789abcdef0")
ACCOUNT_ID = vol.Match(r"^\d{12}$", msg="a 12-digit AWS account id")
ORG_ARN = vol.Match(r"^arn:aws[a-z-]*:organizations::\d{12}:(organization|ou)/", msg="an organization or OU ARN")


def cidr(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise HintedInvalid(f"{value!r} is not a CIDR block", hint="e.g. 203.0.113.7/32 or 10.0.0.0/8") from None


def source_query(value: dict[str, Any]) -> dict[str, Any]:
    """`name:` is the shorthand of a name filter (as in the design's example); one of the two is needed."""
    filters = dict(value.get("filters", {}))
    if "name" in value:
        if "name" in filters:
            raise HintedInvalid("source_ami gives name twice, as name and as filters.name", path=["name"],
                                hint="keep one of them")
        filters["name"] = [value["name"]]
    if not filters:
        raise HintedInvalid("source_ami needs a name or filters to find the image",
                            hint='e.g. source_ami: {name: "debian-12-amd64-*", owners: ["136693071363"], '
                                 'most_recent: true}')
    return {"filters": filters, "owners": value["owners"], "most_recent": value["most_recent"]}


SOURCE_QUERY = vol.All(vol.Schema({
    vol.Optional("name"): str,
    vol.Optional("filters"): {str: vol.Any([str], vol.All(str, lambda v: [v]))},
    vol.Optional("owners", default=[]): [vol.Any(ACCOUNT_ID, vol.In(["self", "amazon", "aws-marketplace"]))],
    vol.Optional("most_recent", default=False): bool}), source_query)
STR_MAP = {str: vol.Coerce(str)}
SCHEMA = {
    vol.Required("region"): REGION,
    vol.Required("source_ami"): lambda value: AMI_ID(value) if isinstance(value, str) else SOURCE_QUERY(value),
    vol.Optional("ami_name", default=None): vol.Any(None, AMI_NAME),   # None: <recipe>-<source>-<build id>
    vol.Optional("ami_description", default=""): str,
    vol.Optional("instance_type", default="t3.micro"): vol.Match(r"^[a-z0-9-]+\.[a-z0-9]+$",
                                                                 msg="an instance type like t3.micro"),
    vol.Optional("subnet_id", default=None): vol.Any(None, vol.Match(r"^subnet-[0-9a-f]+$", msg="a subnet id")),
    vol.Optional("vpc_id", default=None): vol.Any(None, vol.Match(r"^vpc-[0-9a-f]+$", msg="a VPC id")),
    vol.Optional("security_group_ids", default=[]): [vol.Match(r"^sg-[0-9a-f]+$", msg="a security group id")],
    vol.Optional("ssh_cidrs", default=[]): [cidr],
    vol.Optional("key_pair", default=None): vol.Any(None, str),
    vol.Optional("ssh_interface", default="public_ip"): vol.In(["public_ip", "private_ip", "public_dns"]),
    vol.Optional("iam_instance_profile", default=None): vol.Any(None, str),
    vol.Optional("root_volume", default={}): {vol.Optional("size"): vol.All(int, vol.Range(min=1, max=65536)),
                                              vol.Optional("type"): vol.In(VOLUME_TYPES)},
    vol.Optional("user_data", default=None): vol.Any(None, str),
    vol.Optional("regions", default=[]): [REGION],
    vol.Optional("share", default={}): {vol.Optional("users"): [ACCOUNT_ID], vol.Optional("groups"): [vol.In(["all"])],
                                        vol.Optional("org_arns"): [ORG_ARN], vol.Optional("ou_arns"): [ORG_ARN]},
    vol.Optional("tags", default={}): STR_MAP,
    vol.Optional("run_tags", default={}): STR_MAP,
    vol.Optional("force_deregister", default=False): bool,
    vol.Optional("ami_timeout", default=3600.0): positive_number,
    vol.Optional("poll_delay", default=5.0): positive_number,
    vol.Optional("instance_timeout", default=900.0): positive_number,
    vol.Optional("host_key_wait", default=180.0): positive_number,
    vol.Optional("checkip_url", default="https://checkip.amazonaws.com"): vol.Url(),
    vol.Optional("profile", default=None): vol.Any(None, str),
    vol.Optional("endpoint_url", default=None): vol.Any(None, vol.Url()),
}


class AmazonPlatform(Platform, name="amazon"):
    description = "an EBS-backed AMI from a temporary EC2 instance; copied, shared and tagged"
    schema = SCHEMA
    Config = AmazonConfig
    has_disk = False
    ssh_required = ("user",)        # AMIs differ: admin on Debian, ubuntu on Ubuntu, ec2-user on Amazon Linux

    @classmethod
    def check(cls, validated: dict[str, Any]) -> dict[str, Any]:
        if validated.get("key_pair") and not validated.get("ssh", {}).get("private_key_file"):
            raise HintedInvalid("key_pair is given but not its private key", path=["key_pair"],
                                hint="set ssh.private_key_file to the key pair's private key, or drop key_pair "
                                     "to let the build make a temporary one")
        return validated

    @classmethod
    def configure(cls, validated: dict[str, Any], base_dir: Path) -> AmazonConfig:
        source = validated["source_ami"]
        if isinstance(source, dict):
            source = SourceAmiQuery(filters=source["filters"], owners=tuple(source["owners"]),
                                    most_recent=source["most_recent"])
        share = validated["share"]
        return AmazonConfig(**{
            **validated, "source_ami": source, "root_volume": RootVolume(**validated["root_volume"]),
            "share": Sharing(**{k: tuple(v) for k, v in share.items()}),
            "security_group_ids": tuple(validated["security_group_ids"]),
            "ssh_cidrs": tuple(validated["ssh_cidrs"]),
            "regions": tuple(r for r in dict.fromkeys(validated["regions"]) if r != validated["region"])})

    def steps(self, recipe: Recipe, build: Build) -> list[Step]:
        run = ec2_steps.Ec2Run(build=build, config=build.source.config)
        return [MakeWorkDir(), ec2_steps.Clients(run), ec2_steps.CheckSourceAndName(run), ec2_steps.KeyPair(run),
                ec2_steps.SecurityGroup(run), ec2_steps.LaunchInstance(run), ec2_steps.ConnectInstance(run),
                GatherFacts(), Provision(), ec2_steps.StopInstance(run), ec2_steps.CreateImage(run),
                ec2_steps.CopyToRegions(run), ec2_steps.ShareAndTag(run), ec2_steps.Record(run)]

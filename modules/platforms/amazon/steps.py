"""The steps of an amazon build, after Packer's amazon-ebs: check, key pair, security group, instance,
connect, (facts, tasks), stop, create image, copy, share, record.

Every resource is created through ec2.create_then_release, so its removal is
on the cleanup stack before it exists: the instance is terminated and waited
for, then the key pair and security group go, on success, failure and Ctrl-C
alike. Images and copies are removed only if the build does not succeed.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import asyncssh
from botocore.exceptions import ClientError

from engine.artifacts.export import Artifact
from engine.artifacts.export_chain import Chain, export_context, machine_shape
from engine.build.runner import BuildState, Cleanup
from engine.build.steps import Connect
from engine.errors import BuildError
from engine.leftovers.sweep import BUILD_ID_TAG, RECIPE_TAG
from engine.process import atomic_path
from engine.recipe.model import Build
from engine.remote.ssh import BUILD_KEY_MARK, Endpoint
from modules.aws import clients
from modules.aws import ec2 as aws
from modules.platforms.amazon.config import AmazonConfig, SourceAmiQuery

CONSOLE_MAX_DELAY = 15.0     # between reads of the console while waiting for the host keys


@dataclass
class Ec2Run:
    """What the steps of one amazon build share."""

    build: Build
    config: AmazonConfig
    clients: dict[str, Any] = field(default_factory=dict)     # region -> EC2 client
    source_image: dict[str, Any] = field(default_factory=dict)
    key_name: str | None = None
    private_key: str | None = None
    security_groups: list[str] = field(default_factory=list)
    instance: dict[str, Any] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)      # region -> AMI id
    snapshots: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ec2(self) -> Any:
        return self.clients[self.config.region]

    @property
    def resource_name(self) -> str:
        return f"recipe-{self.build.info.name}-{self.build.info.id}"

    @property
    def ami_name(self) -> str:
        """ami_name, or a name unique per build, so a recipe needs none and two builds never collide."""
        return self.config.ami_name or f"{self.build.info.name}-{self.build.info.id}"

    @property
    def description(self) -> str:
        return self.config.ami_description or f"built by recipe: {self.build.info.name}"

    def tags(self, extra: dict[str, str], name: str | None = None) -> dict[str, str]:
        """Every resource carries the build's tags, so `recipe sweep` finds what a killed run left."""
        return {"Name": name or self.resource_name, **extra, BUILD_ID_TAG: self.build.info.id,
                RECIPE_TAG: self.build.info.recipe}

    def tag_specs(self, *types: str, extra: dict[str, str] | None = None, name: str | None = None) -> list:
        tags = aws.tag_list(self.tags(extra if extra is not None else self.config.run_tags, name))
        return [{"ResourceType": kind, "Tags": tags} for kind in types]


@dataclass
class Clients:
    job: Ec2Run
    name: str = "aws clients"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config = self.job.config
        for region in (config.region, *config.regions):
            self.job.clients[region] = await asyncio.to_thread(clients.client, "ec2", region, config.profile,
                                                               config.endpoint_url)


@dataclass
class CheckSourceAndName:
    """Fail before anything is launched: the source AMI must resolve, the AMI name must be free (or forced)."""

    job: Ec2Run
    name: str = "source ami"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        self.job.source_image = await resolve_source_ami(self.job.ec2, self.job.config.source_ami)
        image = self.job.source_image
        state.events.emit("aws", msg=f"source {image['ImageId']} ({image.get('Name', '')})")
        if self.job.config.force_deregister:
            return
        for region, ec2 in self.job.clients.items():
            taken = await aws.call("DescribeImages", aws.images_named, ec2, self.job.ami_name)
            if taken:
                raise BuildError(f"an AMI named {self.job.ami_name!r} already exists in {region} "
                                 f"({taken[0]['ImageId']})",
                                 hint="set force_deregister: true to replace it, or make ami_name unique "
                                      "(e.g. with {{ build.id }})")


async def resolve_source_ami(ec2: Any, source: Any) -> dict[str, Any]:
    if not isinstance(source, SourceAmiQuery):
        images = (await aws.call("DescribeImages", ec2.describe_images, ImageIds=[source]))["Images"]
        if not images:
            raise BuildError(f"source_ami {source} not found", hint=aws.HINTS["InvalidAMIID.NotFound"])
        return images[0]
    params: dict[str, Any] = {"Filters": [{"Name": k, "Values": v} for k, v in source.filters.items()]}
    if source.owners:
        params["Owners"] = list(source.owners)
    images = (await aws.call("DescribeImages", ec2.describe_images, **params))["Images"]
    if not images:
        raise BuildError(f"no AMI matches the source_ami filters {source.filters} (owners {list(source.owners)})",
                         hint="check the filters' names and values, and owners")
    if len(images) > 1 and not source.most_recent:
        raise BuildError(f"{len(images)} AMIs match the source_ami filters, e.g. "
                         f"{', '.join(i['ImageId'] for i in images[:3])}",
                         hint="narrow the filters, or set most_recent: true to take the newest")
    return max(images, key=lambda i: i.get("CreationDate", ""))


@dataclass
class KeyPair:
    """A temporary ed25519 key made here (the private half never leaves this machine) and imported;
    or the given key_pair with ssh.private_key_file."""

    job: Ec2Run
    name: str = "key pair"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config, ssh = self.job.config, state.build.source.ssh
        if config.key_pair:           # AmazonPlatform.check made sure its private key is given
            self.job.key_name, self.job.private_key = config.key_pair, ssh.private_key_file
            return
        assert state.work_dir
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{BUILD_KEY_MARK}{state.build.info.id}-ec2")
        path = state.work_dir / "ec2-key"
        path.write_bytes(key.export_private_key())
        os.chmod(path, 0o600)
        name = self.job.resource_name
        await aws.create_then_release(
            cleanup, f"key pair {name}",
            lambda: self.job.ec2.import_key_pair(KeyName=name, PublicKeyMaterial=key.export_public_key(),
                                                 TagSpecifications=self.job.tag_specs("key-pair")),
            lambda _made: self.job.ec2.delete_key_pair(KeyName=name))
        self.job.key_name, self.job.private_key = name, str(path)


@dataclass
class SecurityGroup:
    """A temporary group open on the SSH port to the caller's address only (or to ssh_cidrs)."""

    job: Ec2Run
    name: str = "security group"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config, ssh = self.job.config, state.build.source.ssh
        if config.security_group_ids:
            self.job.security_groups = list(config.security_group_ids)
            return
        cidrs = list(config.ssh_cidrs) or [await asyncio.to_thread(aws.caller_cidr, config.checkip_url)]
        vpc = config.vpc_id or await self._subnet_vpc()
        ec2, name = self.job.ec2, self.job.resource_name
        made = await aws.create_then_release(
            cleanup, f"security group {name}",
            lambda: ec2.create_security_group(GroupName=name, Description=f"recipe build {self.job.build.info.id}: "
                                              "SSH from the builder", TagSpecifications=self.job.tag_specs(
                                                  "security-group"), **({"VpcId": vpc} if vpc else {})),
            lambda group: _delete_group(ec2, group["GroupId"]))
        group_id = made["GroupId"]
        port = 22 if ssh.host else ssh.port   # with an ssh.host override, ssh.port is the forward's, not sshd's
        ranges = [{"CidrIp": c} for c in cidrs if ":" not in c]
        ranges6 = [{"CidrIpv6": c} for c in cidrs if ":" in c]
        await aws.call("AuthorizeSecurityGroupIngress", ec2.authorize_security_group_ingress, GroupId=group_id,
                       IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": ranges,
                                       "Ipv6Ranges": ranges6}])
        state.events.emit("aws", msg=f"security group {group_id}: port {port} open to {', '.join(cidrs)}")
        self.job.security_groups = [group_id]

    async def _subnet_vpc(self) -> str | None:
        if not self.job.config.subnet_id:
            return None             # the default VPC
        subnets = await aws.call("DescribeSubnets", self.job.ec2.describe_subnets,
                                 SubnetIds=[self.job.config.subnet_id])
        return subnets["Subnets"][0]["VpcId"]


def _delete_group(ec2: Any, group_id: str, attempts: int = 24) -> None:
    """Blocking. A group stays in use for a while after its instance is terminated (DependencyViolation)."""
    for attempt in range(attempts):
        try:
            ec2.delete_security_group(GroupId=group_id)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] != "DependencyViolation" or attempt == attempts - 1:
                raise
            time.sleep(5)


@dataclass
class LaunchInstance:
    job: Ec2Run
    name: str = "launch instance"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config, ec2 = self.job.config, self.job.ec2
        params: dict[str, Any] = {
            "ImageId": self.job.source_image["ImageId"], "InstanceType": config.instance_type,
            "MinCount": 1, "MaxCount": 1, "KeyName": self.job.key_name,
            "SecurityGroupIds": self.job.security_groups,
            "TagSpecifications": self.job.tag_specs("instance", "volume", name=f"recipe {self.job.build.info.name}"),
            "InstanceInitiatedShutdownBehavior": "stop"}
        if config.subnet_id:
            params["SubnetId"] = config.subnet_id
        if config.iam_instance_profile:
            key = "Arn" if config.iam_instance_profile.startswith("arn:") else "Name"
            params["IamInstanceProfile"] = {key: config.iam_instance_profile}
        if config.user_data is not None:
            params["UserData"] = config.user_data
        params["BlockDeviceMappings"] = [root_mapping(self.job.source_image, config.root_volume)]

        async def terminate(reservation: dict[str, Any]) -> None:
            instance_id = reservation["Instances"][0]["InstanceId"]
            await aws.call("TerminateInstances", ec2.terminate_instances, InstanceIds=[instance_id])
            await aws.wait_instance(ec2, instance_id, {"terminated"}, config.instance_timeout, config.poll_delay)

        reservation = await aws.create_then_release(cleanup, "instance (terminated and waited for)",
                                                    lambda: ec2.run_instances(**params), terminate)
        instance_id = reservation["Instances"][0]["InstanceId"]
        state.events.emit("aws", msg=f"launched {instance_id} ({config.instance_type}) in {config.region}")
        self.job.instance = await aws.wait_instance(ec2, instance_id, {"running"}, config.instance_timeout,
                                                    config.poll_delay)


def root_mapping(source_image: dict[str, Any], volume: Any) -> dict[str, Any]:
    """The root device of the source AMI, with the size and type asked for (the size at least the source's)."""
    device = source_image.get("RootDeviceName", "/dev/xvda")
    source = next((m.get("Ebs", {}) for m in source_image.get("BlockDeviceMappings", [])
                   if m.get("DeviceName") == device), {})
    ebs: dict[str, Any] = {"VolumeType": volume.type, "DeleteOnTermination": True}
    size = max(volume.size or 0, source.get("VolumeSize") or 0)
    if size:
        ebs["VolumeSize"] = size
    return {"DeviceName": device, "Ebs": ebs}


class ConnectInstance(Connect):
    """SSH to the instance, or to ssh.host/ssh.port when given (a bastion's forward, a port forward).
    The host key comes from the console output when the instance has printed it."""

    def __init__(self, run: Ec2Run):
        super().__init__(timeout=run.build.source.ssh.connect_timeout)
        self.job = run
        self.known_hosts: str | None = None       # written from the console's host keys

    def address(self) -> str | None:
        instance = self.job.instance
        return {"public_ip": instance.get("PublicIpAddress"), "private_ip": instance.get("PrivateIpAddress"),
                "public_dns": instance.get("PublicDnsName")}[self.job.config.ssh_interface]

    def target(self, state: BuildState) -> Endpoint:
        ssh = state.build.source.ssh
        host = ssh.host or self.address()
        if not host:
            raise BuildError(f"instance {self.job.instance['InstanceId']} has no {self.job.config.ssh_interface}",
                             hint="use ssh_interface: private_ip, a subnet that gives public addresses, "
                                  "or ssh.host for a forward")
        pinned = ssh.host_key or ssh.known_hosts
        return Endpoint(host=host, port=ssh.port, user=ssh.user, private_key_file=self.job.private_key,
                        host_key=ssh.host_key, known_hosts=ssh.known_hosts if pinned else self.known_hosts)

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        ssh = state.build.source.ssh
        if not (ssh.host_key or ssh.known_hosts):
            self.known_hosts = await self._known_hosts_from_console(state)
        await super().run(state, cleanup)

    async def _known_hosts_from_console(self, state: BuildState) -> str | None:
        keys = await self._console_host_keys(state)
        if not keys:
            return None
        host = self.target(state).host
        assert state.work_dir
        path = state.work_dir / "known_hosts"
        port = state.build.source.ssh.port
        patterns = f"{host},[{host}]:{port}"
        path.write_text("".join(f"{patterns} {key}\n" for key in keys))
        return str(path)

    async def _console_host_keys(self, state: BuildState) -> list[str]:
        """cloud-init prints the host keys late in the boot, about when sshd answers: the console is read
        until they are there or host_key_wait is over. Without them the build goes on unverified, warned."""
        instance_id = self.job.instance["InstanceId"]
        wait = self.job.config.host_key_wait
        keys: list[str] = []
        latest = {"Latest": True}        # the output of now, not of the last capture; Nitro instances only

        async def printed() -> bool:
            nonlocal latest
            try:
                answer = await aws.call("GetConsoleOutput", self.job.ec2.get_console_output,
                                        InstanceId=instance_id, **latest)
            except aws.AwsError as error:
                if not (latest and error.code == "UnsupportedOperation"):
                    raise
                latest = {}
                return await printed()
            keys[:] = aws.host_keys_from_console(answer.get("Output", ""))
            return bool(keys)

        try:
            if await aws.poll_until(printed, wait, self.job.config.poll_delay, CONSOLE_MAX_DELAY):
                return keys
        except aws.AwsError as error:    # e.g. no ec2:GetConsoleOutput permission: the build can still go on
            state.events.emit("warning", msg=f"{error}; the host key of {instance_id} is not verified")
            return []
        state.events.emit("warning", msg=f"{instance_id} did not print its SSH host keys on the console "
                                         f"within {wait:g}s (host_key_wait); its host key is not verified")
        return []


@dataclass
class StopInstance:
    """Close SSH and stop the instance through the API, so the image is taken from a quiet disk."""

    job: Ec2Run
    name: str = "stop instance"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        if state.connection:
            await state.connection.close()
            state.connection = None
        instance_id = self.job.instance["InstanceId"]
        await aws.call("StopInstances", self.job.ec2.stop_instances, InstanceIds=[instance_id])
        await aws.wait_instance(self.job.ec2, instance_id, {"stopped"}, self.job.config.instance_timeout,
                                self.job.config.poll_delay)


@dataclass
class CreateImage:
    job: Ec2Run
    name: str = "create image"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config, ec2 = self.job.config, self.job.ec2
        await force_deregister(self.job, config.region, state)
        params: dict[str, Any] = {
            "InstanceId": self.job.instance["InstanceId"], "Name": self.job.ami_name,
            "Description": self.job.description,
            "BlockDeviceMappings": [root_mapping(self.job.source_image, config.root_volume)],
            "TagSpecifications": self.job.tag_specs("image", extra=config.tags, name=self.job.ami_name)}
        made = await aws.create_then_release(
            cleanup, f"image {self.job.ami_name} in {config.region} (the build failed)",
            lambda: ec2.create_image(**params), lambda image: aws.deregister_with_snapshots(ec2, image["ImageId"]),
            only_on_failure=True)
        await finish_image(self.job, config.region, made["ImageId"], state)


async def finish_image(run: Ec2Run, region: str, image_id: str, state: BuildState) -> None:
    """Wait for an image to be available, then tag its snapshots (images are tagged as they are made)."""
    ec2, config = run.clients[region], run.config
    state.events.emit("aws", msg=f"waiting for {image_id} in {region}")
    image = await aws.wait_image(ec2, image_id, config.ami_timeout, config.poll_delay)
    snapshots = aws.snapshots_of(image)
    tags = aws.tag_list(run.tags(config.tags, name=run.ami_name))
    await aws.call("CreateTags", ec2.create_tags, Resources=[image_id, *snapshots], Tags=tags)
    run.images[region], run.snapshots[region] = image_id, snapshots
    state.events.emit("aws", msg=f"{image_id} available in {region}")


async def force_deregister(run: Ec2Run, region: str, state: BuildState) -> None:
    if not run.config.force_deregister:
        return
    ec2 = run.clients[region]
    for image in await aws.call("DescribeImages", aws.images_named, ec2, run.ami_name):
        await aws.call("DeregisterImage", aws.deregister_with_snapshots, ec2, image["ImageId"])
        state.events.emit("aws", msg=f"force_deregister: removed {image['ImageId']} in {region}")


@dataclass
class CopyToRegions:
    job: Ec2Run
    name: str = "copy to regions"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        await asyncio.gather(*(self._copy(region, state, cleanup) for region in self.job.config.regions))

    async def _copy(self, region: str, state: BuildState, cleanup: Cleanup) -> None:
        config, ec2 = self.job.config, self.job.clients[region]
        await force_deregister(self.job, region, state)
        made = await aws.create_then_release(
            cleanup, f"image copy {self.job.ami_name} in {region} (the build failed)",
            lambda: ec2.copy_image(SourceImageId=self.job.images[config.region], SourceRegion=config.region,
                                   Name=self.job.ami_name, Description=self.job.description),
            lambda image: aws.deregister_with_snapshots(ec2, image["ImageId"]), only_on_failure=True)
        await finish_image(self.job, region, made["ImageId"], state)


@dataclass
class ShareAndTag:
    """Launch permissions on every copy, and create-volume permissions on their snapshots."""

    job: Ec2Run
    name: str = "share"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        share = self.job.config.share
        if not share:
            return
        grants = ([{"UserId": u} for u in share.users] + [{"Group": g} for g in share.groups]
                  + [{"OrganizationArn": a} for a in share.org_arns]
                  + [{"OrganizationalUnitArn": a} for a in share.ou_arns])
        for region, image_id in self.job.images.items():
            ec2 = self.job.clients[region]
            await aws.call("ModifyImageAttribute", ec2.modify_image_attribute, ImageId=image_id,
                           LaunchPermission={"Add": grants})
            if share.users or share.groups:   # snapshots take accounts and "all", not organizations
                for snapshot in self.job.snapshots[region]:
                    await aws.call("ModifySnapshotAttribute", ec2.modify_snapshot_attribute, SnapshotId=snapshot,
                                   Attribute="createVolumePermission", OperationType="add",
                                   **({"UserIds": list(share.users)} if share.users else {}),
                                   **({"GroupNames": list(share.groups)} if share.groups else {}))
            state.events.emit("aws", msg=f"shared {image_id} in {region}")


@dataclass
class Record:
    """<build>.ami.json (the AMI id per region, for the next step of a pipeline), then manifest/checksum."""

    job: Ec2Run
    name: str = "record"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        config = self.job.config
        output = state.options.output_dir / state.build.info.name
        output.mkdir(parents=True, exist_ok=True)
        record = {"name": self.job.ami_name, "region": config.region, "images": self.job.images,
                  "snapshots": self.job.snapshots, "source_ami": self.job.source_image["ImageId"],
                  "build_id": state.build.info.id}
        path = output / f"{state.build.info.name}.ami.json"
        with atomic_path(path) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n")
        made = [Artifact(path, "ami", variant=config.region)]
        if state.build.exports:
            firmware = "uefi" if self.job.source_image.get("BootMode") == "uefi" else "bios"
            context = export_context(state, machine_shape(state, cpus=0, memory_mib=0, firmware=firmware))
            made = await Chain(state.build.exports, context, given=tuple(made)).run()
        state.artifacts += [artifact.path for artifact in made]

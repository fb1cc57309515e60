"""ami: a local build's disk as an EC2 AMI, uploaded straight into an EBS snapshot (EBS direct APIs).

  exports:
    - ami: {name: "web-{{ build.id }}", region: eu-west-1}
    - ami: {name: "web-{{ build.id }}", region: eu-west-1, upload: s3, bucket: my-imports}

The disk is converted to a sparse raw file, its data blocks are put into a
new snapshot in parallel (modules.aws.ebs_direct), and the snapshot is
registered as an image (architecture, boot mode, ENA, root device). No S3
bucket or vmimport role is needed, and it is minutes faster than ImportImage.
The snapshot and the image carry the tags recipe:build-id and recipe:recipe,
so `recipe sweep` can find what a killed run left; a failed export deletes
what it made. The artifact is <name>.ami.json: the image id, region and
snapshot, for the next step of a pipeline.

With upload: s3 the snapshot is made the classic way instead
(modules.aws.s3_import): the whole raw disk goes to s3://bucket/key_prefix...
by multipart upload, EC2 ImportSnapshot turns it into a snapshot (this needs
the vmimport service role), and the object is deleted whatever happens. It is
for accounts where the EBS direct APIs are not allowed.
"""
from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.artifacts.export import Artifact, ExportContext, Exporter
from engine.errors import BuildError
from engine.process import atomic_path, run_tool
from engine.recipe.schema import HintedInvalid
from modules.aws import s3_sweep  # noqa: F401  (registers the "s3" sweeper)
from modules.aws import clients, ebs_direct, s3_import
from modules.aws.rules import AMI_NAME, REGION, VOLUME_TYPES
from modules.exports.vmdk import virtual_size

BUCKET_RULE = "an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens"
BUCKET = vol.Match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", msg=BUCKET_RULE)


@dataclass(frozen=True)
class AmiConfig:
    name: str
    region: str
    description: str = ""
    architecture: str = "x86_64"
    boot_mode: str | None = None          # legacy-bios | uefi; default from the source's firmware
    ena_support: bool = True
    root_device_name: str = "/dev/xvda"
    volume_type: str = "gp3"
    volume_size: int | None = None        # GiB; default the disk's size, rounded up
    tags: dict[str, str] = field(default_factory=dict)
    profile: str | None = None
    endpoint_url: str | None = None
    concurrency: int = 16
    upload: str = "ebs-direct"            # ebs-direct | s3 (multipart upload, then ImportSnapshot)
    bucket: str | None = None             # upload: s3 only, and then required
    key_prefix: str = "recipe/"
    import_timeout: float = 3600.0        # seconds ImportSnapshot may take


class Ami(Exporter, name="ami"):
    description = ("an EC2 AMI from the disk: EBS direct upload into a snapshot (or with upload: s3, S3 multipart "
                   "upload and ImportSnapshot), then RegisterImage")
    schema = {
        vol.Required("name"): AMI_NAME,
        vol.Required("region"): REGION,
        vol.Optional("description", default=""): str,
        vol.Optional("architecture", default="x86_64"): vol.In(["x86_64", "arm64"]),
        vol.Optional("boot_mode", default=None): vol.Any(None, vol.In(["legacy-bios", "uefi"])),
        vol.Optional("ena_support", default=True): bool,
        vol.Optional("root_device_name", default="/dev/xvda"): str,
        vol.Optional("volume_type", default="gp3"): vol.In(VOLUME_TYPES),
        vol.Optional("volume_size", default=None): vol.Any(None, vol.All(int, vol.Range(min=1, max=65536))),
        vol.Optional("tags", default={}): {str: vol.Coerce(str)},
        vol.Optional("profile", default=None): vol.Any(None, str),
        vol.Optional("endpoint_url", default=None): vol.Any(None, vol.Url()),
        vol.Optional("concurrency", default=16): vol.All(int, vol.Range(min=1, max=64)),
        vol.Optional("upload", default="ebs-direct"): vol.In(["ebs-direct", "s3"]),
        vol.Optional("bucket", default=None): vol.Any(None, BUCKET, msg=BUCKET_RULE),
        vol.Optional("key_prefix", default="recipe/"): str,
        vol.Optional("import_timeout", default=3600.0): vol.All(vol.Any(int, float), vol.Range(min=1),
                                                               vol.Coerce(float)),
    }
    Config = AmiConfig
    consumes = frozenset({"raw"})
    produces = frozenset({"ami"})

    @classmethod
    def check(cls, validated: dict[str, Any]) -> dict[str, Any]:
        if validated.get("upload") == "s3" and not validated.get("bucket"):
            raise HintedInvalid("bucket is required when upload is s3", path=["upload"],
                                hint="add bucket: <an S3 bucket in the export's region that the vmimport "
                                     "role can read>, or drop upload: s3 to upload by EBS direct")
        return validated

    async def run(self, config: AmiConfig, ctx: ExportContext) -> list[Artifact]:
        async def convert(path: Path) -> None:
            await run_tool("qemu-img", "convert", "-O", "raw", "-f", ctx.disk_format, ctx.disk, path,
                           what="qemu-img convert to raw (ami)")
        async with ctx.reused_or_converted("raw", convert) as raw:
            size = await virtual_size(raw, "raw")
            record = await asyncio.to_thread(make_image, config, ctx, raw, size)
        final = ctx.output_dir / f"{ctx.build_name}.ami.json"
        with atomic_path(final) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n")
        return [Artifact(final, "ami", variant=config.region)]


def recipe_tags(config: AmiConfig, ctx: ExportContext) -> list[dict[str, str]]:
    tags = {"Name": config.name, **config.tags,
            "recipe:build-id": ctx.build.info.id if ctx.build else ctx.build_name,
            "recipe:recipe": ctx.recipe.name if ctx.recipe else ctx.build_name}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def make_image(config: AmiConfig, ctx: ExportContext, raw: Path, size: int) -> dict[str, Any]:
    """Snapshot and image, in a thread; on any failure both are removed before the error goes on."""
    ec2 = clients.client("ec2", config.region, config.profile, config.endpoint_url)
    volume_gib = max(config.volume_size or 0, -(-size // 1024 ** 3))
    tags = recipe_tags(config, ctx)
    description = config.description or f"recipe {ctx.build_name}"

    def progress(done: int, total: int) -> None:
        ctx.events.emit("progress", phase="ami upload", done=done, total=total)

    if config.upload == "s3":
        # no snapshot exists until the import completes; s3_import cleans up its own object and task
        snapshot_id, sent = _snapshot_by_s3(config, ctx, ec2, raw, description, tags, progress)
    else:
        ebs = clients.client("ebs", config.region, config.profile, config.endpoint_url)
        snapshot_id = ebs.start_snapshot(VolumeSize=volume_gib, Tags=tags, Timeout=60,
                                         Description=description)["SnapshotId"]
    image_id = None
    try:
        if config.upload == "s3":
            ec2.create_tags(Resources=[snapshot_id], Tags=tags)    # the import tagged its task, not the snapshot
        else:
            uploaded = ebs_direct.fill(ebs, snapshot_id, raw, volume_gib=volume_gib, concurrency=config.concurrency,
                                        cancel=ctx.cancel, progress=progress)
            sent = {"upload": "ebs-direct", "blocks_sent": uploaded.blocks_sent,
                    "blocks_total": uploaded.blocks_total}
        ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot_id],
                                                  WaiterConfig={"Delay": 5, "MaxAttempts": 120})
        image_id = ec2.register_image(**register_arguments(config, ctx, snapshot_id, volume_gib))["ImageId"]
        ec2.create_tags(Resources=[image_id], Tags=tags)
    except BaseException:
        _remove(ec2, image_id, snapshot_id, ctx)
        raise
    ctx.events.emit("ami.registered", image_id=image_id, region=config.region, snapshot_id=snapshot_id, **sent)
    return {"image_id": image_id, "region": config.region, "name": config.name, "snapshot_id": snapshot_id,
            "volume_size_gib": volume_gib, **sent}


def _snapshot_by_s3(config: AmiConfig, ctx: ExportContext, ec2: Any, raw: Path, description: str,
                    tags: list[dict[str, str]], progress: s3_import.Progress) -> tuple[str, dict[str, Any]]:
    """The disk to S3, ImportSnapshot of it: the snapshot id. The object is deleted however it ends."""
    if not config.bucket:                 # configure() requires it; an AmiConfig made in code may not have it
        raise BuildError("the ami export has upload: s3 but no bucket", hint="set bucket")
    s3 = clients.client("s3", config.region, config.profile, config.endpoint_url)
    build_id = next(t["Value"] for t in tags if t["Key"] == "recipe:build-id")
    key = f"{config.key_prefix}{build_id}-{secrets.token_hex(4)}.raw"   # two runs never share an object
    try:
        uploaded = s3_import.upload(s3, config.bucket, key, raw, concurrency=config.concurrency, cancel=ctx.cancel,
                                     progress=progress,
                                     tags={t["Key"]: t["Value"] for t in tags if t["Key"].startswith("recipe:")})

        def imported(done: int, total: int) -> None:
            ctx.events.emit("progress", phase="ami import", done=done, total=total)
        snapshot_id = s3_import.import_snapshot(ec2, config.bucket, key, description=description, tags=tags,
                                                 timeout=config.import_timeout, cancel=ctx.cancel, progress=imported)
    finally:
        try:
            s3.delete_object(Bucket=config.bucket, Key=key)
        except Exception as error:
            ctx.events.emit("warning", msg=f"could not delete s3://{config.bucket}/{key} after the ami export "
                                           f"({error}); it carries the tag recipe:build-id")
    return snapshot_id, {"upload": "s3", "bucket": config.bucket, "key": key, "parts": uploaded.parts}


def register_arguments(config: AmiConfig, ctx: ExportContext, snapshot_id: str, volume_gib: int) -> dict[str, Any]:
    boot_mode = config.boot_mode or ("uefi" if ctx.machine.firmware == "uefi" else "legacy-bios")
    return {
        "Name": config.name,
        "Description": config.description or f"built by recipe: {ctx.build_name}",
        "Architecture": config.architecture,
        "RootDeviceName": config.root_device_name,
        "VirtualizationType": "hvm",
        "EnaSupport": config.ena_support,
        "BootMode": boot_mode,
        "BlockDeviceMappings": [{"DeviceName": config.root_device_name,
                                 "Ebs": {"SnapshotId": snapshot_id, "VolumeSize": volume_gib,
                                         "VolumeType": config.volume_type, "DeleteOnTermination": True}}],
    }


def _remove(ec2: Any, image_id: str | None, snapshot_id: str, ctx: ExportContext) -> None:
    """Best effort: a failed export leaves no half-made image or snapshot; the error that failed it goes on."""
    try:
        if image_id:
            ec2.deregister_image(ImageId=image_id)
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    except Exception as error:
        ctx.events.emit("warning", msg=f"could not remove {image_id or ''} {snapshot_id} after the failed ami "
                                       f"export ({error}); they carry the tag recipe:build-id")

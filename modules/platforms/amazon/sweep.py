"""The AWS sweeper: EC2 instances, AMIs, snapshots, key pairs and security groups tagged recipe:build-id.

Removed in the order that lets each go: instances first (terminated and
waited for, since their key pair and security group are in use until then),
then images before their snapshots, then key pairs and security groups.
"""
from __future__ import annotations

from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from engine.leftovers.sweep import BUILD_ID_TAG, Leftover, Sweeper, SweepOptions, build_age, old_enough
from modules.aws import clients
from modules.aws.ec2 import deregister_with_snapshots

TAGGED = [{"Name": "tag-key", "Values": [BUILD_ID_TAG]}]
ORDER = ("instance", "image", "snapshot", "key pair", "security group")


def _build_id(tags: list[dict[str, str]] | None) -> str:
    return next((t["Value"] for t in tags or () if t["Key"] == BUILD_ID_TAG), "")


class AwsSweeper(Sweeper, name="aws"):
    def _ec2(self, options: SweepOptions, region: str | None) -> Any:
        return clients.client("ec2", region, options.profile, options.endpoint_url)  # type: ignore[arg-type]

    def regions(self, options: SweepOptions) -> list[str | None]:
        return list(options.regions) or [None]          # None: the configured default region

    def find(self, options: SweepOptions) -> list[Leftover]:
        found = []
        for region in self.regions(options):
            ec2 = self._ec2(options, region)
            where = ec2.meta.region_name
            for kind, id_, tags in self._tagged(ec2):
                build_id = _build_id(tags)
                leftover = Leftover(kind, id_, where, build_id, build_age(build_id))
                if old_enough(leftover, options):
                    found.append(leftover)
        return sorted(found, key=lambda l: (l.where, ORDER.index(l.kind)))

    def _tagged(self, ec2: Any) -> list[tuple[str, str, list]]:
        states = {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
        items = [("instance", i["InstanceId"], i.get("Tags"))
                 for page in ec2.get_paginator("describe_instances").paginate(Filters=TAGGED + [states])
                 for r in page["Reservations"] for i in r["Instances"]]
        items += [("image", i["ImageId"], i.get("Tags"))
                  for i in ec2.describe_images(Owners=["self"], Filters=TAGGED)["Images"]]
        items += [("snapshot", s["SnapshotId"], s.get("Tags"))
                  for page in ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"], Filters=TAGGED)
                  for s in page["Snapshots"]]
        items += [("key pair", k["KeyName"], k.get("Tags"))     # by name: every EC2 (and moto) deletes by name
                  for k in ec2.describe_key_pairs(Filters=TAGGED)["KeyPairs"]]
        items += [("security group", g["GroupId"], g.get("Tags"))
                  for g in ec2.describe_security_groups(Filters=TAGGED)["SecurityGroups"]]
        return items

    def remove(self, options: SweepOptions, leftovers: list[Leftover]) -> list[tuple[Leftover, str]]:
        failed = []
        by_region: dict[str, list[Leftover]] = {}
        for leftover in leftovers:
            by_region.setdefault(leftover.where, []).append(leftover)
        for region, items in by_region.items():
            ec2 = self._ec2(options, region)
            instances = [l.id for l in items if l.kind == "instance"]
            if instances:
                failed += self._try([l for l in items if l.kind == "instance"],
                                    lambda: self._terminate(ec2, instances))
            removers: dict[str, Callable[[str], Any]] = {
                # its snapshots too: a build killed before tagging them leaves them untagged
                "image": lambda id_: deregister_with_snapshots(ec2, id_),
                "snapshot": lambda id_: ec2.delete_snapshot(SnapshotId=id_),
                "key pair": lambda id_: ec2.delete_key_pair(KeyName=id_),
                "security group": lambda id_: ec2.delete_security_group(GroupId=id_)}
            for leftover in items:
                if leftover.kind in removers:
                    failed += self._try([leftover], lambda l=leftover: removers[l.kind](l.id))
        return failed

    @staticmethod
    def _terminate(ec2: Any, instances: list[str]) -> None:
        ec2.terminate_instances(InstanceIds=instances)
        ec2.get_waiter("instance_terminated").wait(InstanceIds=instances, WaiterConfig={"Delay": 5, "MaxAttempts": 120})

    @staticmethod
    def _try(leftovers: list[Leftover], action: Callable[[], Any]) -> list[tuple[Leftover, str]]:
        try:
            action()
        except ClientError as error:
            if error.response["Error"]["Code"].endswith(".NotFound"):   # gone with its image already
                return []
            return [(leftover, str(error)) for leftover in leftovers]
        except BotoCoreError as error:
            return [(leftover, str(error)) for leftover in leftovers]
        return []

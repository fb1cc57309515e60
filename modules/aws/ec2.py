"""EC2 calls the amazon steps share: errors users can read, polling with backoff, images and their snapshots.

boto3 is blocking, so every call runs in a thread; polling sleeps in the event
loop, so Ctrl-C stops a wait at once and the cleanups run.
"""
from __future__ import annotations

import asyncio
import ipaddress
import re
import time
import urllib.request
from typing import Any, Awaitable, Callable, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from engine.build.runner import Cleanup
from engine.errors import BuildError

T = TypeVar("T")
MAX_POLL_DELAY = 60.0
HOST_KEYS = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.S)
HINTS = {
    "AuthFailure": "check the AWS credentials (profile, environment or instance role)",
    "UnauthorizedOperation": "the credentials lack an IAM permission for this call",
    "InvalidAMIID.NotFound": "the source AMI does not exist in this region, or is not shared with this account",
    "InsufficientInstanceCapacity": "try another instance_type or subnet (availability zone)",
    "InvalidKeyPair.NotFound": "key_pair must name a key pair that exists in the build's region",
    "InvalidSubnetID.NotFound": "subnet_id must exist in the build's region",
}


class AwsError(BuildError):
    """An error AWS answered; code is AWS's (UnauthorizedOperation, ...), for the few callers that handle one."""

    def __init__(self, what: str, code: str, message: str):
        super().__init__(f"{what} failed: {code}: {message}", hint=HINTS.get(code, "see the AWS error above"))
        self.code = code


async def call(what: str, method: Callable[..., T], *args: Any, **params: Any) -> T:
    """One AWS call in a thread; an AWS error becomes a BuildError naming the call (credentials never appear)."""
    try:
        return await asyncio.to_thread(method, *args, **params)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise AwsError(what, code, error.response.get("Error", {}).get("Message", str(error))) from None
    except BotoCoreError as error:
        raise BuildError(f"{what} failed: {error}", hint="check the region, endpoint_url and network") from None


async def create_then_release(cleanup: Cleanup, what: str, create: Callable[[], T],
                              release: Callable[[T], Any], only_on_failure: bool = False) -> T:
    # release is blocking (run in a thread) or a coroutine function
    """A create call with its release registered first: if Ctrl-C lands during the call, the thread still
    finishes, and the cleanup waits for what it made and releases it; nothing is left unrecorded."""
    made = asyncio.ensure_future(call(what, create))

    async def release_made() -> None:
        try:
            value = await made
        except (BuildError, asyncio.CancelledError):
            return                                  # nothing was made
        if asyncio.iscoroutinefunction(release):
            await release(value)
        else:
            await asyncio.to_thread(release, value)

    cleanup.push(what, release_made, only_on_failure=only_on_failure)
    return await asyncio.shield(made)


async def poll_until(check: Callable[[], Awaitable[bool]], timeout: float, first_delay: float,
                     max_delay: float = MAX_POLL_DELAY) -> bool:
    """Call check until it says done (True), or until the next call would come after timeout (False);
    the delay doubles up to max_delay. check raises to stop early."""
    deadline = time.monotonic() + timeout
    delay = first_delay
    while not await check():
        if time.monotonic() + delay > deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
    return True


async def poll(what: str, check: Callable[[], Awaitable[bool]], timeout: float, first_delay: float) -> None:
    """poll_until, where running out of time fails the build."""
    if not await poll_until(check, timeout, first_delay):
        raise BuildError(f"timed out after {timeout:g}s waiting for {what}",
                         hint="raise the timeout (ami_timeout, instance_timeout) if AWS is just slow")


async def wait_instance(ec2: Any, instance_id: str, states: set[str], timeout: float,
                        first_delay: float) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        answer = await call("DescribeInstances", ec2.describe_instances, InstanceIds=[instance_id])
        found.update(answer["Reservations"][0]["Instances"][0])
        state = found["State"]["Name"]
        if state == "terminated" and "terminated" not in states:
            reason = found.get("StateReason", {}).get("Message", "no reason given")
            raise BuildError(f"instance {instance_id} terminated: {reason}",
                             hint="see the instance's console output in the EC2 console")
        return state in states

    await poll(f"instance {instance_id} to be {'/'.join(sorted(states))}", reached, timeout, first_delay)
    return found


async def wait_image(ec2: Any, image_id: str, timeout: float, first_delay: float) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def available() -> bool:
        images = (await call("DescribeImages", ec2.describe_images, ImageIds=[image_id]))["Images"]
        if images:
            found.update(images[0])
        state = found.get("State", "pending")
        if state in ("failed", "invalid", "error", "deregistered"):
            reason = found.get("StateReason", {}).get("Message", "no reason given")
            raise BuildError(f"image {image_id} is {state}: {reason}", hint="see the image in the EC2 console")
        return state == "available"

    await poll(f"image {image_id} in {ec2.meta.region_name} to be available", available, timeout, first_delay)
    return found


def snapshots_of(image: dict[str, Any]) -> list[str]:
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")]


def deregister_with_snapshots(ec2: Any, image_id: str) -> None:
    """Blocking: an image and the snapshots behind it (an image's snapshots cannot go before it does)."""
    images = ec2.describe_images(ImageIds=[image_id])["Images"]
    ec2.deregister_image(ImageId=image_id)
    for snapshot in snapshots_of(images[0]) if images else []:
        ec2.delete_snapshot(SnapshotId=snapshot)


def images_named(ec2: Any, name: str) -> list[dict[str, Any]]:
    return ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]


def host_keys_from_console(output: str) -> list[str]:
    """The host public keys cloud-init prints on the console ("-----BEGIN SSH HOST KEY KEYS-----")."""
    match = HOST_KEYS.search(output or "")
    if not match:
        return []
    return [" ".join(line.split()[:2]) for line in match.group(1).splitlines() if len(line.split()) >= 2]


def caller_cidr(url: str, timeout: float = 10.0) -> str:
    """Blocking: the address AWS sees this machine come from, as a /32 (or /128), like Packer's checkip."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            text = answer.read(100).decode().strip()
        return str(ipaddress.ip_network(text))
    except (OSError, ValueError) as error:
        raise BuildError(f"could not learn this machine's public address from {url}: {error}",
                         hint="set ssh_cidrs (e.g. [203.0.113.7/32]) or security_group_ids") from None


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]

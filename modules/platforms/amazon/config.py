"""An amazon source's options, validated and frozen: what every step of an amazon build reads."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceAmiQuery:
    """The newest (most_recent) or only image matching filters, owned by owners."""

    filters: dict[str, list[str]]
    owners: tuple[str, ...] = ()
    most_recent: bool = False


@dataclass(frozen=True)
class RootVolume:
    size: int | None = None          # GiB; None keeps the source AMI's
    type: str = "gp3"


@dataclass(frozen=True)
class Sharing:
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()      # "all" makes the image public
    org_arns: tuple[str, ...] = ()
    ou_arns: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.users or self.groups or self.org_arns or self.ou_arns)


@dataclass(frozen=True)
class AmazonConfig:
    region: str
    source_ami: str | SourceAmiQuery
    ami_name: str | None = None                  # None: unique per build, <recipe>-<source>-<build id>
    ami_description: str = ""
    instance_type: str = "t3.micro"
    subnet_id: str | None = None
    vpc_id: str | None = None
    security_group_ids: tuple[str, ...] = ()     # given: no temporary group is made
    ssh_cidrs: tuple[str, ...] = ()              # empty: the caller's address /32
    key_pair: str | None = None                  # given: no temporary key pair; ssh.private_key_file is its key
    ssh_interface: str = "public_ip"
    iam_instance_profile: str | None = None
    root_volume: RootVolume = field(default_factory=RootVolume)
    user_data: str | None = None
    regions: tuple[str, ...] = ()
    share: Sharing = field(default_factory=Sharing)
    tags: dict[str, str] = field(default_factory=dict)          # AMI and snapshots, in every region
    run_tags: dict[str, str] = field(default_factory=dict)      # instance, volumes, key pair, security group
    force_deregister: bool = False
    ami_timeout: float = 3600.0
    poll_delay: float = 5.0                      # the first wait between polls; doubles up to 60 s
    instance_timeout: float = 900.0
    host_key_wait: float = 180.0                 # how long to wait for the host keys on the console; 0: ask once
    checkip_url: str = "https://checkip.amazonaws.com"
    profile: str | None = None
    endpoint_url: str | None = None

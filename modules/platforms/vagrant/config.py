"""A vagrant source's options, validated and frozen: what every step of a vagrant build reads."""
from __future__ import annotations

from dataclasses import dataclass

PROVIDERS = ("libvirt", "virtualbox", "vmware_desktop")
TESTED_PROVIDERS = ("libvirt",)      # the others are written for, never run here (no VirtualBox, no VMware)
CHECKSUM_TYPES = ("sha256", "sha384", "sha512")     # of those `vagrant box add --checksum-type` takes


@dataclass(frozen=True)
class Checksum:
    """`sha256:<hex>`: what `vagrant box add --checksum --checksum-type` verifies the box file against."""

    kind: str
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.hexdigest}"


@dataclass(frozen=True)
class ManagementNetwork:
    """vagrant-libvirt's management network (the one `vagrant ssh` reaches the guest on): its name, and the
    subnet it is made with when it does not exist yet."""

    name: str
    address: str | None = None


@dataclass(frozen=True)
class VagrantConfig:
    box: str | None = None                   # a box name (in VAGRANT_HOME, or of a catalog)
    box_url: str | None = None               # a box file or catalog: file://, http(s)://
    box_version: str | None = None           # with a catalog: the version (or constraint) to add
    checksum: Checksum | None = None         # of a box file
    provider: str = "libvirt"
    vagrantfile: str = ""                    # more settings, inside Vagrant.configure("2") do |config|
    cpus: int = 2
    memory: int = 1024
    accelerator: str = "auto"                # libvirt: kvm, or tcg (libvirt.driver = "qemu"); auto probes
    vagrant_home: str | None = None          # None: a private one in the build's work dir
    storage_pool: str | None = None          # libvirt.storage_pool_name
    management_network: ManagementNetwork | None = None
    libvirt_uri: str = "qemu:///system"
    insert_key: bool = False                 # config.ssh.insert_key: the image keeps the box's login key
    boot_timeout: float = 600.0              # config.vm.boot_timeout: up to SSH, under TCG too
    halt_timeout: float = 300.0              # then `vagrant halt --force`
    ssh_user: str | None = None              # ssh.user when the source gives one, else vagrant ssh-config's

    @property
    def catalog(self) -> bool:
        return catalog_url(self.box_url, self.box_version)


def catalog_url(box_url: str | None, box_version: str | None) -> bool:
    """Whether box_url is a catalog (Vagrant's box metadata JSON) rather than a box file: a version is asked
    of it, or it ends in .json."""
    return bool(box_url) and (box_version is not None or str(box_url).split("?")[0].endswith(".json"))

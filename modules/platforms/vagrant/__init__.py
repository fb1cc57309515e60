"""The vagrant platform: `vagrant up` a box, provision it over recipe's own SSH, halt it, export its disk.

  sources:
    box:
      platform: vagrant
      box_url: file:///srv/appliance-libvirt.box    # or box: recipe/appliance (in VAGRANT_HOME, or a catalog's)
      checksum: sha256:0123...                      # of a box file; a catalog (box_version:) has its own
      provider: libvirt                             # virtualbox, vmware_desktop: written for, not tested here
      vagrantfile: |                                # more settings, inside Vagrant.configure("2") do |config|
        config.vm.provider :libvirt do |libvirt|
          libvirt.graphics_type = "none"
        end
      cpus: 2
      memory: 1024
      ssh: {user: vagrant}

The steps (modules.platforms.vagrant.steps) write a Vagrantfile into the build's work dir with a private
VAGRANT_HOME beside it (unless vagrant_home is given), add the box, `vagrant up` (its destroy already on the
cleanup stack), connect where `vagrant ssh-config` says, trusting the host key on first use and pinning it,
run the tasks, `vagrant halt`, and export the machine's disk. Vagrant runs through python-vagrant and the
vagrant command; `recipe validate` runs neither.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.build.platform import Platform
from engine.build.runner import Step
from engine.build.steps import GatherFacts, MakeWorkDir, Provision
from engine.recipe.model import Build, Recipe
from engine.recipe.schema import HintedInvalid, did_you_mean, positive_number, strict, string
from modules.platforms.vagrant import sweep  # noqa: F401  (registers what `recipe sweep --local` finds)
from modules.platforms.vagrant.config import (CHECKSUM_TYPES, PROVIDERS, Checksum, ManagementNetwork,
                                              VagrantConfig, catalog_url)
from modules.platforms.vagrant.steps import (AddBox, ConnectVagrant, Export, FindDisk, Halt, Project, Up,
                                             VagrantRun)

BOX_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")
URL_SCHEMES = ("file", "http", "https")
LIBVIRT_ONLY = {"accelerator": "auto", "storage_pool": None, "management_network": None,
                "libvirt_uri": "qemu:///system"}
LIBVIRT_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def optional(validator: Any) -> Any:
    """None, or what validator makes of the value (its own message and hint, which vol.Any would replace)."""
    def validate(value: Any) -> Any:
        return None if value is None else validator(value)
    return validate


def box(value: Any) -> str:
    if not isinstance(value, str) or not BOX_NAME.match(value):
        raise HintedInvalid(f"{value!r} is not a box name", hint="e.g. box: debian/bookworm64 (org/name)")
    return value


def box_url(value: Any) -> str:
    """A box file or catalog: file://, http:// or https:// URL, or a path (relative to the recipe)."""
    if not isinstance(value, str) or not value.strip():
        raise HintedInvalid(f"{value!r} is not a box URL", hint="e.g. box_url: file:///srv/boxes/web-libvirt.box")
    scheme = value.split("://", 1)[0].lower() if "://" in value else None
    if scheme is not None and scheme not in URL_SCHEMES:
        raise HintedInvalid(f"box_url scheme {scheme!r} is not one Vagrant fetches boxes from",
                            hint="use file://, http:// or https://, or a path")
    if scheme == "file" and not value[len("file://"):].startswith("/"):
        raise HintedInvalid(f"{value!r} is not an absolute file URL",
                            hint="file:///srv/x.box (three slashes), or a path relative to the recipe: boxes/x.box")
    return value


def checksum(value: Any) -> str:
    kind, sep, digest = str(value).partition(":") if isinstance(value, str) else ("", "", "")
    if not sep or kind.lower() not in CHECKSUM_TYPES:
        raise HintedInvalid(f"{value!r} is not a box checksum",
                            hint=f"checksum: sha256:<hex> ({', '.join(CHECKSUM_TYPES)})")
    length = {"sha256": 64, "sha384": 96, "sha512": 128}[kind.lower()]
    if not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", digest):
        raise HintedInvalid(f"a {kind.lower()} checksum has {length} hex digits, this one is {digest!r}",
                            hint="sha256sum BOX gives it")
    return f"{kind.lower()}:{digest.lower()}"


def provider(value: Any) -> str:
    if value not in PROVIDERS:
        raise HintedInvalid(f"{value!r} is not a Vagrant provider recipe knows",
                            hint=did_you_mean(str(value), PROVIDERS, "use " + ", ".join(PROVIDERS)))
    return value


def libvirt_name(what: str) -> Any:
    def validate(value: Any) -> str:
        if not isinstance(value, str) or not LIBVIRT_NAME.match(value):
            raise HintedInvalid(f"{value!r} is not a libvirt {what} name", hint="letters, digits, . _ + -")
        return value
    return validate


def cidr(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise HintedInvalid(f"{value!r} is not a subnet", hint="e.g. 192.168.123.0/24") from None


def management_network(value: Any) -> dict[str, Any]:
    """A network name, or {name:, address:} (the subnet vagrant-libvirt makes it with)."""
    if isinstance(value, str):
        value = {"name": value}
    return NETWORK(value)


NETWORK = strict({vol.Required("name"): libvirt_name("network"), vol.Optional("address"): cidr}, what="option")


def libvirt_uri(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^[a-z0-9+]+://", value):
        raise HintedInvalid(f"{value!r} is not a libvirt URI", hint="e.g. qemu:///system")
    return value


SCHEMA = {
    vol.Optional("box", default=None): optional(box),
    vol.Optional("box_url", default=None): optional(box_url),
    vol.Optional("box_version", default=None): optional(string),
    vol.Optional("checksum", default=None): optional(checksum),
    vol.Optional("provider", default="libvirt"): provider,
    vol.Optional("vagrantfile", default=""): str,
    vol.Optional("cpus", default=2): vol.All(int, vol.Range(min=1, max=64)),
    vol.Optional("memory", default=1024): vol.All(int, vol.Range(min=128)),
    vol.Optional("accelerator", default="auto"): vol.In(["auto", "kvm", "tcg"]),
    vol.Optional("vagrant_home", default=None): optional(vol.Schema(str)),
    vol.Optional("storage_pool", default=None): optional(libvirt_name("storage pool")),
    vol.Optional("management_network", default=None): optional(management_network),
    vol.Optional("libvirt_uri", default="qemu:///system"): libvirt_uri,
    vol.Optional("insert_key", default=False): bool,
    vol.Optional("boot_timeout", default=600.0): positive_number,
    vol.Optional("halt_timeout", default=300.0): positive_number,
}


def is_catalog(validated: dict[str, Any]) -> bool:
    return catalog_url(validated.get("box_url"), validated.get("box_version"))


class VagrantPlatform(Platform, name="vagrant"):
    description = "a Vagrant box, up with libvirt (virtualbox, vmware_desktop: untested); exports its disk"
    host_tools = ("vagrant", "qemu-img")
    schema = SCHEMA
    Config = VagrantConfig

    @classmethod
    def check(cls, validated: dict[str, Any]) -> dict[str, Any]:
        """Rules across options, every broken one reported: a box to start from, what goes with a catalog or a
        box file, and the libvirt-only options on other providers."""
        errors: list[vol.Invalid] = []
        url = validated.get("box_url")
        if not validated.get("box") and not url:
            errors.append(HintedInvalid("a vagrant source needs box or box_url", path=["platform"],
                                        hint="box: debian/bookworm64 (in VAGRANT_HOME, or fetched by Vagrant), or "
                                             "box_url: file:///srv/web-libvirt.box"))
        if url and is_catalog(validated) and not validated.get("box"):
            errors.append(HintedInvalid("a catalog's box needs its name", path=["box_url"],
                                        hint="add box: <the catalog's name>, e.g. box: recipe/appliance"))
        if validated.get("checksum") and (not url or is_catalog(validated)):
            errors.append(HintedInvalid("a catalog carries the checksums of its boxes" if url else
                                        "checksum is of the box file box_url names, and there is no box_url",
                                        path=["checksum"], at_key=True,
                                        hint="drop checksum" if url else "add box_url (a .box file), or drop checksum"))
        if validated.get("provider", "libvirt") != "libvirt":
            for option, default in LIBVIRT_ONLY.items():
                if validated.get(option, default) != default:
                    errors.append(HintedInvalid(f"{option} applies to the libvirt provider only", path=[option],
                                                at_key=True, hint="drop it, or use provider: libvirt"))
        for option in ("host", "port"):
            if option in (validated.get("ssh") or {}):
                errors.append(HintedInvalid(f"ssh.{option} of a vagrant machine comes from vagrant ssh-config",
                                            path=["ssh", option], at_key=True, hint=f"drop ssh.{option}"))
        if errors:
            raise vol.MultipleInvalid(errors)
        # the login is ssh.user when the source gives one, else vagrant ssh-config's User (config.ssh.username):
        # vagrant, as `recipe inspect` shows it
        ssh = dict(validated.get("ssh") or {})
        return {**validated, "ssh": {"user": "vagrant", **ssh}, "ssh_user": ssh.get("user")}

    @classmethod
    def configure(cls, validated: dict[str, Any], base_dir: Path) -> VagrantConfig:
        url = validated["box_url"]
        if url and "://" not in url:                      # a path, from the recipe's folder
            url = (base_dir / Path(url).expanduser()).resolve().as_uri()
        home = validated["vagrant_home"]
        digest = validated["checksum"]
        network = validated["management_network"]
        return VagrantConfig(**{
            **validated, "box_url": url,
            "vagrant_home": str((base_dir / Path(home).expanduser()).resolve()) if home else None,
            "checksum": Checksum(*digest.split(":", 1)) if digest else None,
            "management_network": ManagementNetwork(**network) if network else None})

    def steps(self, recipe: Recipe, build: Build) -> list[Step]:
        run = VagrantRun(build=build, config=build.source.config)
        steps: list[Step] = [MakeWorkDir(), Project(run)]
        if run.config.box_url:
            steps.append(AddBox(run))
        return steps + [Up(run), ConnectVagrant(run), GatherFacts(), Provision(), Halt(run), FindDisk(run),
                        Export(run)]

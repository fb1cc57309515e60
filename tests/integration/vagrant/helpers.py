"""What the Vagrant tests share: names, the box files' shape, making boxes by hand, the vagrant command."""
from __future__ import annotations

import hashlib
import io
import json
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.libvirt import tool

PREFIX = "recipe-test-vagrant-"
POOL = PREFIX + "pool"
NETWORK = PREFIX + "net"
SUBNET = "192.168.123.0/24"
POOL_DIR = Path("/var/lib/libvirt/images") / POOL
# the guest's serial console, for the error message of a boot that never reaches SSH; QEMU opens it as
# libvirt-qemu, which cannot enter pytest's temporary directories
CONSOLE_LOG = Path("/var/log/libvirt/qemu") / f"{PREFIX}default-console.log"
QEMU_LOG = Path("/var/log/libvirt/qemu") / f"{PREFIX}default.log"     # libvirt's log of the domain's QEMU
DATA = Path(__file__).parent / "data"
RECIPE = str(Path(sys.executable).parent / "recipe")
TOOLS = ("vagrant", "virsh", "libvirtd", "virtlogd", "dnsmasq", "iptables", "qemu-img", "qemu-system-x86_64")
DEBS_HINT = "`make deps` installs vagrant, vagrant-libvirt, libvirt-daemon-system, libvirt-clients, dnsmasq-base"


def report(request, line: str) -> None:
    """A line on the terminal now, whatever pytest captures (timings, what a killed run left behind)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        sys.stderr.write(line + "\n")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def require_tools() -> None:
    missing = [name for name in TOOLS if shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} ({DEBS_HINT})", pytrace=False)


# ------------------------------------------------------------------ the boxes


@dataclass(frozen=True)
class BoxBuild:
    """What the tests need of a build that made Vagrant boxes (the shape of exported_image)."""

    output: Path
    name: str
    marker: str = ""                  # what /etc/recipe-test-marker holds in the box; "" means name


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pack(box: Path, members: dict[str, Path | str]) -> None:
    """A tar of files (Path) and texts (str), under a temporary name renamed when whole."""
    partial = box.with_name(box.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        for arcname, source in members.items():
            if isinstance(source, Path):
                tar.add(source, arcname=arcname)
            else:
                data = source.encode()
                info = tarfile.TarInfo(arcname)
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
    partial.rename(box)


LIBVIRT_BOX_VAGRANTFILE = """\
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "kvm"
  end
end
"""

VIRTUALBOX_BOX_VAGRANTFILE = """\
Vagrant.configure("2") do |config|
  config.vm.base_mac = "{mac}"
end
"""

OVF = """\
<?xml version="1.0" encoding="UTF-8"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
  xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="box-disk001.vmdk"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="{capacity}" ovf:diskId="vmdisk1" ovf:fileRef="file1"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT"><Description>Logical network used by this appliance.</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="96"><Info>The kind of installed guest operating system</Info>
      <Description>Debian_64</Description><vbox:OSType ovf:required="false">Debian_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType></System>
      <Item><rasd:Caption>2 virtual CPU</rasd:Caption><rasd:ElementName>2 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:Caption>1024 MB of memory</rasd:Caption>
        <rasd:ElementName>1024 MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1024</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:Caption>sataController0</rasd:Caption>
        <rasd:ElementName>sataController0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType><rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:Caption>disk1</rasd:Caption>
        <rasd:ElementName>disk1</rasd:ElementName><rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection><rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def make_boxes(qcow2: Path, output: Path, name: str, box_name: str) -> None:
    """The three artifacts the `vagrant` export is to write, made by hand from the build's qcow2."""
    info = json.loads(subprocess.run([tool("qemu-img"), "info", "--output=json", str(qcow2)], check=True,
                                     capture_output=True, text=True).stdout)
    gib = -(-info["virtual-size"] // (1 << 30))
    pack(output / f"{name}-libvirt.box", {
        "metadata.json": json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": gib}) + "\n",
        "Vagrantfile": LIBVIRT_BOX_VAGRANTFILE, "box.img": qcow2})
    vmdk = output / "box-disk001.vmdk"
    subprocess.run([tool("qemu-img"), "convert", "-O", "vmdk", "-o", "subformat=streamOptimized",
                    str(qcow2), str(vmdk)], check=True)
    try:
        pack(output / f"{name}-virtualbox.box", {
            "box.ovf": OVF.format(name=name, capacity=info["virtual-size"]), "box-disk001.vmdk": vmdk,
            "metadata.json": json.dumps({"provider": "virtualbox"}) + "\n",
            "Vagrantfile": VIRTUALBOX_BOX_VAGRANTFILE.format(mac="080027D14C66")})
    finally:
        vmdk.unlink()
    providers = [{"name": provider, "url": (output / f"{name}-{provider}.box").resolve().as_uri(),
                  "checksum_type": "sha256", "checksum": sha256(output / f"{name}-{provider}.box")}
                 for provider in ("libvirt", "virtualbox")]
    catalog = {"name": box_name, "description": "recipe's Vagrant test box",
               "versions": [{"version": "1.0.0", "providers": providers}]}
    (output / f"{name}.box.json").write_text(json.dumps(catalog, indent=2) + "\n")

# ------------------------------------------------------------------ Vagrant


@dataclass(frozen=True)
class Ran:
    """A finished vagrant command: its exit status and its output lines, each with when it came (s)."""

    returncode: int
    lines: list[tuple[float, str]]
    err_lines: list[tuple[float, str]]

    @property
    def stdout(self) -> str:
        return "".join(line + "\n" for _, line in self.lines if "Progress:" not in line)

    @property
    def stderr(self) -> str:
        return "".join(line + "\n" for _, line in self.err_lines)

    def first(self, text: str) -> float | None:
        """When the first stdout line holding text came."""
        return next((at for at, line in self.lines if text in line), None)


@dataclass
class Vagrant:
    """The vagrant command with VAGRANT_HOME in a temporary directory; a project directory per test."""

    home: Path
    env: dict[str, str]
    logs: Path
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 900, check: bool = True,
            what: str | None = None) -> "Ran":
        """vagrant with args, each output line stamped with the seconds since the start; a failure or a
        timeout (which kills vagrant and its children) quotes the output and the guest's console."""
        started = time.monotonic()
        process = subprocess.Popen([tool("vagrant"), *args], cwd=cwd or self.home, env=self.env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, errors="replace", start_new_session=True)
        streams: dict[str, list[tuple[float, str]]] = {"stdout": [], "stderr": []}

        def read(name: str) -> None:
            for line in getattr(process, name):   # universal newlines: a progress bar's \r ends a line too
                streams[name].append((time.monotonic() - started, line.rstrip("\n")))

        readers = [threading.Thread(target=read, args=(name,), daemon=True) for name in streams]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for reader in readers:
            reader.join(10)
        took = time.monotonic() - started
        ran = Ran(process.returncode, streams["stdout"], streams["stderr"])
        if what:
            self.timings[what] = took
        with open(self.logs / "vagrant.log", "a") as log:
            log.write(f"$ vagrant {' '.join(args)}  ({took:.1f} s, exit {ran.returncode})\n")
            log.writelines(f"{at:7.1f} {line}\n" for at, line in ran.lines + ran.err_lines
                           if "Progress:" not in line)
        command = f"vagrant {' '.join(args)} (in {cwd or self.home})"
        if timed_out:
            pytest.fail(f"{command} did not end within {timeout:.0f} s:\n{ran.stdout[-3000:]}\n"
                        f"{ran.stderr[-3000:]}{console_tail()}", pytrace=False)
        if check and ran.returncode != 0:
            pytest.fail(f"{command} failed ({ran.returncode}):\n{ran.stdout[-3000:]}\n"
                        f"{ran.stderr[-3000:]}{console_tail()}", pytrace=False)
        return ran

    def boxes(self) -> set[tuple[str, str, str]]:
        """`vagrant box list`, as (name, provider, version)."""
        found, current = set(), {}
        for line in self.run("box", "list", "--machine-readable").stdout.splitlines():
            parts = line.split(",", 3)
            if len(parts) == 4 and parts[2] in ("box-name", "box-provider", "box-version"):
                current[parts[2]] = parts[3]
                if parts[2] == "box-version":
                    found.add((current.get("box-name"), current.get("box-provider"), parts[3]))
        return found


def console_tail(lines: int = 30) -> str:
    """The end of the guest's serial console and of libvirt's QEMU log, for an error message."""
    text = ""
    for what, path in (("QEMU log", QEMU_LOG), ("guest console", CONSOLE_LOG)):
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            text += f"\n--- {what} ({path}), last {len(tail)} lines:\n" + "\n".join(tail)
    return text

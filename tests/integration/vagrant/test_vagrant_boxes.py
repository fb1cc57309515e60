"""Real Vagrant consumers of the boxes a build exports: `vagrant box add` of each box file and of the box
catalog, and one `vagrant up` with vagrant-libvirt under TCG, `vagrant ssh -c`, `vagrant destroy`.

No mock: Vagrant 2.3.4 and vagrant-libvirt from Debian, a real libvirtd (tests/libvirt.py), QEMU without
KVM (libvirt domain type "qemu"). VirtualBox is not installed, and is not needed for `vagrant box add`:
the VirtualBox box is checked for what VirtualBox's import would read (the OVF, a streamOptimized VMDK,
the base MAC). The box files come from the `boxes` fixture (conftest.py, BOX_FIXTURE).

Then the vagrant platform, for real: `recipe run` of a recipe whose source is the libvirt box recipe's
own `vagrant` export made (the `boxes` fixture), brought up by Vagrant 2.3.4 and vagrant-libvirt under TCG in
the tests' libvirt pool and network (conftest.py), provisioned over recipe's SSH (the host key trusted on
first use, then pinned: the reboot's reconnection must present the same key), halted, and exported as a
qcow2 that libguestfs then reads. Nothing may be left: no domain, volume or network in libvirt, no work dir,
no private VAGRANT_HOME.

The recipe is named so that everything the build makes in libvirt (its box image, domain and disk, named
after its work dir recipe-test-vagrant-box-XXXXXXXX) carries the tests' PREFIX: the `libvirt` fixture fails
the module if any of it is left, and removes what a killed earlier run left.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from tests.integration.vagrant.helpers import (CONSOLE_LOG, NETWORK, POOL, PREFIX, QEMU_LOG, SUBNET, Ran, Vagrant,
                                               report)
from tests.integration.conftest import ExportedImage
from tests.libvirt import tool

pytestmark = [pytest.mark.vagrant, pytest.mark.timeout(2400)]

OVF_NS = "{http://schemas.dmtf.org/ovf/envelope/1}"
GIB = 1 << 30


def box_file(boxes: ExportedImage, provider: str) -> Path:
    path = boxes.output / f"{boxes.name}-{provider}.box"
    assert path.is_file(), f"no {path.name} in {boxes.output}: {sorted(p.name for p in boxes.output.iterdir())}"
    return path


def catalog_of(boxes: ExportedImage) -> tuple[Path, dict]:
    path = boxes.output / f"{boxes.name}.box.json"
    assert path.is_file(), f"no {path.name} in {boxes.output}: {sorted(p.name for p in boxes.output.iterdir())}"
    return path, json.loads(path.read_text())


def unpacked(vagrant: Vagrant, name: str, version: str, provider: str) -> Path:
    """Where `vagrant box add` unpacked a box: $VAGRANT_HOME/boxes/<name, / as -VAGRANTSLASH->/<version>/<provider>."""
    path = vagrant.home / "boxes" / name.replace("/", "-VAGRANTSLASH-") / version / provider
    assert path.is_dir(), f"vagrant box add left nothing in {path}"
    return path


def qemu_img_info(path: Path) -> dict:
    return json.loads(subprocess.run([tool("qemu-img"), "info", "--output=json", str(path)], check=True,
                                     capture_output=True, text=True).stdout)


def check_libvirt_box(box: Path) -> None:
    """What vagrant-libvirt reads: metadata.json (provider, format, virtual_size in GiB) and box.img."""
    metadata = json.loads((box / "metadata.json").read_text())
    assert metadata.get("provider") == "libvirt", metadata
    assert metadata.get("format") == "qcow2", metadata
    assert isinstance(metadata.get("virtual_size"), int), metadata
    info = qemu_img_info(box / "box.img")
    assert info["format"] == "qcow2"
    assert "backing-filename" not in info, "box.img must stand alone"
    assert metadata["virtual_size"] * GIB >= info["virtual-size"], \
        f"virtual_size {metadata['virtual_size']} GiB is smaller than the disk ({info['virtual-size']} bytes)"
    assert (box / "Vagrantfile").is_file()


def check_virtualbox_box(box: Path) -> None:
    """What `vagrant up --provider=virtualbox` would hand VirtualBox: an OVF whose disk is a streamOptimized
    VMDK in the box, and a base_mac in the box's Vagrantfile (Vagrant sets the first NIC's MAC to it)."""
    assert json.loads((box / "metadata.json").read_text()).get("provider") == "virtualbox"
    ovf = ET.parse(box / "box.ovf").getroot()
    files = {f.get(f"{OVF_NS}id"): f.get(f"{OVF_NS}href") for f in ovf.iter(f"{OVF_NS}File")}
    disks = list(ovf.iter(f"{OVF_NS}Disk"))
    assert disks, "the OVF declares no disk"
    for disk in disks:
        href = files.get(disk.get(f"{OVF_NS}fileRef"))
        assert href and (box / href).is_file(), f"the OVF's disk {href!r} is not in the box: {sorted(p.name for p in box.iterdir())}"
        assert "streamOptimized" in (disk.get(f"{OVF_NS}format") or ""), disk.attrib
        info = qemu_img_info(box / href)
        assert info["format"] == "vmdk"
        assert info.get("format-specific", {}).get("data", {}).get("create-type") == "streamOptimized", info
    vagrantfile = (box / "Vagrantfile").read_text()
    assert re.search(r'config\.vm\.base_mac\s*=\s*"[0-9A-Fa-f]{12}"', vagrantfile), vagrantfile


CHECKS = {"libvirt": check_libvirt_box, "virtualbox": check_virtualbox_box}


@pytest.mark.parametrize("provider", ["libvirt", "virtualbox"])
def test_box_file_is_added_with_its_provider(vagrant, boxes, provider):
    name = f"recipe-test/file-{provider}"
    vagrant.run("box", "add", "--name", name, str(box_file(boxes, provider)), what=f"box add {provider} file")
    assert (name, provider, "0") in vagrant.boxes()
    CHECKS[provider](unpacked(vagrant, name, "0", provider))
    vagrant.run("box", "remove", "--force", "--provider", provider, name)
    assert not any(box[0] == name for box in vagrant.boxes())


def test_catalog_adds_the_box_by_name_and_version(vagrant, boxes):
    path, catalog = catalog_of(boxes)
    name = catalog.get("name", "")
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", name), f"the catalog's name must be org/name: {name!r}"
    assert catalog.get("versions"), catalog
    version = catalog["versions"][-1]
    providers = {p["name"]: p for p in version["providers"]}
    assert set(providers) == {"libvirt", "virtualbox"}, providers
    for provider, entry in providers.items():
        url = urlparse(entry["url"])
        assert url.scheme == "file" and Path(url2pathname(url.path)).resolve() == box_file(boxes, provider).resolve(), entry
        assert entry.get("checksum_type") == "sha256" and re.fullmatch(r"[0-9a-f]{64}", entry.get("checksum", "")), entry
    for provider in providers:   # vagrant checks each box file against the catalog's checksum
        vagrant.run("box", "add", "--provider", provider, "--box-version", version["version"], str(path),
                    what=f"box add {provider} from catalog")
    listed = vagrant.boxes()
    for provider in providers:
        assert (name, provider, version["version"]) in listed, listed
        CHECKS[provider](unpacked(vagrant, name, version["version"], provider))


VAGRANTFILE = """\
# recipe's Vagrant test: the box from the build's catalog, on vagrant-libvirt without KVM
Vagrant.configure("2") do |config|
  config.vm.box = "{box}"
  config.vm.box_version = "{version}"
  config.vm.box_url = "{catalog}"
  config.vm.boot_timeout = 600                  # a boot under TCG takes 45 to 100 s, more on a busy machine
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
    libvirt.uri = "qemu:///system"
    libvirt.driver = "qemu"                     # TCG: /dev/kvm does not work here
    libvirt.memory = 1024
    libvirt.cpus = 2
    libvirt.default_prefix = "{prefix}"
    libvirt.storage_pool_name = "{pool}"
    libvirt.management_network_name = "{network}"
    libvirt.management_network_address = "{subnet}"
    libvirt.graphics_type = "none"
    libvirt.video_type = "none"
    libvirt.serial :type => "file", :source => {{:path => "{console}"}}
  end
end
"""

# one `vagrant ssh -c` (each costs seconds): what the box must give its user, one line each
GUEST_SCRIPT = """\
echo "marker=$(cat /etc/recipe-test-marker)"
echo "user=$(id -un)"
sudo -n true && echo "sudo=ok"
echo "$(sudo -n /usr/sbin/sshd -T 2>/dev/null | grep -i '^usedns')"
if command -v cloud-init >/dev/null; then echo "cloud-init=$(cloud-init status --wait 2>&1 | tail -n 1)"; fi
echo "address=$(ip -4 -o addr show scope global | awk '{print $4}' | head -n 1)"
"""


@pytest.fixture(scope="module")
def project(vagrant, libvirt, boxes, tmp_path_factory):
    """A Vagrant project whose machine is destroyed afterwards, whatever the test got to."""
    path, catalog = catalog_of(boxes)
    project = tmp_path_factory.mktemp("vagrant-project")
    version = catalog["versions"][-1]["version"]
    (project / "Vagrantfile").write_text(VAGRANTFILE.format(
        box=catalog["name"], version=version, catalog=path.resolve().as_uri(), prefix=PREFIX, pool=POOL,
        network=NETWORK, subnet=SUBNET, console=CONSOLE_LOG))
    for log in (CONSOLE_LOG, QEMU_LOG):
        log.unlink(missing_ok=True)
    yield project
    if (project / ".vagrant" / "machines").exists():
        vagrant.run("destroy", "-f", cwd=project, check=False)
    for log in (CONSOLE_LOG, QEMU_LOG):
        log.unlink(missing_ok=True)


def test_vagrant_up_ssh_destroy(request, vagrant, libvirt, boxes, project):
    _, catalog = catalog_of(boxes)
    name, version = catalog["name"], catalog["versions"][-1]["version"]
    up = vagrant.run("up", "--provider=libvirt", cwd=project, timeout=1500, what="up")

    domain = PREFIX + "default"
    assert libvirt.virsh("domstate", domain).strip() == "running"
    assert "<domain type='qemu'" in libvirt.virsh("dumpxml", domain), "the domain must run under TCG"

    out = vagrant.run("ssh", "-c", GUEST_SCRIPT, cwd=project, timeout=300, what="ssh").stdout
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    marker = boxes.marker
    assert seen.get("marker") == marker, out
    assert seen.get("user") == "vagrant", out
    assert seen.get("sudo") == "ok", out
    assert re.search(r"(?im)^usedns no$", out), out
    assert "error" not in seen.get("cloud-init", ""), out
    assert seen.get("address", "").startswith(SUBNET.rsplit(".", 1)[0] + "."), out

    vagrant.run("destroy", "-f", cwd=project, what="destroy")
    assert domain not in libvirt.names("domain")
    assert NETWORK not in libvirt.names("net"), "vagrant destroy leaves the management network it made"
    # vagrant-libvirt keeps the box's image in the pool (a base for the next `up`): only that is left
    volumes = libvirt.names("vol", POOL)
    box_volume = name.replace("/", "-VAGRANTSLASH-") + f"_vagrant_box_image_{version}_"
    assert volumes and all(v.startswith(box_volume) for v in volumes), volumes
    for volume in volumes:
        libvirt.virsh("vol-delete", "--pool", POOL, volume)
    vagrant.run("box", "remove", "--force", "--provider", "libvirt", "--box-version", version, name)
    assert (name, "libvirt", version) not in vagrant.boxes()
    assert libvirt.leftovers(PREFIX, pools=(POOL,)) == []
    for pool in filter(libvirt.pool_active, libvirt.names("pool")):   # the default pool, say, when it exists
        assert not [v for v in libvirt.names("vol", pool) if v.startswith(box_volume)], pool

    t = vagrant.timings
    report(request, f"\nvagrant under TCG: up {t['up']:.1f} s ({up_phases(up)}), ssh -c {t['ssh']:.1f} s, "
                    f"destroy {t['destroy']:.1f} s, total {t['up'] + t['ssh'] + t['destroy']:.1f} s")


# the steps of `vagrant up` with vagrant-libvirt, by the output line each begins with
UP_PHASES = (("prepare", "Bringing machine"), ("upload", "Uploading base box image"),
             ("create", "Creating image (snapshot of base box volume)"), ("start", "Starting domain"),
             ("boot to DHCP", "Waiting for domain to get an IP address"), ("SSH", "Waiting for machine to boot"),
             ("guest detection", "Vagrant insecure key detected"), ("key", "Inserting generated public key"),
             ("ready", "Machine booted and ready"))


def up_phases(up: Ran) -> str:
    """How long each step of `vagrant up` took, from when its output lines came."""
    stamps = [(label, up.first(text)) for label, text in UP_PHASES]
    stamps = [(label, at) for label, at in stamps if at is not None]
    return ", ".join(f"{a} {tb - ta:.0f} s" for (a, ta), (_, tb) in zip(stamps, stamps[1:]))


# ------------------------------------------------------------------ the vagrant platform

RECIPE_BIN = str(Path(sys.executable).parent / "recipe")
NAME = "test-vagrant"                       # the build test-vagrant-box, its work dir recipe-test-vagrant-box-*
BUILD = f"{NAME}-box"
MARKER = "made-by-the-vagrant-platform"
# the guest's serial console, for a boot that fails; QEMU opens it as libvirt-qemu, which cannot enter pytest's
# temporary directories
PLATFORM_CONSOLE_LOG = Path("/var/log/libvirt/qemu") / f"{PREFIX}platform-console.log"
LIBGUESTFS_TCG = {"LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}

RECIPE = """\
name: {name}
sources:
  box:
    platform: vagrant
    box_url: {box_url}
    checksum: sha256:{digest}
    provider: libvirt
    storage_pool: {pool}
    management_network: {{name: {network}, address: {subnet}}}
    cpus: 2
    memory: 1024
    vagrantfile: |
      config.vm.provider :libvirt do |libvirt|
        libvirt.graphics_type = "none"
        libvirt.video_type = "none"
        libvirt.serial :type => "file", :source => {{:path => "{console}"}}
      end
    ssh: {{user: vagrant}}
become: true
tasks:
  - name: A file the image keeps
    copy: {{content: "{marker}\\n", dest: /etc/recipe-vagrant-platform, mode: "0644"}}
  - name: Reboot (the reconnection must present the pinned host key)
    reboot: {{}}
  - name: The file is still there after the reboot
    command: cat /etc/recipe-vagrant-platform
    register: seen
    changed_when: false
    failed_when: seen.stdout != "{marker}"
exports:
  - qcow2: {{}}
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_file(image: Path, path: str) -> str:
    """A file of the image, read by libguestfs (its own appliance, on TCG here)."""
    return subprocess.run(["guestfish", "--ro", "-a", str(image), "-i", "cat", path], capture_output=True,
                          text=True, env={**os.environ, **LIBGUESTFS_TCG}, timeout=600, check=True).stdout


def platform_console_tail(lines: int = 30) -> str:
    if not PLATFORM_CONSOLE_LOG.exists():
        return ""
    tail = PLATFORM_CONSOLE_LOG.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- guest console ({PLATFORM_CONSOLE_LOG}), last {len(tail)} lines:\n" + "\n".join(tail)


@pytest.fixture
def platform_console():
    PLATFORM_CONSOLE_LOG.unlink(missing_ok=True)
    yield PLATFORM_CONSOLE_LOG
    PLATFORM_CONSOLE_LOG.unlink(missing_ok=True)


@pytest.mark.guest
@pytest.mark.timeout(3600)
def test_recipe_run_on_a_vagrant_box_exports_its_disk_and_leaves_nothing(request, boxes, libvirt, platform_console,
                                                                        tmp_path):
    """The vagrant platform, for real. (In this module, not one of its own: both use the module's libvirt
    daemon, pool and network, which two lanes of the suite must not set up and tear down at once.)"""
    box = boxes.output / f"{boxes.name}-libvirt.box"
    assert box.is_file(), sorted(p.name for p in boxes.output.iterdir())
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(RECIPE.format(name=NAME, box_url=box.resolve().as_uri(), digest=sha256(box), pool=POOL,
                                    network=NETWORK, subnet=SUBNET, console=platform_console, marker=MARKER))
    # a TMPDIR of its own: the work dir, the private VAGRANT_HOME in it and the run's claim are all in here
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    events_file, output = tmp_path / "events.jsonl", tmp_path / "out"
    started = time.monotonic()
    result = subprocess.run([RECIPE_BIN, "run", str(recipe), "--output-dir", str(output), "--json", str(events_file)],
                            capture_output=True, text=True, timeout=3000, env={**os.environ, "TMPDIR": str(tmp)})
    took = time.monotonic() - started
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    log = (output / BUILD / "build.log").read_text(errors="replace") if (output / BUILD / "build.log").exists() else ""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + log[-4000:] + platform_console_tail()

    # the tasks ran, the reboot's reconnection included
    finished = {e["task"]: e["status"] for e in events if e.get("event") == "task.end"}
    assert finished == {"A file the image keeps": "changed",
                        "Reboot (the reconnection must present the pinned host key)": "changed",
                        "The file is still there after the reboot": "ok"}, finished

    # the host key: trusted on first use, said with its fingerprint, then verified on every connection
    (trusted,) = [e for e in events if e.get("event") == "step.status" and e.get("trust") == "first use"]
    assert trusted["fingerprint"].startswith("SHA256:") and trusted["fingerprint"] in trusted["status"]
    assert "trusted on first use" in log and trusted["fingerprint"] in log
    (connected,) = [e for e in events if e.get("event") == "connected"]
    assert connected["host_key_verified"] is True, connected
    assert not [e for e in events if e.get("event") == "warning" and "host key" in e.get("msg", "")], events

    # the machine ran under TCG, in the tests' pool, from the box added under the build's unique name
    (made,) = [e for e in events if e.get("event") == "vagrant"]
    assert made["accelerator"] == "tcg" and made["private_home"] is True, made
    work_dir, home = Path(made["project"]), Path(made["vagrant_home"])
    assert work_dir.name.startswith(PREFIX) and home.parent == work_dir, made
    (disk,) = [e for e in events if e.get("event") == "disk"]
    assert disk["format"] == "qcow2" and Path(disk["path"]).name == f"{work_dir.name}-default.img", disk

    # the export is a whole qcow2 with the task's file in it
    image = output / BUILD / f"{BUILD}.qcow2"
    info = json.loads(subprocess.run([tool("qemu-img"), "info", "--output=json", str(image)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["format"] == "qcow2" and "backing-filename" not in info, info
    assert read_file(image, "/etc/recipe-vagrant-platform").strip() == MARKER

    # nothing left: in libvirt (domain, its disk, the box image, the network vagrant-libvirt made), on disk
    assert libvirt.leftovers(PREFIX, pools=(POOL,)) == []
    assert not [n for n in libvirt.names("domain") if work_dir.name in n]
    assert NETWORK not in libvirt.names("net")
    assert not work_dir.exists() and not home.exists()
    assert sorted(p.name for p in tmp.iterdir()) in ([], ["recipe-runs"]), sorted(tmp.rglob("*"))[:20]
    assert not list((tmp / "recipe-runs").glob("*.json")) if (tmp / "recipe-runs").exists() else True

    steps = {e["step"]: e["duration"] for e in events if e.get("event") == "step.end"}
    report(request, f"\nvagrant platform build under TCG: {took:.0f} s in all ("
                    + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in steps.items()) + ")")

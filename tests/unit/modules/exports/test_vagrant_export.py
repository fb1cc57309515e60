"""Vagrant boxes: their members, the disk inside them, the catalog, reproducibility, gzip."""
from __future__ import annotations

import asyncio
import hashlib
import json
import tarfile

from lxml import etree

from engine.artifacts.export_chain import Chain
from engine.recipe.model import Export
from modules.exports.qcow2 import Qcow2Config
from modules.exports.vagrant import Catalog, Vagrant, VagrantConfig, base_mac

from .conftest import XSD, qemu_compare


def members(path):
    with tarfile.open(path) as tar:
        return [m.name for m in tar.getmembers()], {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def both(**changes) -> VagrantConfig:
    return VagrantConfig(provider=("libvirt", "virtualbox"), **changes)


def test_libvirt_and_virtualbox_boxes(make_context, disk, tmp_path):
    boxes = asyncio.run(Vagrant().run(both(), make_context()))
    libvirt, virtualbox = boxes
    assert (libvirt.path.name, libvirt.variant) == ("web-local-libvirt.box", "libvirt")
    names, data = members(libvirt.path)
    assert names == ["metadata.json", "Vagrantfile", "box.img"]
    assert json.loads(data["metadata.json"]) == {"provider": "libvirt", "format": "qcow2", "virtual_size": 1}
    assert b"libvirt.memory = 768" in data["Vagrantfile"] and b"libvirt.cpus = 2" in data["Vagrantfile"]
    image = tmp_path / "box.img"
    image.write_bytes(data["box.img"])
    assert qemu_compare(disk, image)

    names, data = members(virtualbox.path)
    assert names == ["metadata.json", "Vagrantfile", "box.ovf", "box-disk001.vmdk"]
    assert json.loads(data["metadata.json"]) == {"provider": "virtualbox"}
    assert f'config.vm.base_mac = "{base_mac("web-local")}"'.encode() in data["Vagrantfile"]
    assert len(base_mac("web-local")) == 12 and base_mac("web-local").startswith("080027")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(etree.fromstring(data["box.ovf"])), schema.error_log
    assert b"virtualbox-2.2" in data["box.ovf"] and b"<rasd:ResourceType>20<" in data["box.ovf"]
    vmdk = tmp_path / "box-disk001.vmdk"
    vmdk.write_bytes(data["box-disk001.vmdk"])
    assert qemu_compare(disk, vmdk)
    assert sorted(p.name for p in libvirt.path.parent.iterdir()) == ["web-local-libvirt.box",
                                                                     "web-local-virtualbox.box"]


def test_boxes_are_byte_identical_across_exports_gzipped_or_not(make_context):
    for compress in (False, True):
        first = asyncio.run(Vagrant().run(both(compress=compress), make_context(f"a{compress}")))
        second = asyncio.run(Vagrant().run(both(compress=compress), make_context(f"b{compress}")))
        for one, other in zip(first, second):
            assert one.path.read_bytes() == other.path.read_bytes()
        assert first[0].path.read_bytes()[:2] == (b"\x1f\x8b" if compress else b"me")


def test_catalog_lists_each_box_with_its_sha256(make_context):
    config = both(catalog=Catalog(name="acme/web", version="1.2.3", description="nginx"))
    *boxes, catalog = asyncio.run(Vagrant().run(config, make_context()))
    assert catalog.path.name == "web-local.box.json" and catalog.format == "box-catalog"
    document = json.loads(catalog.path.read_text())
    assert document["name"] == "acme/web" and document["versions"][0]["version"] == "1.2.3"
    providers = document["versions"][0]["providers"]
    assert [p["name"] for p in providers] == ["libvirt", "virtualbox"]
    for provider, box in zip(providers, boxes):
        assert provider["url"] == box.path.resolve().as_uri() and provider["checksum_type"] == "sha256"
        assert provider["checksum"] == hashlib.sha256(box.path.read_bytes()).hexdigest()
    served = asyncio.run(Vagrant().run(both(catalog=Catalog(name="acme/web", url="https://boxes.example/web/")),
                                       make_context("served")))[-1]
    urls = [p["url"] for p in json.loads(served.path.read_text())["versions"][0]["providers"]]
    assert urls == ["https://boxes.example/web/web-local-libvirt.box", "https://boxes.example/web/web-local-virtualbox.box"]


def test_libvirt_box_reuses_an_earlier_qcow2(make_context, recorder):
    context = make_context()
    exports = [Export("qcow2", None, Qcow2Config(compress=True)), Export("vagrant", None, VagrantConfig(), False)]
    kept = asyncio.run(Chain(exports, context).run())
    assert [a.path.name for a in kept] == ["web-local-libvirt.box"]
    _, data = members(kept[0].path)
    assert data["box.img"][:4] == b"QFI\xfb"
    # the compressed qcow2 went in as it was: no second conversion
    assert len(data["box.img"]) < 2 * 2 ** 20

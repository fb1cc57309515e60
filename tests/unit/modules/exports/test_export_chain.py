"""The export chain: dependencies, concurrency, keep_input, failure; manifest and checksum at its end."""
from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess

import pytest

from engine.artifacts.export import Exporter
from engine.artifacts.export_chain import Chain, plan
from engine.errors import BuildError
from engine.recipe.compile import CompileOptions, compile_recipe
from engine.recipe.model import Export
from modules.exports.checksum import ChecksumConfig
from modules.exports.manifest import ManifestConfig
from modules.exports.ovf import OvfConfig
from modules.exports.qcow2 import Qcow2Config
from modules.exports.raw import RawConfig
from modules.exports.vagrant import VagrantConfig
from modules.exports.vmdk import VmdkConfig
from tests.unit.modules.exports.conftest import qemu_compare


def export(kind, config, keep_input=True):
    return Export(kind=kind, position=None, config=config, keep_input=keep_input)


class Broken(Exporter, name="test-broken"):
    """An export that fails at once, while the ova beside it is still converting."""

    produces = frozenset({"nothing"})

    async def run(self, config, ctx):
        await asyncio.sleep(0)
        raise BuildError("the broken export broke")


def test_plan_links_each_export_to_the_latest_producer():
    links = plan([export("qcow2", Qcow2Config()), export("vmdk", VmdkConfig()), export("ova", OvfConfig()),
                  export("vagrant", VagrantConfig()), export("manifest", ManifestConfig())])
    depends = {link.export.kind: [d.export.kind for d in link.depends_on] for link in links}
    assert depends == {"qcow2": [], "vmdk": [], "ova": ["vmdk"], "vagrant": ["qcow2", "vmdk"],
                       "manifest": ["qcow2", "vmdk", "ova", "vagrant"]}


def test_keep_input_false_removes_the_vmdk_and_the_manifest_lists_what_is_kept(make_context, recorder, tmp_path):
    context = make_context()
    exports = [export("qcow2", Qcow2Config()), export("vmdk", VmdkConfig()),
               export("ova", OvfConfig(), keep_input=False), export("checksum", ChecksumConfig()),
               export("manifest", ManifestConfig())]
    kept = asyncio.run(Chain(exports, context).run())
    out = context.output_dir
    # with no recipe in the context the manifest is named after the build
    assert [a.path.name for a in kept] == ["web-local.qcow2", "web-local.ova", "SHA256SUMS", "web-local.manifest.json"]
    assert not (out / "web-local.vmdk").exists()
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", "web-local.ova", "web-local.qcow2"]

    # qcow2 and vmdk need nothing before them: both start before either ends
    order = [(e["event"], e["kind"]) for e in recorder.events if e["event"] in ("export.start", "export.end")]
    assert order[:2] == [("export.start", "qcow2"), ("export.start", "vmdk")]
    assert [e["path"] for e in recorder.named("export.removed")] == [str(out / "web-local.vmdk")]

    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout

    manifest = json.loads((tmp_path / "out" / "web-local.manifest.json").read_text())
    (build,) = manifest["builds"]
    listed = {a["path"]: a for a in build["artifacts"]}
    assert sorted(listed) == ["web-local/SHA256SUMS", "web-local/web-local.ova", "web-local/web-local.qcow2"]
    for relative, entry in listed.items():
        path = tmp_path / "out" / relative
        assert entry["size"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert listed["web-local/web-local.ova"]["format"] == "ova"


def test_manifest_keeps_the_other_builds_of_the_recipe(make_context, tmp_path):
    for name in ("web-local", "web-other", "web-local"):
        context = make_context(build_name=name, output_dir=tmp_path / "out" / name)
        asyncio.run(Chain([export("qcow2", Qcow2Config()), export("manifest", ManifestConfig(path="m.json"))],
                          context).run())
    manifest = json.loads((tmp_path / "out" / "m.json").read_text())
    assert [b["name"] for b in manifest["builds"]] == ["web-local", "web-other"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.json", "web-local", "web-other"]


def test_a_failing_export_cancels_the_others_and_leaves_no_final_names(make_context):
    context = make_context()
    exports = [export("ova", OvfConfig()), export("test-broken", None), export("manifest", ManifestConfig())]
    with pytest.raises(BuildError, match="the broken export broke"):
        asyncio.run(Chain(exports, context).run())
    leftovers = list(context.output_dir.iterdir()) if context.output_dir.exists() else []
    assert leftovers == []
    assert not any(context.work_dir.iterdir()) if context.work_dir.exists() else True


def test_the_console_says_what_each_export_made_and_removed(make_context, recorder):
    import io

    from engine.console.view import ConsoleView
    exports = [export("vmdk", VmdkConfig()), export("ova", OvfConfig(), keep_input=False)]
    asyncio.run(Chain(exports, make_context()).run())
    screen = io.StringIO()
    view = ConsoleView(screen)
    for event in recorder.events:
        view(event)
    lines = screen.getvalue().splitlines()
    assert any(line.startswith("  [web-local] exported ova: web-local.ova (") for line in lines), lines
    assert "  [web-local] removed web-local.vmdk: consumed (keep_input: false)" in lines


@pytest.fixture
def small_filesystem(tmp_path):
    """A 1 MiB tmpfs: the disk's 3 MiB of data (1 MiB of it random) cannot fit, even compressed. Needs root, which make test has."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize("kind, config", [("raw", RawConfig()), ("ova", OvfConfig())],
                         ids=["raw by qemu-img", "ova by recipe's tar writer"])
def test_a_full_disk_fails_the_export_clearly_and_keeps_nothing(kind, config, small_filesystem, make_context):
    output = small_filesystem / "web-local"
    chain = Chain([export(kind, config)], make_context(output_dir=output))
    with pytest.raises(BuildError) as failed:
        asyncio.run(chain.run())
    assert "no space left on device" in failed.value.message.lower()
    assert "--output-dir" in failed.value.hint
    assert not output.exists() or list(output.iterdir()) == []


QEMU_RECIPE = """\
name: keep
sources:
  local: {platform: qemu, base: {path: base.qcow2}, ssh: {user: debian}}
exports:
{exports}
"""


def compiled_exports(tmp_path, exports: str):
    (tmp_path / "keep.yml").write_text(QEMU_RECIPE.replace("{exports}", exports))
    recipe = compile_recipe(tmp_path / "keep.yml", CompileOptions())
    return recipe.builds[0].exports


@pytest.mark.parametrize("exports, kinds", [
    ("  - manifest: {}", ["qcow2", "manifest"]),
    ("  - checksum: {}\n  - manifest: {}", ["qcow2", "checksum", "manifest"]),
    ("  - ova: {}", ["qcow2", "ova"]),
    ("  - raw: {}\n  - manifest: {}", ["raw", "manifest"]),
    ("  - vmdk: {}\n  - ova: {}", ["vmdk", "ova"]),
    ("  - qcow2: {compress: true}", ["qcow2"]),
    ("  []", ["qcow2"]),
])
def test_an_image_build_always_keeps_its_disk(tmp_path, exports, kinds):
    assert [e.kind for e in compiled_exports(tmp_path, exports)] == kinds


def test_a_manifest_only_build_keeps_a_compacted_qcow2_and_lists_it(tmp_path, make_context):
    """Packer keeps its builder's image: `exports: [manifest: {}]` must not throw the disk away."""
    exports = compiled_exports(tmp_path, "  - checksum: {}\n  - manifest: {}")
    context = make_context()
    kept = asyncio.run(Chain(exports, context).run())
    qcow2 = context.output_dir / "web-local.qcow2"
    assert [a.path.name for a in kept] == ["web-local.qcow2", "SHA256SUMS", "web-local.manifest.json"]
    assert qemu_compare(qcow2, context.disk)
    listed = json.loads(kept[-1].path.read_text())
    paths = [a["path"] for b in listed["builds"] for a in b["artifacts"]]
    assert any(p.endswith("web-local.qcow2") for p in paths)
    assert "web-local.qcow2" in (context.output_dir / "SHA256SUMS").read_text()


def test_a_machine_without_an_image_gets_no_disk_export(tmp_path):
    (tmp_path / "ssh.yml").write_text("name: s\nsources:\n  box: {platform: ssh, ssh: {host: h, user: u}}\n"
                                      "exports:\n  - manifest: {}\n")
    recipe = compile_recipe(tmp_path / "ssh.yml", CompileOptions())
    assert [e.kind for e in recipe.builds[0].exports] == ["manifest"]

"""What `recipe sweep --local` finds of a dead vagrant build, against real processes, folders and claims:
vagrant still running in the work dir is stopped; a libvirt machine that cannot be reached keeps the work
dir and the claim that name it, so a later sweep tries again."""
from __future__ import annotations

import json
import subprocess
from dataclasses import asdict

from engine.leftovers import claims
from engine.leftovers.claims import ClaimRecord
from engine.leftovers.local_sweep import LocalSweeper
from engine.leftovers.sweep import SweepOptions
from modules.platforms.vagrant.libvirt import MachineRecord
from modules.platforms.vagrant.sweep import VagrantLeftovers

UNREACHABLE = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
UUID = "0b6e3f5c-7d1a-4c52-9a3e-6f0d2b9c8e41"


def dead_run(tmp_path, monkeypatch, record: MachineRecord | None):
    monkeypatch.setattr(claims, "RUNS_DIR", tmp_path / "recipe-runs")
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECIPE_LAYERS_DIR", raising=False)
    work, output = tmp_path / "recipe-web-box-x1", tmp_path / "out"
    (work / ".vagrant" / "machines" / "default" / "libvirt").mkdir(parents=True)
    (work / ".vagrant" / "machines" / "default" / "libvirt" / "id").write_text(UUID)
    output.mkdir()
    if record:
        record.save(work)
    claims.RUNS_DIR.mkdir(parents=True)
    claim = ClaimRecord(pid=4242, build="web-box", build_id="20261128-170946-24b2", output=str(output),
                        work_dir=str(work))
    (claims.RUNS_DIR / "dead.json").write_text(json.dumps(asdict(claim)))
    return work


def test_the_record_is_read_back_and_a_work_dir_without_one_is_not_vagrants(tmp_path):
    record = MachineRecord(provider="libvirt", uri="qemu:///system", domain="recipe-web-box-x1-default", pool="p",
                           box_volume_prefix="recipe-web-box-x1_vagrant_box_image_")
    record.save(tmp_path)
    assert MachineRecord.load(tmp_path) == record
    assert VagrantLeftovers().find(tmp_path / "elsewhere", "b") == []


def test_a_vagrant_still_running_in_the_work_dir_is_stopped(tmp_path, monkeypatch):
    work = dead_run(tmp_path, monkeypatch, MachineRecord(provider="virtualbox"))
    (work / ".vagrant" / "machines" / "default" / "virtualbox").mkdir()
    (work / ".vagrant" / "machines" / "default" / "virtualbox" / "id").write_text(UUID)
    process = subprocess.Popen(["sleep", "300"], cwd=work / ".vagrant")    # as `vagrant up` outlives recipe
    try:
        found = LocalSweeper().find(SweepOptions())
        processes = [(left.kind, left.id) for left in found if left.kind == "vagrant process"]
        assert processes == [("vagrant process", str(process.pid))]
        # VirtualBox's machine is listed from its id file (written for, never run here: no VBoxManage)
        assert [left.kind for left in found] == ["vagrant process", "virtualbox machine", "work dir", "claim"]
        failed = LocalSweeper().remove(SweepOptions(), found)
        assert process.wait(timeout=15) is not None
        # VBoxManage is not installed here: the machine stays, and so do the work dir and claim naming it
        assert [(left.kind, "not installed" in why or "kept" in why) for left, why in failed] == [
            ("virtualbox machine", True), ("work dir", True), ("claim", True)]
    finally:
        process.kill()
        process.wait()


def test_an_unreachable_libvirt_keeps_the_run_for_a_later_sweep(tmp_path, monkeypatch):
    work = dead_run(tmp_path, monkeypatch, MachineRecord(provider="libvirt", uri=UNREACHABLE,
                                                         domain="recipe-web-box-x1-default"))
    found = LocalSweeper().find(SweepOptions())
    assert [(left.kind, left.id, left.where) for left in found][:1] == [("libvirt domain", UUID, UNREACHABLE)]
    assert "libvirt domain 0b6e3f5c-7d1a-4c52-9a3e-6f0d2b9c8e41 in qemu+unix" in found[0].describe()
    failed = dict((left.kind, why) for left, why in LocalSweeper().remove(SweepOptions(), found))
    assert set(failed) == {"libvirt domain", "work dir", "claim"}, failed
    assert "virsh" in failed["libvirt domain"]
    assert work.is_dir() and (claims.RUNS_DIR / "dead.json").exists()
    assert [left.kind for left in LocalSweeper().find(SweepOptions())][0] == "libvirt domain"     # found again

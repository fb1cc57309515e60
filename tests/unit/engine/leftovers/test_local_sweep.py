"""The local sweeper against real claim files, folders and locks."""
from __future__ import annotations

import json
import shutil
import threading
from dataclasses import asdict

from engine.cache.layer_store import LayerRecord, LayerStore
from engine.leftovers import claims
from engine.leftovers.claims import ClaimRecord
from engine.leftovers.local_sweep import LocalSweeper
from engine.leftovers.sweep import SweepOptions


def dead_run(tmp_path, files: int) -> tuple:
    """What a SIGKILLed run leaves: its claim (unlocked now), a work dir full of files, a partial artifact."""
    work, output = tmp_path / "recipe-web-vm-x", tmp_path / "out"
    for index in range(files):
        (work / f"d{index % 20}").mkdir(parents=True, exist_ok=True)
        (work / f"d{index % 20}" / f"f{index}").write_bytes(b"x")
    output.mkdir()
    (output / ".web.qcow2.part-4242").write_bytes(b"half")
    claims.RUNS_DIR.mkdir(parents=True)
    record = ClaimRecord(pid=4242, build="web-vm", build_id="20261128-170946-24b2", output=str(output),
                         work_dir=str(work))
    (claims.RUNS_DIR / "dead.json").write_text(json.dumps(asdict(record)))
    return work, output


def test_two_sweeps_of_one_dead_run_both_succeed(tmp_path, monkeypatch):
    """Every `recipe run` sweeps as it starts: two runs starting together remove the same dead run's
    folder at once, and neither may report what the other removed as a failure."""
    monkeypatch.setattr(claims, "RUNS_DIR", tmp_path / "recipe-runs")
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECIPE_LAYERS_DIR", raising=False)
    work, output = dead_run(tmp_path, files=4000)
    sweepers = [LocalSweeper(), LocalSweeper()]
    found = [sweeper.find(SweepOptions()) for sweeper in sweepers]
    assert all({leftover.kind for leftover in each} == {"work dir", "partial artifact", "claim"} for each in found)
    failures: list = []
    threads = [threading.Thread(target=lambda s=s, f=f: failures.extend(s.remove(SweepOptions(), f)))
               for s, f in zip(sweepers, found)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert not work.exists() and not list(output.iterdir()) and not list(claims.RUNS_DIR.iterdir())


def test_a_folder_that_cannot_be_removed_is_still_a_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "RUNS_DIR", tmp_path / "recipe-runs")
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECIPE_LAYERS_DIR", raising=False)
    dead_run(tmp_path, files=3)

    def refuse(path, **_):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(shutil, "rmtree", refuse)
    sweeper = LocalSweeper()
    failures = sweeper.remove(SweepOptions(), sweeper.find(SweepOptions()))
    assert [(leftover.kind, "Permission denied" in error) for leftover, error in failures] == [("work dir", True)]


def test_a_layer_a_killed_build_was_writing_is_swept_and_a_written_one_is_not(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "RUNS_DIR", tmp_path / "recipe-runs")
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECIPE_LAYERS_DIR", raising=False)
    store = LayerStore(tmp_path / "cache" / "layers")
    for key in ("whole", "half"):
        lock = store.begin(key, f"build-{key}")
        (store.folder(key) / "disk.qcow2").write_bytes(b"qcow")
        if key == "whole":
            store.commit(LayerRecord(key=key, parent=None, recipe="web", step="boot", index=0, seconds=1.0,
                                     created=0.0))
        lock.release()                          # the "half" writer dies here
    sweeper = LocalSweeper()
    found = sweeper.find(SweepOptions())
    assert [(each.kind, each.id, each.build_id) for each in found] == [
        ("unfinished cache layer", str(store.folder("half")), "build-half")]
    assert sweeper.remove(SweepOptions(), found) == []
    assert not store.folder("half").exists() and store.find("whole") is not None


def test_a_partial_folder_of_a_dead_run_is_swept(tmp_path, monkeypatch):
    """An export that writes a folder (vmx: <name>.vmwarevm) writes it under the same temporary name."""
    monkeypatch.setattr(claims, "RUNS_DIR", tmp_path / "recipe-runs")
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RECIPE_LAYERS_DIR", raising=False)
    _, output = dead_run(tmp_path, files=3)
    (output / ".web-vm.vmwarevm.part-4242").mkdir()
    (output / ".web-vm.vmwarevm.part-4242" / "web-vm.vmdk").write_bytes(b"half")
    sweeper = LocalSweeper()
    found = sweeper.find(SweepOptions())
    assert sum(leftover.kind == "partial artifact" for leftover in found) == 2
    assert sweeper.remove(SweepOptions(), found) == [] and not list(output.iterdir())

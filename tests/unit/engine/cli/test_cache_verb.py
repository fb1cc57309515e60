"""`recipe cache list` and `recipe cache prune` on a real layer store."""
from __future__ import annotations

import os
import time

from engine.cache.layer_store import LayerRecord, LayerStore
from engine.cli.main import main


def layer(store: LayerStore, key: str, parent: str | None, index: int, seconds: float, used_ago: float) -> None:
    lock = store.begin(key, "20261128-1")
    (store.folder(key) / "disk.qcow2").write_bytes(os.urandom(64 * 1024))
    store.commit(LayerRecord(key=key, parent=parent, recipe="web", step="boot" if index == 0 else f"task {index}",
                             index=index, seconds=seconds, created=time.time() - 7200, has_state=index == 0))
    lock.release()
    (store.folder(key) / "used").touch()
    os.utime(store.folder(key) / "used", (time.time() - used_ago,) * 2)


def test_list_says_what_resuming_from_each_layer_saves(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("RECIPE_LAYERS_DIR", raising=False)
    store = LayerStore(tmp_path / "layers")
    layer(store, "a" * 64, None, 0, 70.0, used_ago=60)
    layer(store, "b" * 64, "a" * 64, 1, 30.0, used_ago=60)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("web: 2 layer(s)")
    assert "#0 'boot'" in out[1] and "in 70 s, warm" in out[1] and out[1].endswith("resuming here saves 70 s")
    assert "#1 'task 1'" in out[2] and out[2].endswith("resuming here saves 100 s")
    assert out[3].startswith("2 layer(s)")


def test_prune_by_age_then_everything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("RECIPE_LAYERS_DIR", raising=False)
    store = LayerStore(tmp_path / "layers")
    layer(store, "a" * 64, None, 0, 70.0, used_ago=8 * 86400)
    layer(store, "c" * 64, None, 0, 70.0, used_ago=60)
    assert main(["cache", "prune", "--older-than", "7d"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("1 layer(s) removed")
    assert [each.record.key for each in store.layers()] == ["c" * 64]
    assert main(["cache", "prune"]) == 0
    assert store.layers() == []
    assert main(["cache", "prune", "--max-size", "lots"]) == 2
    assert capsys.readouterr().err == "error: --max-size: 'lots' is not a size (hint: e.g. --max-size 20G (K, M, G or T))\n"

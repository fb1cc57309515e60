"""The layer store on a real filesystem with real flocks: atomic records, locks, unfinished layers, pruning."""
from __future__ import annotations

import os
import stat
import time

from engine.cache.layer_store import LayerRecord, LayerStore, prune


def write_layer(store: LayerStore, key: str, parent: str | None = None, size: int = 4096,
                used: float | None = None) -> None:
    lock = store.begin(key, "20261128-1")
    assert lock is not None
    (store.folder(key) / "disk.qcow2").write_bytes(os.urandom(size))
    store.commit(LayerRecord(key=key, parent=parent, recipe="web", step=f"task {key}", index=1, seconds=3.0,
                             created=time.time()))
    lock.release()
    if used is not None:
        (store.folder(key) / "used").touch()
        os.utime(store.folder(key) / "used", (used, used))


def test_a_layer_is_a_layer_only_once_recorded(tmp_path):
    store = LayerStore(tmp_path / "layers")
    lock = store.begin("k1", "20261128-1")
    (store.folder("k1") / "disk.qcow2").write_bytes(b"half")
    assert store.find("k1") is None and store.use("k1") is None
    assert store.begin("k1", "20261128-1") is None                  # another build is writing it
    assert store.unfinished() == []                   # its writer lives
    lock.release()                                    # ... and dies without recording it
    assert store.unfinished() == [(store.folder("k1"), "20261128-1")]
    again = store.begin("k1", "20261128-2")           # the next writer starts clean
    assert again is not None and sorted(p.name for p in store.folder("k1").iterdir()) == ["lock", "writer"]
    assert store.begin("k1", "20261128-3") is None
    store.remove_unfinished(store.folder("k1"))       # in use: left alone
    assert store.folder("k1").is_dir()
    again.release()
    store.remove_unfinished(store.folder("k1"))
    assert not store.folder("k1").exists()


def test_the_cache_and_its_key_are_private(tmp_path):
    store = LayerStore(tmp_path / "layers")
    key = store.hmac_key()
    assert len(key) == 32 and store.hmac_key() == key
    assert stat.S_IMODE((tmp_path / "layers").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "layers" / "hmac.key").stat().st_mode) == 0o600


def test_a_written_layer_is_not_written_twice_and_records_its_use(tmp_path):
    store = LayerStore(tmp_path / "layers")
    write_layer(store, "k1")
    assert store.begin("k1", "20261128-1") is None
    lock = store.use("k1")
    assert lock is not None and (store.folder("k1") / "used").exists()
    layer = store.find("k1")
    assert layer.record.step == "task k1" and layer.size >= 4096
    lock.release()


def test_remove_takes_the_descendants_and_spares_what_is_in_use(tmp_path):
    store = LayerStore(tmp_path / "layers")
    write_layer(store, "a")
    write_layer(store, "b", parent="a")
    write_layer(store, "c", parent="b")
    write_layer(store, "x")
    in_use = store.use("c")
    assert not store.remove("a")                      # c is under a running build
    assert {layer.record.key for layer in store.layers()} == {"a", "b", "c", "x"}
    in_use.release()
    assert store.remove("b")
    assert {layer.record.key for layer in store.layers()} == {"a", "x"}


def test_prune_by_age_then_by_size_least_recently_used_first(tmp_path):
    store = LayerStore(tmp_path / "layers")
    now = time.time()
    write_layer(store, "old", size=8192, used=now - 10 * 86400)
    write_layer(store, "mid", size=8192, used=now - 3600)
    write_layer(store, "new", size=8192, used=now)
    assert [layer.record.key for layer in prune(store, older_than=7 * 86400)] == ["old"]
    sizes = {layer.record.key: layer.size for layer in store.layers()}
    assert [layer.record.key for layer in prune(store, max_size=sizes["new"])] == ["mid"]
    assert [layer.record.key for layer in store.layers()] == ["new"]


def test_using_a_layer_uses_those_under_it_so_pruning_by_size_takes_leaves_first(tmp_path):
    store = LayerStore(tmp_path / "layers")
    long_ago = time.time() - 86400
    write_layer(store, "root", size=8192, used=long_ago)
    write_layer(store, "mid", parent="root", size=8192, used=long_ago)
    write_layer(store, "leaf", parent="mid", size=8192, used=long_ago)
    write_layer(store, "other", parent="root", size=8192, used=long_ago + 60)
    store.use("leaf").release()                       # a build resumed the leaf: its disk read mid and root
    assert all(store.find(key).last_used > long_ago + 3600 for key in ("root", "mid", "leaf"))
    sizes = {layer.record.key: layer.size for layer in store.layers()}
    limit = sum(sizes.values()) - 1
    assert [layer.record.key for layer in prune(store, max_size=limit)] == ["other"]
    assert {layer.record.key for layer in store.layers()} == {"root", "mid", "leaf"}

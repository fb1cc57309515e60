"""Where a qemu build starts, given the layers a real store holds."""
from __future__ import annotations

import json
import time

from engine.build.layer_keys import TaskKey
from engine.cache.layer_store import LayerRecord, LayerStore
from modules.platforms.qemu.layers import plan


def keep(store: LayerStore, key: str, parent: str | None, index: int, state: bool, seconds: float = 60.0) -> None:
    lock = store.begin(key, "b1")
    store.commit(LayerRecord(key=key, parent=parent, recipe="web", step=f"#{index}", index=index, seconds=seconds,
                             created=time.time(), has_state=state))
    lock.release()


TASKS = [TaskKey("k1"), TaskKey("k2"), TaskKey(None, "it reads build.id"), TaskKey(None, "it reads build.id")]


def test_nothing_kept_starts_on_the_base(tmp_path):
    chosen = plan(LayerStore(tmp_path), "k0", TASKS, fresh=False)
    assert chosen.start is None and chosen.done == 0 and chosen.keys == ("k0", "k1", "k2", None, None)
    assert chosen.why_not[2] == "it reads build.id"


def test_the_deepest_layer_wins_and_is_resumed_warm_only_with_a_state(tmp_path):
    store = LayerStore(tmp_path)
    keep(store, "k0", None, 0, state=True)
    assert plan(store, "k0", TASKS, fresh=False).warm
    keep(store, "k1", "k0", 1, state=False)
    chosen = plan(store, "k0", TASKS, fresh=False)
    assert chosen.start.record.key == "k1" and chosen.done == 1 and not chosen.warm
    keep(store, "k2", "k1", 2, state=True)
    chosen = plan(store, "k0", TASKS, fresh=False)
    assert chosen.done == 2 and chosen.warm


def test_cheap_tasks_run_again_on_a_resumed_machine_rather_than_boot_their_layer(tmp_path):
    store = LayerStore(tmp_path)
    keep(store, "k0", None, 0, state=True, seconds=40.0)       # the boot took 40 s
    keep(store, "k1", "k0", 1, state=False, seconds=2.0)
    keep(store, "k2", "k1", 2, state=False, seconds=3.0)
    chosen = plan(store, "k0", TASKS, fresh=False)
    assert chosen.start.record.key == "k0" and chosen.warm and chosen.done == 0
    keep(store, "k3", "k2", 3, state=False, seconds=50.0)
    tasks = [TaskKey("k1"), TaskKey("k2"), TaskKey("k3")]
    chosen = plan(store, "k0", tasks, fresh=False)             # 55 s of tasks again: booting k3 is cheaper
    assert chosen.start.record.key == "k3" and not chosen.warm and chosen.done == 3


def test_a_gap_in_the_chain_stops_it_and_no_cache_starts_fresh(tmp_path):
    store = LayerStore(tmp_path)
    keep(store, "k0", None, 0, state=True)
    keep(store, "k2", "k1", 2, state=True)          # its parent is gone (pruned)
    assert plan(store, "k0", TASKS, fresh=False).done == 0
    assert plan(store, "k0", TASKS, fresh=True).start is None


def test_layers_older_than_max_age_are_made_afresh(tmp_path):
    store = LayerStore(tmp_path)
    keep(store, "k0", None, 0, state=True)
    keep(store, "k1", "k0", 1, state=True)
    record = tmp_path / "k1" / "layer.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "created": time.time() - 8 * 86400}))
    chosen = plan(store, "k0", TASKS, fresh=False, max_age=7 * 86400)
    assert chosen.start.record.key == "k0"
    assert plan(store, "k0", TASKS, fresh=False).start.record.key == "k1"

"""`recipe cache list` and `recipe cache prune [--older-than 7d] [--max-size 20G]`: the layer cache on this host."""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from typing import Any

from engine.cache.layer_store import Layer, LayerRecord, LayerStore, prune
from engine.local_cache import layers_dir
from engine.units import parse_duration, parse_size_option


def add_parser(verbs: Any) -> None:
    parser = verbs.add_parser("cache", help="the layers kept between builds: list them, prune them")
    actions = parser.add_subparsers(dest="cache_action", required=True, metavar="ACTION")
    actions.add_parser("list", help="per recipe: its layers, their sizes and ages, and what each saved")
    pruning = actions.add_parser("prune", help="remove layers, least recently used first (never one a running "
                                               "build uses); without options, every layer not in use")
    pruning.add_argument("--older-than", metavar="AGE", help="layers no build used for this long (s, m, h or d)")
    pruning.add_argument("--max-size", metavar="SIZE", help="then the least recently used until the cache holds "
                                                            "at most this much (e.g. 20G)")
    for each in (parser, pruning):
        each.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def run(args: argparse.Namespace) -> int:
    store = LayerStore(layers_dir())
    if args.cache_action == "list":
        sys.stdout.write(listing(store.layers(), store))
        return 0
    older = parse_duration(args.older_than) if args.older_than else None
    size = parse_size_option(args.max_size) if args.max_size else None
    removed = prune(store, older_than=older if older is not None or size is not None else 0.0, max_size=size)
    for layer in removed:
        print(f"removed {_describe(layer)}")
    left = store.layers()
    print(f"{len(removed)} layer(s) removed ({_bytes(sum(layer.size for layer in removed))}); "
          f"{len(left)} left ({_bytes(sum(layer.size for layer in left))})")
    return 0


def listing(layers: list[Layer], store: LayerStore) -> str:
    if not layers:
        return f"no layers in {store.root}\n"
    by_recipe: dict[str, list[Layer]] = defaultdict(list)
    for layer in layers:
        by_recipe[layer.record.recipe].append(layer)
    records = {layer.record.key: layer.record for layer in layers}
    lines = []
    for recipe, own in sorted(by_recipe.items()):
        lines.append(f"{recipe}: {len(own)} layer(s), {_bytes(sum(layer.size for layer in own))}")
        for layer in sorted(own, key=lambda layer: (layer.record.index, layer.record.created)):
            lines.append(f"  {_describe(layer)}, resuming here saves {_saved(layer.record, records):.0f} s")
    total = sum(layer.size for layer in layers)
    lines.append(f"{len(layers)} layer(s), {_bytes(total)} in {store.root}")
    return "\n".join(lines) + "\n"


def _describe(layer: Layer) -> str:
    record = layer.record
    state = ", warm" if record.has_state else ""
    return (f"{record.key[:12]}  #{record.index} {record.step!r}  {_bytes(layer.size)}, made {_ago(layer.age)} ago "
            f"in {record.seconds:.0f} s{state}")


def _saved(record: LayerRecord, records: dict[str, LayerRecord]) -> float:
    """The time of the layer and of every layer under it that is still here."""
    total, seen = 0.0, set()
    current: LayerRecord | None = record
    while current and current.key not in seen:
        seen.add(current.key)
        total += current.seconds
        current = records.get(current.parent) if current.parent else None
    return total



def _bytes(count: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):.1f} {unit}iB"
    return f"{count} B"


def _ago(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f}{unit}"
    return f"{seconds:.0f}s"

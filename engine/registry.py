"""Where platforms, task modules and exports register themselves by name.

The engine never imports a plug-in by name: load_plugins() imports every
submodule of modules.platforms, modules.tasks and modules.exports, and each
class registers itself through __init_subclass__.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")

PLUGIN_PACKAGES = ("modules.platforms", "modules.tasks", "modules.exports")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> None:
        if name in self._items and self._items[name] is not item:
            raise RuntimeError(f"two {self.kind}s are named {name!r}")
        self._items[name] = item

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


_loaded = False


def load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    for package_name in PLUGIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")
    _loaded = True

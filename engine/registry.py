"""Where platforms, task modules and exports register themselves by name.

The engine never imports a plug-in by name: load_plugins() imports every
submodule of modules.platforms, modules.tasks, modules.exports and
modules.importers, and each class registers itself through __init_subclass__.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Generic, Iterator, TypeVar

if TYPE_CHECKING:   # the contracts import this module to register; the registries only name them
    from engine.artifacts.export import Exporter
    from engine.build.platform import Platform
    from engine.build.taskmodule import TaskModule
    from engine.leftovers.sweep import Sweeper
    from engine.recipe.importer import Importer

T = TypeVar("T")

PLUGIN_PACKAGES = ("modules.platforms", "modules.tasks", "modules.exports", "modules.importers")


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


# A task names a module as recipe does (copy) or by Ansible's fully qualified name (ansible.builtin.copy,
# ansible.posix.sysctl): the collections whose modules recipe implements under their short names.
COLLECTIONS = ("ansible.builtin.", "ansible.legacy.", "ansible.posix.", "community.general.", "community.crypto.")


class ModuleRegistry(Registry[T]):
    """Task modules, found by short or fully qualified name."""

    def canonical(self, name: object) -> str | None:
        if not isinstance(name, str):
            return None
        if name in self._items:
            return name
        prefix = next((p for p in COLLECTIONS if name.startswith(p)), None)
        if prefix and name[len(prefix):] in self._items:
            return name[len(prefix):]
        return None

    def get(self, name: str) -> T | None:
        canonical = self.canonical(name)
        return self._items.get(canonical) if canonical else None

    def __contains__(self, name: object) -> bool:
        return self.canonical(name) is not None


# Every plug-in registry lives here, below the stages, so that checking a recipe
# (engine.recipe) can look up a platform's, a module's or an export's schema
# without importing the build or artifact stages that run them.
PLATFORMS: Registry[type["Platform"]] = Registry("platform")
TASK_MODULES: ModuleRegistry[type["TaskModule"]] = ModuleRegistry("task module")
EXPORTS: Registry[type["Exporter"]] = Registry("export")
SWEEPERS: Registry[type["Sweeper"]] = Registry("sweeper")
IMPORTERS: Registry[type["Importer"]] = Registry("importer")   # other tools' templates -> recipes (recipe import)

EVERYTHING = "*"     # in Exporter.consumes: every artifact made before (manifest, checksum)
DISK_FORMATS = frozenset({"qcow2", "raw", "vmdk"})   # formats of a disk image file, in Exporter.produces
DEFAULT_DISK_EXPORT = "qcow2"   # how an image platform's disk is kept when no export writes a disk format


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

"""The contract of an export: it turns a build's artifacts into other artifacts, after shutdown."""
from __future__ import annotations

from typing import Any, ClassVar

from engine.registry import Registry

EXPORTS: Registry[type["Exporter"]] = Registry("export")


class Exporter:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    schema: ClassVar[dict] = {}
    Config: ClassVar[type] = dict

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            EXPORTS.add(name, cls)

    @classmethod
    def configure(cls, validated: dict[str, Any]) -> Any:
        return cls.Config(**validated) if cls.Config is not dict else validated

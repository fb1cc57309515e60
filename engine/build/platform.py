"""The contract of a platform: a schema for its source options and a list of steps.

A platform lives in modules/platforms/<name>.py and registers itself by
subclassing Platform with name=... . Its steps are small objects with run()
that push their cleanup first (see engine.build.runner).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from engine.build.runner import Step
from engine.recipe.model import Build, Recipe
from engine.registry import PLATFORMS


class Platform:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    schema: ClassVar[dict] = {}              # options of a source besides `platform` and `ssh`
    Config: ClassVar[type] = dict            # a frozen dataclass whose fields are the schema's keys
    produces_image: ClassVar[bool] = True    # False for platforms that only configure a machine
    has_disk: ClassVar[bool] = True          # False: the image stays remote (an AMI); only exports that
                                             # read everything (manifest, checksum) apply to its builds
    ssh_required: ClassVar[tuple[str, ...]] = ()   # ssh options a source must give (the rest the platform fills)
    template_vars: ClassVar[dict[str, Any]] = {}   # more variables its source's options are rendered with
    host_tools: ClassVar[tuple[str, ...]] = ()     # programs its builds run on the build host (a cluster
                                                   # worker offers the platform only if it has them all)

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            PLATFORMS.add(name, cls)

    @classmethod
    def check(cls, validated: dict[str, Any]) -> dict[str, Any]:
        """Rules across a source's options (ssh included), after the schema: raise vol.Invalid with the
        path of the option to blame, so the error points at its line:column."""
        return validated

    @classmethod
    def configure(cls, validated: dict[str, Any], base_dir: Path) -> Any:
        """The platform's config from its validated options; relative paths are taken from base_dir."""
        return cls.Config(**validated) if cls.Config is not dict else validated

    def steps(self, recipe: Recipe, build: Build) -> list[Step]:  # pragma: no cover - interface
        raise NotImplementedError

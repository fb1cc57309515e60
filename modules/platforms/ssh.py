"""An existing machine reached over SSH (Packer's null builder): configure it, make no image."""
from __future__ import annotations

from dataclasses import dataclass

from engine.build.platform import Platform
from engine.build.runner import Step
from engine.build.steps import Connect, GatherFacts, Provision
from engine.recipe.model import Build, Recipe
from engine.remote.ssh import Endpoint


@dataclass(frozen=True)
class SshConfig:
    pass


class SshPlatform(Platform, name="ssh"):
    description = "apply a recipe to an existing host over SSH; no image is made"
    schema: dict = {}
    Config = SshConfig
    produces_image = False
    ssh_required = ("host",)

    def steps(self, recipe: Recipe, build: Build) -> list[Step]:
        ssh = build.source.ssh
        return [Connect(Endpoint.from_settings(ssh), ssh.connect_timeout), GatherFacts(), Provision()]

"""Steps every platform shares once it has a machine: connect, gather facts, provision."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.build.executor import provision
from engine.build.ansible_facts import ansible_facts
from engine.build.facts import PROBE_KEY, gather_facts
from engine.build.runner import BuildState, Cleanup
from engine.leftovers import claims
from engine.remote.ssh import Endpoint, SshSession


@dataclass
class ClaimOutput:
    """Every build's first step: hold its output folder (engine.leftovers.claims), so a second run writing the same
    folder refuses, and a dead run's leftovers can be told from a live one's."""

    name: str = "claim output"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        output = state.options.output_dir / state.build.info.name
        claim = claims.take(output, state.build.info.name, state.build.info.id)
        cleanup.push(f"claim on {output}", lambda: asyncio.to_thread(claim.release))
        state.claim = claim


@dataclass
class MakeWorkDir:
    """A private temporary folder for the build's keys, disks and logs (state.work_dir), removed at the end."""

    name: str = "work directory"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        path = Path(tempfile.mkdtemp(prefix=f"recipe-{state.build.info.name}-"))
        cleanup.push(f"work directory {path}", lambda: asyncio.to_thread(shutil.rmtree, path, True))
        state.work_dir = path
        if state.claim:
            state.claim.note_work_dir(path)


@dataclass
class Connect:
    """Open the build's one SSH connection; every task reuses it.

    Platforms whose endpoint is known only once a machine runs, or that can
    tell more about a failure, override target() and wait_connected().
    """

    endpoint: Endpoint | None = None
    timeout: float = 300.0
    name: str = "connect"

    def target(self, state: BuildState) -> Endpoint:
        assert self.endpoint is not None
        return self.endpoint

    async def wait_connected(self, session: SshSession, state: BuildState) -> None:
        await session.connect(self.timeout)

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        endpoint = self.target(state)
        session = SshSession(endpoint, warn=lambda msg: state.events.emit("warning", msg=msg))
        cleanup.push(f"ssh connection to {endpoint}", session.close)
        await self.wait_connected(session, state)
        state.connection, state.endpoint = session, endpoint
        state.events.emit("connected", endpoint=str(endpoint), host_key_verified=session.host_key_verified)


@dataclass
class GatherFacts:
    name: str = "gather facts"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        assert state.connection is not None
        gathered = await gather_facts(state.connection)
        state.ansible_facts = ansible_facts(gathered)
        # the probe's raw sections (the login environment among them) stay out of logs and templates
        state.facts = {key: value for key, value in gathered.items() if key != PROBE_KEY}
        state.events.emit("facts", facts=state.facts)


@dataclass
class Provision:
    """Run the recipe's tasks, then the handlers they notified."""

    name: str = "provision"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        await provision(state, state.recipe.tasks, state.recipe.handlers, state.task_cache)

"""Steps every platform shares once it has a machine: connect, gather facts, provision."""
from __future__ import annotations

from dataclasses import dataclass

from engine.executor import provision
from engine.facts import gather_facts
from engine.runner import BuildState, Cleanup
from engine.ssh import Endpoint, SshSession


@dataclass
class Connect:
    """Open the build's one SSH connection; every task reuses it."""

    endpoint: Endpoint
    timeout: float
    name: str = "connect"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        session = SshSession(self.endpoint, warn=lambda msg: state.events.emit("warning", msg=msg))
        cleanup.push(f"ssh connection to {self.endpoint}", session.close)
        await session.connect(self.timeout)
        state.connection = session
        state.events.emit("connected", endpoint=str(self.endpoint), host_key_verified=session.host_key_verified)


@dataclass
class GatherFacts:
    name: str = "gather facts"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        assert state.connection is not None
        state.facts = await gather_facts(state.connection)
        state.events.emit("facts", facts=state.facts)


@dataclass
class Provision:
    """Run the recipe's tasks, then the handlers they notified."""

    name: str = "provision"

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        await provision(state, state.recipe.tasks, state.recipe.handlers)

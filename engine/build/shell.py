"""`recipe shell RECIPE --at TASK`: the build's machine as it is right after one of its top-level tasks, with an
SSH shell in it; the machine is discarded when the shell ends.

The build runs its platform's steps up to its tasks (a qemu build resumes the deepest cache layer it has,
and keeps the layers of the tasks it runs), with the tasks after TASK left out and no handler flush at the
end (the layer after a task holds what it notified, not yet run); then the system's `ssh` client opens the
shell, with the build's own login key and its host key pinned. No shutdown, no export.
"""
from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from engine.build.runner import BuildOutcome, BuildState, Cleanup, RunOptions, Step, run_steps
from engine.build.steps import Provision
from engine.console.events import EventBus
from engine.errors import BuildError, UsageError
from engine.recipe.model import Build, Recipe
from engine.registry import PLATFORMS
from engine.remote.ssh import Endpoint


def task_count(recipe: Recipe, at: str) -> int:
    """How many top-level tasks run for `--at TASK`: TASK by name (or heading, e.g. `role web`), or by its
    number from 1."""
    headings = [task.heading for task in recipe.tasks]
    if at.isdigit() and 1 <= int(at) <= len(headings):
        return int(at)
    found = [index for index, heading in enumerate(headings) if heading == at]
    if len(found) == 1:
        return found[0] + 1
    listed = "; ".join(f"{index}: {heading}" for index, heading in enumerate(headings, 1))
    if found:
        raise UsageError(f"--at: {len(found)} top-level tasks are called {at!r}", hint=f"give its number: {listed}")
    raise UsageError(f"--at: no top-level task {at!r} in {recipe.path.name}",
                     hint=f"a name or a number: {listed}" if headings else "the recipe has no tasks")


def choose_build(recipe: Recipe, source: str | None) -> Build:
    names = [build.source.name for build in recipe.builds]
    if source is None and len(names) == 1:
        return recipe.builds[0]
    chosen = [build for build in recipe.builds if build.source.name == source]
    if not chosen:
        what = "which source" if source is None else f"no source {source!r}"
        raise UsageError(f"--source: {what}", hint=f"the recipe's sources: {', '.join(names)}")
    return chosen[0]


@dataclass
class OpenShell:
    """ssh into the machine, interactive (a terminal when recipe has one), or running `command`."""

    command: tuple[str, ...]
    name: str = "shell"
    exit_code: int | None = None

    async def run(self, state: BuildState, cleanup: Cleanup) -> None:
        endpoint = state.endpoint
        if endpoint is None:
            raise BuildError("the build has no SSH endpoint to open a shell on")
        client = shutil.which("ssh")
        if client is None:
            raise BuildError("no ssh client on this host", hint="install openssh-client")
        with tempfile.TemporaryDirectory(prefix="recipe-shell-") as folder:
            argv, env = ssh_command(client, endpoint, Path(folder), self.command, sys.stdin.isatty())
            state.events.emit("shell", endpoint=str(endpoint), command=shlex.join(self.command))
            process = await asyncio.create_subprocess_exec(*argv, env=env)
            try:
                self.exit_code = await process.wait()
            finally:
                if process.returncode is None:      # interrupted: no ssh outlives the machine
                    process.kill()
                    await process.wait()


def ssh_command(client: str, endpoint: Endpoint, folder: Path, command: tuple[str, ...],
                terminal: bool) -> tuple[list[str], dict[str, str]]:
    """The ssh client's command line and environment: the build's key, its host key pinned in a known_hosts
    file of our own (never the user's), a password through SSH_ASKPASS from a 0600 file (never argv)."""
    known_hosts = folder / "known_hosts"
    options = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-p", str(endpoint.port)]
    if endpoint.host_key:
        host = endpoint.host if endpoint.port == 22 else f"[{endpoint.host}]:{endpoint.port}"
        known_hosts.write_text(f"{host} {endpoint.host_key}\n")
        options += ["-o", "StrictHostKeyChecking=yes"]
    elif endpoint.known_hosts:
        options[1] = f"UserKnownHostsFile={os.path.expanduser(endpoint.known_hosts)}"
        options += ["-o", "StrictHostKeyChecking=yes"]
    else:
        options += ["-o", "StrictHostKeyChecking=accept-new"]   # as the build did: it warned it could not verify
    if endpoint.private_key_file:
        options += ["-i", os.path.expanduser(endpoint.private_key_file), "-o", "IdentitiesOnly=yes"]
    env = dict(os.environ)
    if endpoint.password:
        secret, askpass = folder / "password", folder / "askpass"
        secret.touch(0o600)
        secret.write_text(endpoint.password)
        askpass.write_text(f"#!/bin/sh\ncat {shlex.quote(str(secret))}\n")
        askpass.chmod(0o700)
        env.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force")
    if terminal:
        options.append("-t")
    return [client, *options, f"{endpoint.user}@{endpoint.host}", *(["--", *command] if command else [])], env


def shell_steps(steps: list[Step], shell: OpenShell) -> list[Step]:
    """The platform's steps up to and with its Provision, then the shell: no shutdown, export or verify."""
    cut = next(index for index, step in enumerate(steps) if isinstance(step, Provision))
    return [*steps[:cut + 1], shell]


async def open_shell(recipe: Recipe, build: Build, tasks: int, options: RunOptions, bus: EventBus,
                     command: tuple[str, ...]) -> tuple[BuildOutcome, int | None]:
    """The build's outcome up to the shell, and the shell's exit code (None if it never opened)."""
    upto = replace(recipe, tasks=recipe.tasks[:tasks], final_flushes=0, verify=())
    platform_class = PLATFORMS.get(build.source.platform)
    assert platform_class is not None, "the schema admits registered platforms only"
    state = BuildState(recipe=upto, build=build, options=options, events=bus.bind(build=build.info.name))
    shell = OpenShell(command)
    outcome = await run_steps(state, shell_steps(platform_class().steps(upto, build), shell))
    return outcome, shell.exit_code

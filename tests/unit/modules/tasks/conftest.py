"""Task modules run for real against files in tmp_path, through a local /bin/sh.

LocalConnection keeps the Connection contract the SSH session keeps: the
script goes to `sh -c`, output comes back decoded with errors replaced, an
upload is a 0600 file written as "the login user". become is ignored.
"""
from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.build.taskmodule import Result, TaskContext
from engine.errors import BuildError
from engine.recipe.template import Scope, evaluate
from engine.recipe.template import render_text as render_engine_text
from engine.registry import TASK_MODULES, load_plugins
from engine.remote.connection import Become, CommandResult


@dataclass
class LocalConnection:
    scripts: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    reconnects: int = 0

    async def run(self, command: str, *, stdin: bytes | str | None = None, become: Become | None = None,
                  timeout: float | None = None, on_output: Any = None) -> CommandResult:
        self.scripts.append(command)
        process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
        out, err = await asyncio.wait_for(process.communicate(data), timeout)
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if on_output:
            for name, text in (("stdout", stdout), ("stderr", stderr)):
                for line in text.splitlines():
                    on_output(name, line)
        return CommandResult(process.returncode, stdout, stderr)

    async def upload(self, data: bytes, remote_path: str) -> None:
        self.uploads.append(remote_path)
        fd = os.open(remote_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    async def reconnect(self, timeout: float) -> None:
        self.reconnects += 1

    async def close(self) -> None:
        pass

    def reset(self) -> None:
        self.scripts.clear()
        self.uploads.clear()
        self.reconnects = 0


@dataclass
class NobodyConnection(LocalConnection):
    """LocalConnection whose commands run as nobody (setpriv): what a task without become gets on a guest."""

    async def run(self, command: str, **kwargs: Any) -> CommandResult:
        return await super().run(f"exec setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c "
                                 f"{shlex.quote(command)}", **kwargs)


@dataclass
class Harness:
    """Runs a module by name as the executor does: rendered args -> params -> run."""

    root: Path
    connection: LocalConnection
    variables: dict[str, Any]
    output: list[tuple[str, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def set_vars(self, **values: Any) -> None:
        """Variables the next runs see, in templates and in expressions (assert's that:)."""
        self.variables.update(values)

    def context(self, check: bool = False) -> TaskContext:
        def find_file(src: str, kind: str) -> Path:
            path = self.root / kind / src
            # include_vars' dir: and copy's src: take a directory as well as a file, as the engine's find_file
            if not (path.is_file() or (kind in ("vars", "files") and path.is_dir())):
                raise BuildError(f"{kind[:-1]} {src!r} not found", hint=f"looked in {self.root / kind}")
            return path

        def render_text(text: str, **options: Any) -> str:     # the engine's, as a task gets it
            return render_engine_text(text, Scope([self.variables]), options)

        def evaluate_expression(expression: Any) -> Any:   # the engine's own evaluation, as `when:` gets it
            return evaluate(expression, Scope([self.variables], fixed={"facts": self.facts}))

        return TaskContext(connection=self.connection, check=check, become=None, find_file=find_file,
                           render_text=render_text, evaluate=evaluate_expression, facts=self.facts,
                           output=lambda stream, line: self.output.append((stream, line)))

    def params(self, module: str, args: Any) -> Any:
        return TASK_MODULES.get(module).params(args)

    def run(self, module: str, args: Any, check: bool = False) -> Result:
        self.connection.reset()
        params = self.params(module, args)
        return asyncio.run(TASK_MODULES.get(module)().run(params, self.context(check)))

    def file(self, kind: str, name: str, content: str | bytes) -> Path:
        path = self.root / kind / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    load_plugins()
    (tmp_path / "files").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "target").mkdir()
    return Harness(tmp_path, LocalConnection(), {"greeting": "hello", "port": 8080})


@pytest.fixture
def target(h: Harness) -> Path:
    """Where the 'remote' files live."""
    return h.root / "target"


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def leftovers(h: Harness) -> list[str]:
    """Uploads of the last run still on disk: every module must remove its own."""
    return [path for path in h.connection.uploads if os.path.exists(path)]


ANSIBLE = Path(sys.executable).parent / "ansible"


def ansible_module(module: str, args: dict[str, Any]) -> dict[str, Any]:
    """What real Ansible (the oracle) returns for `ansible localhost -c local -m module -a args`.

    ansible-core is a test dependency (make test installs it): without it the test fails, it never skips.
    """
    if not ANSIBLE.exists():
        pytest.fail("ansible-core is not installed in the venv: run make test, which installs it")
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    done = subprocess.run([str(ANSIBLE), "localhost", "-c", "local", "-o", "-m", module, "-a", json.dumps(args)],
                          capture_output=True, text=True, timeout=300, env=env)
    # a failure prints a summary line first ("localhost | FAILED | rc=2 | (stdout)"), then the result after " => "
    line = next((line for line in done.stdout.splitlines() if line.startswith("localhost | ") and " => " in line), None)
    assert line is not None, f"ansible gave no result: {done.stdout[-500:]} {done.stderr[-500:]}"
    return json.loads(line.split(" => ", 1)[1])

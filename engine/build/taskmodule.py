"""The contract every task module keeps, after Ansible's:

argument schema -> validated, typed params -> read the current state -> return
early in check mode or when nothing would change -> act -> Result.

A module lives in modules/tasks/<name>.py with its schema beside its code and
registers itself by subclassing TaskModule with name=... . Guests need only a
POSIX shell: modules run shell snippets through the Connection they are given.
"""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, ClassVar, Mapping

import voluptuous as vol

from engine.build.inventory import Inventory
from engine.recipe.kv import parse_kv
from engine.recipe.schema import key_names, strict, templatable
from engine.registry import TASK_MODULES
from engine.remote.connection import Become, CommandResult, Connection


@dataclass(frozen=True)
class Result:
    """What a task did. data holds module-specific values that `register` exposes."""

    changed: bool = False
    failed: bool = False
    skipped: bool = False
    msg: str = ""
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    diff: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    new_vars: Mapping[str, Any] = field(default_factory=dict)   # variables later tasks see (set_fact)
    facts: Mapping[str, Any] = field(default_factory=dict)      # Ansible's `ansible_facts` a module returns

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.skipped:
            return "skipped"
        return "changed" if self.changed else "ok"

    def as_register(self) -> dict[str, Any]:
        """The value `register:` stores, shaped as Ansible users expect."""
        value: dict[str, Any] = {"changed": self.changed, "failed": self.failed, "skipped": self.skipped,
                                 "msg": self.msg}
        if self.rc is not None:
            value.update(rc=self.rc, stdout=self.stdout, stderr=self.stderr,
                         stdout_lines=self.stdout.splitlines(), stderr_lines=self.stderr.splitlines())
        value.update(self.data)
        return value

    def replace(self, **changes: Any) -> "Result":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Subtask:
    """A step another tool ran inside this task (an Ansible task of a playbook): shown and counted as a task."""

    name: str
    status: str                 # ok | changed | skipped | failed
    msg: str = ""
    where: str = ""             # the tool's file:line for it
    duration: float = 0.0
    ignored: bool = False       # failed, and the tool carried on (its ignore_errors)


@dataclass
class TaskContext:
    """What a module may use: the connection, the mode, and file lookups."""

    connection: Connection
    check: bool
    become: Become | None
    find_file: Callable[[str, str], Path]            # (src, "files"|"templates") -> local path
    render_text: Callable[..., str]     # render a template file's text in the task's scope (Jinja options=...)
    evaluate: Callable[[Any], Any] = lambda expression: expression   # a bare expression (assert's that:)
    facts: Mapping[str, Any] = field(default_factory=dict)           # what was gathered about the target
    environment: Mapping[str, str] = field(default_factory=dict)     # the task's `environment:`
    async_job: Callable[[str], Mapping[str, Any] | None] = lambda job: None   # async_status: a job's result
    inventory: Inventory | None = None                # the play's hosts and groups (add_host reads it)
    output: Callable[[str, str], None] | None = None  # (stream, line) while commands run
    timeout: float | None = None
    diff: bool = False                                # the user asked to see file changes (--diff)
    subtask_started: Callable[[str], None] = lambda name: None     # a tool run by the task began a step
    subtask_ended: Callable[[Subtask], None] = lambda step: None   # ... and finished it (counted in the recap)
    work_dir: Path | None = None                      # the build's private folder on this host

    async def sh(self, script: str, stdin: bytes | str | None = None, become: bool = True,
                 stream: bool = True) -> CommandResult:
        """Run a POSIX shell script on the target, as the become user when asked.

        stream=False for a module's own probes: their output (a whole file, say) is not the task's output.
        """
        if self.environment:
            exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in self.environment.items())
            script = exports + script
        return await self.connection.run(script, stdin=stdin, become=self.become if become else None,
                                         timeout=self.timeout, on_output=self.output if stream else None)

    async def upload(self, data: bytes, remote_path: str) -> None:
        await self.connection.upload(data, remote_path)


class TaskModule:
    """Subclass with name=... ; define schema (a dict), Params (a dataclass) and run()."""

    name: ClassVar[str]
    schema: ClassVar[dict] = {}
    free_form: ClassVar[str | None] = None     # `shell: echo hi` means {free_form: "echo hi"}
    aliases: ClassVar[dict[str, str]] = {}     # Ansible's documented option aliases: {"dest": "path"}
    description: ClassVar[str] = ""
    Params: ClassVar[type] = dict
    local_files: ClassVar[dict[str, str]] = {}   # option -> "files"|"templates": checked to exist by validate
    raw_options: ClassVar[tuple[str, ...]] = ()  # options the engine hands over unrendered (assert's `that`)
    # a run's words for required options left out: AnsibleModule's, which content asserts on (copy has its own)
    missing_words: ClassVar[str] = "missing required arguments: {}"

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if name:
            cls.name = name
            TASK_MODULES.add(name, cls)

    @classmethod
    def normalize(cls, args: Any) -> Any:
        """The mapping the arguments stand for: the free-form shorthand (`shell: echo hi`), Ansible's
        `key=value` string (`apt: name=nginx state=present`, `command: ls chdir=/tmp`), aliases resolved."""
        if args is None:
            return {}
        if isinstance(args, str):
            args = cls._from_string(args)
        if isinstance(args, dict) and cls.aliases:
            args = {cls.aliases.get(key, key) if isinstance(key, str) else key: value for key, value in args.items()}
        return args

    @classmethod
    def _from_string(cls, args: str) -> Any:
        if cls.free_form:
            options = frozenset(key_names(cls.schema)) | frozenset(cls.aliases)
            parsed = parse_kv(args, only=options - {cls.free_form})
            if not parsed.options:
                return {cls.free_form: args}        # as written: no k=v word, nothing re-joined
            return {**parsed.options, **({cls.free_form: parsed.free_form} if parsed.free_form else {})}
        if "=" not in args:
            return args                               # the schema reports a string where a mapping goes
        parsed = parse_kv(args)
        if parsed.free_form:
            return args
        return parsed.options

    @classmethod
    def notes(cls, args: Any) -> list[str]:
        """What validate can tell of these arguments without refusing them: a task that will fail as it does
        in Ansible (the arguments as written, normalized)."""
        return []

    @classmethod
    def static_schema(cls) -> Any:
        """The schema with a template allowed in place of any value: used before rendering."""
        return strict({key: templatable(value) for key, value in cls.schema.items()}, what="option")

    @classmethod
    def runtime_schema(cls) -> Any:
        return strict(cls.schema, what="option")

    @classmethod
    def params(cls, rendered_args: Any) -> Any:
        validated = vol.Schema(cls.runtime_schema())(cls.normalize(rendered_args))
        return cls.Params(**validated) if cls.Params is not dict else validated

    async def run(self, params: Any, ctx: TaskContext) -> Result:  # pragma: no cover - interface
        raise NotImplementedError


ResultAwaitable = Awaitable[Result]

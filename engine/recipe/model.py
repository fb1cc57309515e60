"""Frozen, typed objects the runner works from; nothing past here is a raw recipe dict.

Task arguments stay as written (templates included) because they can only be
rendered when the task runs, with facts and registered results at hand; the
task module's own schema turns them into its typed parameters then.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from engine.errors import Position

EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class BuildInfo:
    """The `build` variable: what identifies one build of one source."""

    id: str
    source: str
    recipe: str
    timestamp: int

    @property
    def name(self) -> str:
        return f"{self.recipe}-{self.source}"

    def as_vars(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "recipe": self.recipe,
                "name": self.name, "timestamp": self.timestamp}


@dataclass(frozen=True)
class SshSettings:
    """How to reach a machine over SSH. Platforms fill in what they know (host, port, keys)."""

    user: str = "root"
    host: str | None = None
    port: int = 22
    password: str | None = None
    private_key_file: str | None = None
    host_key: str | None = None          # "ssh-ed25519 AAAA...": verified when given
    known_hosts: str | None = None       # a known_hosts file to verify against
    connect_timeout: float = 300.0


@dataclass(frozen=True)
class Origin:
    """Where a task came from, for finding its files and templates."""

    base_dir: Path                       # the recipe's directory
    role: str | None = None
    role_dir: Path | None = None
    role_vars: Mapping[str, Any] = field(default_factory=lambda: EMPTY)  # the role's vars/main.yml and the vars it was called with
    collection: str | None = None        # "ns.col" for a collection's role: its full name is ns.col.<role>

    @property
    def role_fqcn(self) -> str | None:
        """The role's full name, as Ansible's ansible_role_name: ns.col.role for a collection's role."""
        return f"{self.collection}.{self.role}" if self.collection and self.role else self.role

    def search_dirs(self, kind: str, task_file: str | None = None) -> list[Path]:
        """Directories to look for a `files` or `templates` src, most specific first: the role's, then beside
        the task file that names it (an imported tasks file's own files/), then the recipe's, as Ansible."""
        dirs = []
        if self.role_dir:
            dirs += [self.role_dir / kind, self.role_dir]
        if task_file:
            here = Path(task_file).parent
            dirs += [here / kind, here]
        dirs += [self.base_dir / kind, self.base_dir]
        return list(dict.fromkeys(dirs))


@dataclass(frozen=True)
class Task:
    """One entry of a task list: a module call, or a block of tasks.

    Keywords Ansible lets a template decide (ignore_errors: "{{ ansible_check_mode }}") hold the value as
    written and are rendered when the task runs; a block's keywords are already pushed down into its tasks
    (see engine.recipe.compile), as Ansible's blocks pass them on.
    """

    position: Position
    path: str                                  # e.g. "tasks[2]", for messages
    origin: Origin
    name: str | None = None
    module: str | None = None                  # None for a block
    written: str | None = None                 # the module's name as written (ansible.builtin.copy): an unnamed
                                               # task's label, as Ansible names it
    args: Any = None                           # as written; rendered when the task runs
    args_position: Position | None = None
    when: tuple[Any, ...] = ()
    loop: Any = None
    lookup: str | None = None                  # with_<lookup>: loop holds the lookup's terms
    loop_var: str = "item"
    loop_label: str | None = None
    index_var: str | None = None
    extended: bool = False                     # loop_control.extended: ansible_loop
    loop_pause: Any = 0
    register: str | None = None
    vars: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    become: Any = None
    become_user: Any = None
    become_method: str | None = None
    remote_user: Any = None
    environment: tuple[Any, ...] = ()          # mappings or templates of one, outermost first
    delegate_to: Any = None
    no_log: Any = False
    diff: Any = None
    tags: frozenset[str] = frozenset()
    notify: tuple[str, ...] = ()
    changed_when: tuple[Any, ...] | None = None
    failed_when: tuple[Any, ...] | None = None
    ignore_errors: Any = False
    only: tuple[str, ...] = ()
    except_: tuple[str, ...] = ()
    retries: Any = None
    until: Any = None
    delay: Any = 1.0
    timeout: float | None = None
    background: bool = False                   # async with poll: 0: registered as a job async_status reads
    check_mode: Any = None
    cache: bool = True                         # false: no cache layer from this task on (engine.build.layer_keys)
    include: str | None = None                 # "include_tasks"/"include_role": a block included at run time
    role_choice: str | None = None             # include_role "{{ item }}": the name's template on the include,
                                               # the role's name on each of the blocks it may run
    block: tuple["Task", ...] = ()
    rescue: tuple["Task", ...] = ()
    always: tuple["Task", ...] = ()

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.module is None:
            return self.include or "block"
        if isinstance(self.args, str):
            return f"{self.written or self.module}: {self.args}"
        return self.written or self.module

    @property
    def heading(self) -> str:
        """What a top-level task is called where the recipe's tasks are listed (cache layers, `cached` lines):
        its label, but `role web` for the unnamed block a role's tasks run in (roles: or import_role). Only at
        the top: deeper down, an unnamed block of a role's own tasks looks the same."""
        if self.name or self.module is not None or self.include is not None:
            return self.label
        if self.origin.role:
            return f"role {self.origin.role_fqcn}"
        roles = [inner.origin.role_fqcn for inner in self.block if inner.origin.role and inner.module is None]
        return f"role {roles[-1]}" if roles else self.label     # import_role: its dependencies' blocks first

    def runs_on(self, source: str) -> bool:
        if self.only and source not in self.only:
            return False
        return source not in self.except_


@dataclass(frozen=True)
class Handler:
    """A task that runs once at the end when a changed task notified it."""

    task: Task
    listen: tuple[str, ...] = ()
    group: int = 0      # Ansible's handler block it is in: a notification looks in the latest block first
    included: bool = False   # an include_role's: notified only once the include has run, as in Ansible

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.task.name, *self.listen) if n)


@dataclass(frozen=True)
class Source:
    """One platform configuration: one build per source."""

    name: str
    platform: str
    position: Position
    config: Any                               # the platform's own frozen dataclass
    ssh: SshSettings


@dataclass(frozen=True)
class Export:
    kind: str
    position: Position | None
    config: Any                               # the export's own frozen dataclass
    keep_input: bool = True                   # false: remove what this export consumed once it is done


@dataclass(frozen=True)
class Build:
    """What one build does: its identity, its source, its exports."""

    info: BuildInfo
    source: Source
    exports: tuple[Export, ...] = ()


@dataclass(frozen=True)
class Variables:
    """Every layer of variables, lowest precedence first; see engine.recipe.variables."""

    role_defaults: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    recipe: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    vars_files: Mapping[str, Any] = field(default_factory=lambda: EMPTY)   # the recipe's vars_files:
    files: Mapping[str, Any] = field(default_factory=lambda: EMPTY)        # --var-file
    cli: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    env: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    def layers(self) -> list[Mapping[str, Any]]:
        return [self.role_defaults, self.recipe, self.vars_files, self.files, self.cli, self.env]

    def names(self) -> set[str]:
        return {name for layer in self.layers() for name in layer}


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    digest: str                               # sha256 of the recipe file and all it includes
    description: str = ""
    variables: Variables = field(default_factory=Variables)
    secrets: frozenset[str] = frozenset()
    become: bool = False
    tasks: tuple[Task, ...] = ()
    handlers: tuple[Handler, ...] = ()
    verify: tuple[Task, ...] = ()
    builds: tuple[Build, ...] = ()
    gather_facts: bool = True                 # false: `ansible_facts` starts empty, until setup runs
    force_handlers: bool = False              # notified handlers run even when a task fails the build
    cache_max_age: float | None = None        # cache: {max_age}: older layers are not resumed (seconds)
    # Ansible flushes handlers after the tasks and after post_tasks; without post_tasks both come at the end
    final_flushes: int = 2
    notes: tuple[Any, ...] = ()               # Problems that do not make it invalid: modules recipe does not run
    files_read: tuple[Path, ...] = ()         # the recipe file and every file it includes (vars files, task files)
    role_dirs: tuple[Path, ...] = ()          # the folder of every role it names, wherever it was found

    @property
    def task_count(self) -> int:
        """Tasks as a user counts them: the leaves of blocks, roles and includes."""
        return count_leaves(self.tasks)

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def count_leaves(tasks: tuple[Task, ...], source: str | None = None) -> int:
    """The most tasks that can start (on this source, when given): leaves of blocks, roles and includes
    (rescue and always included), a loop counting as one; flush_handlers counts as none."""
    return sum(count_leaves(t.block + t.rescue + t.always, source) if t.module is None else 1
               for t in tasks if t.module != "meta" and (source is None or t.runs_on(source)))

"""One build's run of a recipe's tasks: what it remembers between tasks, and what a task's templates see.

A build is Ansible's play against one host. Its variables, lowest precedence
first: role defaults, the recipe's vars and vars_files, the role's vars and
params, block and task vars, --var-file, --var, RECIPE_VAR_*; over them the
values a task cannot override: recipe's own `build` and `facts`, Ansible's
facts and magic variables, registered results and set_fact, loop values.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from engine.build.inventory import Inventory
from engine.build.runner import BuildState
from engine.recipe.model import Handler, Recipe, Task
from engine.recipe.template import Scope
from engine.remote.connection import Connection

# Ansible's version whose task language recipe speaks: content compares it (ansible_version.full is version(...)).
ANSIBLE_VERSION = {"full": "2.19.0", "major": 2, "minor": 19, "revision": 0, "string": "2.19.0"}
UNTAGGED = frozenset({"untagged"})


@dataclass(frozen=True)
class TagFilter:
    """--tags and --skip-tags, with Ansible's rules for always, never, tagged, untagged and all."""

    only: frozenset[str] = frozenset({"all"})
    skip: frozenset[str] = frozenset()

    def selects(self, tags: frozenset[str]) -> bool:
        tags = tags or UNTAGGED
        if "always" in tags and "always" not in self.skip:
            run = True
        elif "all" in self.only:
            run = "never" not in tags
        else:
            run = bool(tags & self.only) or ("tagged" in self.only and tags != UNTAGGED and "never" not in tags)
        if not run or not self.skip:
            return run
        if "all" in self.skip:
            return "always" in tags and "always" not in self.skip
        if tags & self.skip:
            return False
        return not ("tagged" in self.skip and tags != UNTAGGED)


@dataclass
class Jobs:
    """async with poll: 0. recipe runs the task to its end at once (the build waits for it anyway), and
    async_status finds it finished: the outcome Ansible's fire-and-forget reaches, in the same steps."""

    finished: dict[str, dict[str, Any]] = field(default_factory=dict)

    def start(self, result: dict[str, Any]) -> dict[str, Any]:
        job = f"j{secrets.token_hex(6)}"
        self.finished[job] = {**result, "ansible_job_id": job, "started": True, "finished": True}
        return {"ansible_job_id": job, "started": True, "finished": False, "changed": True, "failed": False,
                "results_file": f"~/.ansible_async/{job}"}

    def status(self, job: str) -> dict[str, Any] | None:
        return self.finished.get(job)


@dataclass
class Play:
    """The mutable part of one build's run: registered values and notified handlers."""

    state: BuildState
    handlers: tuple[Handler, ...] = ()
    host_vars: dict[str, Any] = field(default_factory=dict)       # registered results and set_fact: values
    included_vars: dict[str, Any] = field(default_factory=dict)   # include_vars: templates, rendered when used
    inventory: Inventory = field(init=False)                        # group_by's groups, add_host's hosts
    jobs: Jobs = field(default_factory=Jobs)                        # async tasks, for async_status
    notified: set[str] = field(default_factory=set)                # names notified since the handlers last looked
    pending: set[int] = field(default_factory=set)                 # handlers (by index) notified, yet to run
    included_roles: set[Path] = field(default_factory=set)         # dirs of the roles include_role has run
    tags: TagFilter = TagFilter()
    ansible_facts: dict[str, Any] = field(default_factory=dict)
    omit: str = field(default_factory=lambda: f"__omit_place_holder__{secrets.token_hex(20)}")
    local: Connection | None = None          # the build host, for delegate_to: localhost
    in_handlers: bool = False                # running handlers: their task events say so
    errors_cleared: bool = False             # meta: clear_host_errors ran (in a block's always)
    pausing: bool = False                    # --debug at a terminal: ask before each task
    total: int = 0                           # the most tasks this play can start (task.start's `total`)
    started: int = 0                         # tasks started so far (task.start's `number`)
    _last_started: Task | None = None        # a loop's iterations share their task's number

    def __post_init__(self) -> None:
        self.inventory = Inventory(self.host)

    def number(self, task: Task) -> int:
        if task is not self._last_started:
            self.started += 1
            self._last_started = task
        return self.started

    @property
    def recipe(self) -> Recipe:
        return self.state.recipe

    @property
    def host(self) -> str:
        """inventory_hostname: the build's source name, the one host of this play."""
        return self.state.build.source.name

    def magic(self, task: Task) -> dict[str, Any]:
        """Ansible's magic variables and injected facts, as this task sees them."""
        names: dict[str, Any] = {
            "inventory_hostname": self.host, "inventory_hostname_short": self.host.split(".")[0],
            "group_names": self.inventory.group_names(self.host), "groups": self.inventory.groups(),
            "ansible_play_hosts": [self.host], "ansible_play_hosts_all": [self.host],
            "ansible_play_batch": [self.host], "play_hosts": [self.host],
            "playbook_dir": str(self.recipe.base_dir), "ansible_check_mode": self.state.options.check,
            "ansible_diff_mode": self.state.options.diff, "ansible_version": ANSIBLE_VERSION, "omit": self.omit,
            "ansible_run_tags": sorted(self.tags.only), "ansible_skip_tags": sorted(self.tags.skip),
            "ansible_managed": "Ansible managed",     # Ansible 2.19's default, what templates put in headers
        }
        endpoint = self.state.endpoint
        if endpoint is not None:     # the build's connection, as an inventory would give Ansible's
            names.update(ansible_host=endpoint.host, ansible_port=endpoint.port, ansible_user=endpoint.user)
        if task.origin.role_dir is not None:
            names.update(role_path=str(task.origin.role_dir), role_name=task.origin.role,
                         ansible_role_name=task.origin.role_fqcn)
        search = [str(Path(task.position.file).parent), names.get("role_path"), names["playbook_dir"]]
        names["ansible_search_path"] = list(dict.fromkeys(d for d in search if d))
        # without gather_facts the mapping starts empty (`ansible_facts == {}`), and setup fills it
        names["ansible_facts"] = self.ansible_facts
        return names

    def injected_facts(self) -> dict[str, Any]:
        """Each fact as a variable of its own (ansible_os_family), as Ansible injects them: below the play's
        vars in precedence, so that `vars: {ansible_nodename: x}` wins over the gathered fact."""
        return {f"ansible_{key}": value for key, value in self.ansible_facts.items()}

    def scope(self, task: Task, block_vars: list[Mapping[str, Any]], loop_item: Mapping[str, Any] | None = None) -> Scope:
        variables = self.recipe.variables
        layers = [variables.role_defaults, self.injected_facts(), variables.recipe, variables.vars_files,
                  task.origin.role_vars, *block_vars, task.vars, self.included_vars, variables.files, variables.cli,
                  variables.env]
        view = ScopeView()
        hostvars = {**{name: self.inventory.host_vars(name) for name in self.inventory.added}, self.host: view}
        fixed = {**self.magic(task), "build": self.state.build.info.as_vars(), "facts": self.state.facts,
                 **self.host_vars, **(loop_item or {}), "vars": view, "hostvars": hostvars}
        view.scope = Scope(layers, fixed)
        return view.scope


class ScopeView(Mapping):
    """`vars` and `hostvars[inventory_hostname]`: every variable the task sees, by name."""

    scope: Scope | None = None

    def __getitem__(self, name: str) -> Any:
        assert self.scope is not None
        return self.scope[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scope or ())

    def __len__(self) -> int:
        return len(self.scope or ())


__all__ = ["ANSIBLE_VERSION", "Play", "ScopeView", "TagFilter"]

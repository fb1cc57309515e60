"""Ansible as the oracle: run the same tasks with `ansible-playbook` and with `recipe run` against one sshd
and compare what each did.

An item (a case of the differential tests, or a role of a corpus) becomes one play for Ansible and one
recipe with an ssh source for recipe; both get their own fresh `remote_tmp_dir`. Each tool runs every item
twice in the same directory (the second run shows idempotence). Compared, per run: the sequence of task
statuses (ok/changed/skipped/failed, loop items one by one), the files left in remote_tmp_dir, and the
registered results both tools define. Nothing is normalised but the tmp dir's own path and volatile keys.

A whole play of a playbook (the corpus bench's script targets) is an item too: its copies for each tool are
written beside the playbook, and it runs alone in its batch, with its own options and environment.

Batching keeps it fast: one `ansible-playbook` for all items (a play per item, each with its own inventory
alias of the same sshd, so one item's failed host does not stop the others), one `recipe run` for all the
recipes that validate, both at once.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from tests.sshd import SshServer

BIN = Path(sys.executable).parent
RECIPE = BIN / "recipe"
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"
CALLBACKS = Path(__file__).resolve().parent / "ansible_callback"
PLACEHOLDER = "<remote_tmp_dir>"
REGISTERED = ".registered"          # where the dump tasks write each registered value, inside remote_tmp_dir
BUILD_ERROR = "(build error)"          # recipe's build stopped outside a task (see recipe_statuses)
KILLED = "(killed)"                    # the tool outlived the batch's timeout: its run ends with this task
DUMP_PREFIX = "oracle: registered "  # the dump tasks' names: left out of the status comparison
# keys of a registered result that differ from run to run, whoever runs the task
VOLATILE = frozenset({"start", "end", "delta", "elapsed", "invocation", "atime", "mtime", "ctime", "inode", "dev",
                      "version", "_ansible_no_log", "_ansible_verbose_always", "warnings", "deprecations",
                      "ansible_job_id", "results_file"})     # an async job's id is new every time
UPLOAD = "/.ansible/tmp/"       # in the path of what Ansible uploads to the target's HOME
TOOLS = ("ansible", "recipe")
# a runaway run (handlers notifying each other forever) is read this far: its events, and per item its statuses
MAX_EVENTS = 100_000
MAX_STATUSES = 1_000


# --- what to run -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Play:
    """A whole play of a playbook, run as it is with the options its script gives ansible-playbook (the corpus
    bench's playbook targets). Its wrapped copies go beside the playbook, so relative paths resolve alike."""

    playbook: Path                                 # in a writable copy of the playbook's folder
    index: int                                     # which play of the playbook, from 0
    host: str                                      # its one host: Ansible's inventory alias, recipe's source name
    host_vars: tuple[tuple[str, str], ...] = ()    # the inventory's variables for that host (recipe: --var)
    extra_vars: tuple[tuple[str, str], ...] = ()   # -e / --var
    tags: str = ""                                 # --tags, comma-separated
    skip_tags: str = ""
    ansible_env: tuple[tuple[str, str], ...] = ()  # ANSIBLE_* settings the script gives ansible-playbook
    ansible_options: tuple[str, ...] = ()          # ansible-playbook's switches (--force-handlers, --flush-cache)
    env: tuple[tuple[str, str], ...] = ()          # the controller's environment for both tools (OUTPUT_DIR)


@dataclass(frozen=True)
class Item:
    """One thing both tools run: a task file (a case), a role, as a play body both understand, or a whole play.
    In a Play's values PLACEHOLDER stands for the tool's remote_tmp_dir."""

    name: str                            # the play's name and (but a Play's) inventory alias; slug(name): the recipe's
    tasks: tuple[str, ...] = ()          # task files, run with import_tasks
    roles: tuple[str, ...] = ()
    handlers: str = ""                   # a handlers file's text, put under the play's `handlers:` as it is
    gather_facts: bool = False
    # run as ansible-test runs its targets: with --diff, and OUTPUT_DIR (the tool's remote_tmp_dir) in the
    # controller's environment (the corpus bench's targets)
    ansible_test: bool = False
    registered: tuple[str, ...] = ()     # register: names to dump after the tasks
    roles_path: Path | None = None
    xfail: str | None = None             # a case's expected failure, with its reason
    fails: bool = False                  # the case's play is meant to fail (under Ansible too)
    play: Play | None = None             # a whole play instead of tasks/roles/handlers


def alias(item: Item) -> str:
    """The item's host: its play's, or its name (an inventory alias per item, so one item's failure stops no other)."""
    return item.play.host if item.play else item.name


def build_name(item: Item) -> str:
    """recipe's name for the item's one build: `<recipe name>-<source name>`."""
    return f"{slug(item.name)}-{item.play.host if item.play else 'box'}"


def _settings(text: str) -> dict[str, Any]:
    """A case's settings: its leading `# oracle: {gather_facts: true, xfail: "..."}` comment."""
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# oracle:"):
            return yaml.safe_load(line[len("# oracle:"):]) or {}
    return {}


def registered_names(node: Any) -> list[str]:
    """Every `register:` name in a task file's YAML, in order, once each."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("register"), str):
            found.append(node["register"])
        for value in node.values():
            found += registered_names(value)
    elif isinstance(node, list):
        for value in node:
            found += registered_names(value)
    return list(dict.fromkeys(found))


class _CaseLoader(yaml.SafeLoader):
    """YAML as a case is written: Ansible's `!unsafe` is a plain string here (only names matter)."""


_CaseLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load_case(path: Path) -> Item:
    text = path.read_text()
    settings = _settings(text)
    handlers = path.with_name(path.stem + ".handlers.yml")
    roles = path.parent / "roles"       # the roles a case's include_role names, beside the cases
    return Item(name=path.stem, tasks=(str(path),), handlers=handlers.read_text() if handlers.exists() else "",
                roles_path=roles if roles.is_dir() else None,
                gather_facts=bool(settings.get("gather_facts", False)),
                registered=tuple(registered_names(yaml.load(text, _CaseLoader))), xfail=settings.get("xfail"),
                fails=bool(settings.get("fails", False)))


def load_cases(directory: Path) -> list[Item]:
    return [load_case(path) for path in sorted(directory.glob("*.yml"))
            if not path.name.endswith((".handlers.yml", ".vars.yml"))]


# --- the play body both tools share ------------------------------------------------------------------------

def _dump_task(name: str) -> str:
    return (f"- name: \"{DUMP_PREFIX}{name}\"\n"
            f"  copy:\n"
            f"    content: \"{{{{ {name} | to_json }}}}\"\n"
            f"    dest: \"{{{{ remote_tmp_dir }}}}/{REGISTERED}/{name}.json\"\n"
            f"  when: {name} is defined\n")


def play_body(item: Item, dumps: bool = False) -> str:
    """`roles:`, `tasks:` and `handlers:` as YAML at column 0: a recipe's keys, and a play's once indented.
    With `dumps`, tasks after the item's write each registered value into remote_tmp_dir/.registered/ (for
    recipe; Ansible's callback reports them)."""
    parts = []
    if item.roles:
        parts.append("roles:\n" + "".join(f"  - {json.dumps(role)}\n" for role in item.roles))
    tasks = "".join(f"- import_tasks: {json.dumps(path)}\n" for path in item.tasks)
    tasks += "".join(_dump_task(name) for name in item.registered) if dumps else ""
    if tasks:
        parts.append("tasks:\n" + textwrap.indent(tasks, "  "))
    if item.handlers.strip():
        parts.append("handlers:\n" + textwrap.indent(item.handlers.rstrip() + "\n", "  "))
    return "".join(parts)


# --- a whole play, wrapped for each tool ------------------------------------------------------------------

# a play's keys that say which hosts, in what order, how many at once and how to reach them: a recipe's
# `sources:` says that, so its recipe leaves them out (Ansible's play keeps all but `hosts:`, which names
# the sshd's alias); `name` is recipe's own
HOST_KEYS = ("hosts", "order", "serial", "strategy", "max_fail_percentage", "throttle", "connection", "port")


@dataclass(frozen=True)
class PlayText:
    """Where a play's keys are in its playbook's text. The wrapped copies keep each kept line on its line, so
    recipe's and Ansible's messages cite the playbook's own line numbers."""

    lines: tuple[str, ...]                     # the whole playbook's
    column: int                                # of the play's keys
    keys: tuple[tuple[str, int, int], ...]     # each key with its lines [start, end)


def play_text(playbook: Path, index: int) -> PlayText:
    """The index-th play of a playbook written in block style; ValueError says why else."""
    text = playbook.read_text()
    root = yaml.compose(text, Loader=yaml.SafeLoader)    # nodes only: any tag (!unsafe, !vault) is fine
    if not isinstance(root, yaml.SequenceNode) or index >= len(root.value):
        raise ValueError(f"{playbook.name} has no play {index + 1}")
    node = root.value[index]
    if not isinstance(node, yaml.MappingNode) or node.flow_style or not node.value:
        raise ValueError(f"{playbook.name} play {index + 1} is not a block mapping")
    starts = [key.start_mark.line for key, _ in node.value]
    if len(set(starts)) != len(starts) or node.value[0][0].start_mark.column < 2:
        raise ValueError(f"{playbook.name} play {index + 1}: keys share a line")
    after = root.value[index + 1].start_mark.line if index + 1 < len(root.value) else len(text.splitlines())
    ends = starts[1:] + [after]
    keys = tuple((str(key.value), start, end) for (key, _), start, end in zip(node.value, starts, ends))
    return PlayText(tuple(text.splitlines()), node.value[0][0].start_mark.column, keys)


def _kept(play: PlayText, drop: Iterable[str]) -> list[str | None]:
    """The playbook's lines, None where a line is not one of the kept keys'."""
    kept: list[str | None] = [None] * len(play.lines)
    for key, start, end in play.keys:
        if key not in drop:
            kept[start:end] = play.lines[start:end]
    return kept


def wrapped_play(item: Item) -> str:
    """Ansible's copy of the play: as it is, but `name:` (the events' key) and `hosts:` (the sshd's alias)."""
    assert item.play is not None
    play = play_text(item.play.playbook, item.play.index)
    lines = [line if line is not None else "" for line in _kept(play, ("name", "hosts"))]
    indent = " " * play.column
    kept = [start for key, start, _ in play.keys if key not in ("name", "hosts")]
    lines += [f"{indent}name: {json.dumps(item.name)}", f"{indent}hosts: {json.dumps(alias(item))}"]
    first = kept[0] if kept else len(lines) - 2
    lines[first] = indent[:-2] + "- " + lines[first][play.column:]     # the playbook's list entry
    return "\n".join(lines) + "\n"


def wrapped_recipe(item: Item, server: SshServer) -> str:
    """recipe's copy: the play's keys at the top level (HOST_KEYS left out), then its name and ssh source."""
    assert item.play is not None
    play = play_text(item.play.playbook, item.play.index)
    lines = ["" if line is None else _dedent(line, play.column) for line in _kept(play, ("name", *HOST_KEYS))]
    return "\n".join(lines) + f"\nname: {slug(item.name)}\n" + ssh_source(server, item.play.host)


def _dedent(line: str, column: int) -> str:
    # the first line holds the list's dash; a comment may sit left of the keys
    return line[column:] if line[:column].strip() in ("", "-") else line.lstrip()


# --- Ansible's side ----------------------------------------------------------------------------------------

def inventory_line(alias: str, server: SshServer, host_vars: Iterable[tuple[str, str]] = ()) -> str:
    extra = "".join(f" {name}={json.dumps(value)}" for name, value in host_vars)
    return (f"{alias} ansible_host={server.host} ansible_port={server.port} ansible_user={server.user} "
            f"ansible_ssh_private_key_file={server.client_key} ansible_python_interpreter=/usr/bin/python3{extra}\n")


def write_ansible_config(directory: Path, control_dir: Path, roles_path: Path | None = None,
                         events: bool = False) -> Path:
    """Ansible's fastest usual settings: pipelining and a persistent master connection (its socket in
    control_dir: a short path, as a Unix socket's must be); with `events`, the oracle_events callback writes
    each task's status."""
    lines = ["[defaults]", "host_key_checking = False", "forks = 1", "retry_files_enabled = False"]
    if roles_path is not None:
        lines.append(f"roles_path = {roles_path}")
    if events:
        lines += [f"callback_plugins = {CALLBACKS}", "callbacks_enabled = oracle_events"]
    lines += ["[ssh_connection]", "pipelining = True",
              f"ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o ControlPath={control_dir}/%C "
              "-o UserKnownHostsFile=/dev/null"]
    path = directory / "ansible.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def ansible_play(item: Item, remote_tmp_dir: Path) -> str:
    if item.play:
        return wrapped_play(item)
    head = (f"- name: {item.name}\n  hosts: {item.name}\n  gather_facts: {str(item.gather_facts).lower()}\n"
            + textwrap.indent(play_vars(remote_tmp_dir), "  "))
    return head + textwrap.indent(play_body(item), "  ")


def play_vars(remote_tmp_dir: Path) -> str:
    """remote_tmp_dir, and output_dir as ansible-test sets it for its targets (the same folder here)."""
    return (f"vars:\n  remote_tmp_dir: {json.dumps(str(remote_tmp_dir))}\n"
            f"  output_dir: {json.dumps(str(remote_tmp_dir))}\n")


def ansible_environment(config: Path, home: Path | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(config), "ANSIBLE_NOCOLOR": "1", **extra}
    if home is not None:
        env.update(HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / ".ansible/tmp"))
    return env


# --- recipe's side -----------------------------------------------------------------------------------------

def ssh_source(server: SshServer, name: str = "box") -> str:
    ssh = {"host": server.host, "port": server.port, "user": server.user,
           "private_key_file": str(server.client_key), "host_key": server.host_public_key}
    return f"sources:\n  {name}:\n    platform: ssh\n    ssh: " + json.dumps(ssh) + "\n"


def recipe_text(item: Item, server: SshServer, remote_tmp_dir: Path) -> str:
    if item.play:
        return wrapped_recipe(item, server)
    return (f"name: {slug(item.name)}\ngather_facts: {str(item.gather_facts).lower()}\n" + play_vars(remote_tmp_dir)
            + ssh_source(server) + play_body(item, dumps=True))


# --- what a run left -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskStatus:
    name: str
    status: str          # ok, changed, skipped, failed (unreachable for Ansible's lost host)
    handler: bool = False
    msg: str = field(default="", compare=False)     # a failed task's message

    def __str__(self) -> str:
        return f"{'handler ' if self.handler else ''}{self.name}"


@dataclass(frozen=True)
class FileEntry:
    kind: str            # file, directory, link, other
    mode: str            # octal permission bits, e.g. 0644
    content: str = ""    # text (tmp dir path as a placeholder), or sha256 of binary content
    target: str = ""     # a link's target

    def __str__(self) -> str:
        text = f"{self.kind} {self.mode}"
        if self.target:
            text += f" -> {self.target}"
        if self.kind == "file":
            text += f" {self.content!r}" if len(self.content) <= 60 else f" {self.content[:57]!r}..."
        return text


@dataclass(frozen=True)
class RunRecord:
    """One tool's one run of one item."""

    statuses: tuple[TaskStatus, ...] = ()
    files: dict[str, FileEntry] = field(default_factory=dict)
    registered: dict[str, Any] = field(default_factory=dict)
    ran: bool = True          # the play (build) started at all
    failed: bool = False      # the play (build) failed: a failure nothing rescued or ignored
    outside: tuple[str, ...] = ()   # paths written outside remote_tmp_dir (the corpus bench's watch)


def _placeholder(text: str, root: Path) -> str:
    return text.replace(str(root), PLACEHOLDER)


def _file_entry(path: Path, root: Path) -> FileEntry:
    info = path.lstat()
    mode = f"{stat.S_IMODE(info.st_mode):04o}"
    if stat.S_ISLNK(info.st_mode):
        return FileEntry("link", mode, target=_placeholder(os.readlink(path), root))
    if stat.S_ISDIR(info.st_mode):
        return FileEntry("directory", mode)
    if not stat.S_ISREG(info.st_mode):
        return FileEntry("other", mode)
    data = path.read_bytes()
    try:
        content = _placeholder(data.decode(), root)
    except UnicodeDecodeError:
        content = "sha256:" + hashlib.sha256(data).hexdigest()
    return FileEntry("file", mode, content)


def snapshot_files(root: Path) -> dict[str, FileEntry]:
    """Every path under root but the registered dumps, relative, with what it is."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative == REGISTERED or relative.startswith(REGISTERED + "/"):
            continue
        found[relative] = _file_entry(path, root)
    return found


def _with_placeholder(value: Any, root: Path) -> Any:
    if isinstance(value, str):
        return _placeholder(value, root)
    if isinstance(value, list):
        return [_with_placeholder(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _with_placeholder(v, root) for k, v in value.items()}
    return value


def snapshot_registered(root: Path) -> dict[str, Any]:
    found = {}
    for path in sorted((root / REGISTERED).glob("*.json")):
        try:
            found[path.stem] = _with_placeholder(json.loads(path.read_text()), root)
        except json.JSONDecodeError as exc:
            found[path.stem] = f"<not JSON: {exc}>"
    return found


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    (path / REGISTERED).mkdir(parents=True)
    return path


# --- statuses from each tool's events --------------------------------------------------------------------

# Ansible reports an include as a task of its own; recipe expands includes when it loads the recipe
INCLUDES = frozenset({"include_tasks", "ansible.builtin.include_tasks", "include_role", "ansible.builtin.include_role"})
# a play's implicit fact gathering: recipe gathers facts as a build step, before any task, and reports no task
IMPLICIT = frozenset(("Gathering Facts", action)
                     for action in ("gather_facts", "ansible.builtin.gather_facts", "setup", "ansible.builtin.setup"))


def ansible_statuses(lines: Iterable[dict[str, Any]]) -> dict[str, list[TaskStatus]]:
    """Per play: its tasks' statuses, loop items one by one as recipe reports them (`name (item)`); a loop's
    summary only when it had no item; includes and the implicit fact gathering left out but a failed one."""
    plays: dict[str, list[TaskStatus]] = {}
    for line in lines:
        if line.get("event") == "play":
            plays.setdefault(line["play"], [])
            continue
        if line.get("event") in ("stats", "registered"):
            continue
        if line.get("loop") and line.get("items"):
            continue
        if line.get("action") in INCLUDES and line["status"] != "failed":
            continue
        if (line["task"], line.get("action")) in IMPLICIT and line["status"] in ("ok", "changed"):
            continue
        name = line["task"] + (f" ({line['item']})" if "item" in line else "")
        found = plays.setdefault(line["play"], [])
        if len(found) < MAX_STATUSES:
            found.append(TaskStatus(name, line["status"], line["handler"], line.get("msg", "")))
    return plays


def ansible_registered(lines: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per play: each registered name's last value."""
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line.get("event") == "registered":
            found.setdefault(line["play"], {})[line["name"]] = line["value"]
    return found


def ansible_failed_hosts(lines: Iterable[dict[str, Any]]) -> set[str]:
    """The hosts (items) whose play failed: a failure nothing rescued or ignored, and that no
    meta: clear_host_errors cleared. Ansible's recap counts a cleared failure still, but the host goes on
    (and ansible-playbook exits 0): a task outside any rescue or always ran for it after its last failure."""
    lines = list(lines)
    went_on: set[str] = set()
    for line in lines:
        host = line.get("host")
        if line.get("status") == "failed" and not line.get("ignored"):
            went_on.discard(host)
        elif "status" in line and not line.get("cleanup") and not line.get("handler"):
            went_on.add(host)
    return {line["host"] for line in lines if line.get("event") == "stats"
            and (line.get("unreachable") or (line.get("failures") and line["host"] not in went_on))}


def recipe_statuses(lines: Iterable[dict[str, Any]], items: Iterable[Item]) -> dict[str, list[TaskStatus]]:
    """Per item (its build_name): its task.end events; items whose build never started are absent.
    A build's error ends its list as a task named `(build error)`."""
    builds = {build_name(item): item.name for item in items}
    found: dict[str, list[TaskStatus]] = {}
    for line in lines:
        item = builds.get(line.get("build") or "")
        event = line.get("event")
        if item is None:
            continue
        if event == "build.start":
            found.setdefault(item, [])
        elif event == "task.end" and line.get("module") in INCLUDES and line["status"] != "failed":
            continue                                 # as ansible_statuses leaves out Ansible's
        elif event == "task.end" and len(found.setdefault(item, [])) < MAX_STATUSES:
            found[item].append(TaskStatus(line["task"], line["status"], bool(line.get("handler")),
                                          str(line.get("msg") or "")))
        elif event == "build.end" and line.get("error") and not _repeats(found.get(item, []), str(line["error"])):
            found.setdefault(item, []).append(TaskStatus(BUILD_ERROR, "failed", msg=str(line["error"])))
    return found


def recipe_failed_builds(lines: Iterable[dict[str, Any]], items: Iterable[Item]) -> set[str]:
    builds = {build_name(item): item.name for item in items}
    return {builds[line["build"]] for line in lines
            if line.get("event") == "build.end" and line.get("build") in builds and line.get("status") != "succeeded"}


def _repeats(statuses: list[TaskStatus], error: str) -> bool:
    """A failed task stops a build: its build error repeats the task's failure, also when an `always:` ran
    after it (the error names the task)."""
    if statuses and statuses[-1].status == "failed":
        return True
    named = {name for s in statuses if s.status == "failed" for name in (s.name, s.name.rpartition(" (")[0]) if name}
    return any(f"task '{name}' failed" in error for name in named)       # a loop's task: `name (item)`


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    found = []
    with path.open() as stream:
        for line in stream:
            if len(found) >= MAX_EVENTS:
                break
            if line.strip():
                found.append(json.loads(line))
    return found


# --- running both ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """Both tools' two runs of one item, and why recipe did not run it, if it did not."""

    item: Item
    ansible: tuple[RunRecord, ...]
    recipe: tuple[RunRecord, ...]
    invalid: str = ""                 # recipe's validation error: recipe did not run the item
    ansible_log: str = ""             # the tail of ansible-playbook's output, to tell why a play did not run
    recipe_log: str = ""

    def __repr__(self) -> str:          # pytest shows the test's arguments: the report says the rest
        return f"<Outcome of {self.item.name}>"


class Outcomes(dict):
    """Outcome by item name."""

    def __repr__(self) -> str:
        return f"<Outcomes of {len(self)} items>"


@dataclass(frozen=True)
class ToolRun:
    """What one tool's one run of a batch reported, per item name."""

    statuses: dict[str, list[TaskStatus]]
    failed: frozenset[str]                       # items whose play (build) failed
    registered: dict[str, dict[str, Any]]        # the registered values (tmp dir path as a placeholder)
    files: dict[str, dict[str, FileEntry]]       # remote_tmp_dir's files right after the run
    log: str                                     # the command's output


@dataclass
class Batch:
    """Runs items with both tools against one sshd, under `work`: Ansible's items split into `shards` run
    side by side (its tasks cost ~0.3 s each, mostly waiting), recipe's all in one `recipe run`."""

    server: SshServer
    work: Path
    home: Path | None = None          # HOME for both tools (the corpus bench: see what they write there)
    timeout: float = 900
    shards: int = 2
    # set: the tools run one after the other (Ansible's two runs, between(), recipe's two), for items that leave
    # files outside remote_tmp_dir, where both tools would meet (the corpus bench removes them in between)
    between: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if not ANSIBLE_PLAYBOOK.exists():
            raise RuntimeError(f"{ANSIBLE_PLAYBOOK} is missing: ansible-core is a test dependency "
                               "(`make test` installs it into the venv)")
        self.work.mkdir(parents=True, exist_ok=True)
        self.control_dir = Path(tempfile.mkdtemp(prefix="oracle-cm-"))
        self.timings: dict[str, float] = {}             # seconds per phase of the batch

    def close(self) -> None:
        """Ends Ansible's persistent SSH masters."""
        for socket in self.control_dir.iterdir():
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "oracle"], capture_output=True,
                           timeout=30)
        shutil.rmtree(self.control_dir, ignore_errors=True)

    def remote_dir(self, tool: str, item: Item) -> Path:
        # the same length for both tools: a path's length shows in results (a symlink's size)
        return self.work / "remote" / tool[0] / (slug(item.name) if item.play else item.name)

    def _here(self, pairs: Iterable[tuple[str, str]], tool: str, item: Item) -> dict[str, str]:
        """A play's option values, PLACEHOLDER as the tool's remote_tmp_dir."""
        return {name: value.replace(PLACEHOLDER, str(self.remote_dir(tool, item))) for name, value in pairs}

    def _run(self, command: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[int, str]:
        """A tool's exit status and output; one that outlives the timeout is killed (a handler loop), its
        output saying so."""
        try:
            result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            output = "".join(part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                             for part in (exc.stdout, exc.stderr))
            return -1, output[-3000:] + f"\n{KILLED}: still running after {self.timeout:.0f} s"
        return result.returncode, result.stdout + result.stderr

    def _killed(self, statuses: dict[str, list[TaskStatus]], failed: set[str], items: Iterable[Item]) -> None:
        """The items of a run that was killed: failed, their statuses ending with KILLED."""
        for item in items:
            statuses.setdefault(item.name, []).append(TaskStatus(KILLED, "failed", msg=f"after {self.timeout:.0f} s"))
            failed.add(item.name)

    def timed(self, phase: str, function, *args):
        started = time.monotonic()
        try:
            return function(*args)
        finally:
            self.timings[phase] = round(time.monotonic() - started, 1)

    # --- Ansible ---

    def run_ansible(self, items: list[Item], name: str) -> ToolRun:
        """One ansible-playbook for all items, a play each; when a whole play fails Ansible ends the playbook,
        so the items after it run in another ansible-playbook."""
        directory = self.work / name
        directory.mkdir(parents=True, exist_ok=True)
        roles_path = next((i.roles_path for i in items if i.roles_path), None)
        config = write_ansible_config(directory, self.control_dir, roles_path, events=True)
        (directory / "inventory.ini").write_text("".join(
            inventory_line(alias(i), self.server, i.play.host_vars if i.play else ()) for i in items))
        options, settings = self._ansible_options(items[0])
        # a whole play's copy goes beside its playbook, and runs from there as its script runs it
        folder = items[0].play.playbook.parent if items[0].play else directory
        lines: list[dict[str, Any]] = []
        logs = []
        remaining = list(items)
        killed: list[Item] = []
        for attempt in range(len(items)):
            playbook = folder / (f"_oracle-{slug(items[0].name)}-{name}.yml" if items[0].play
                                 else f"playbook-{attempt}.yml")
            playbook.write_text("".join(ansible_play(i, self.remote_dir("ansible", i)) for i in remaining))
            events = directory / f"events-{attempt}.jsonl"
            env = ansible_environment(config, self.home, ORACLE_EVENTS=str(events), **settings)
            command = [str(ANSIBLE_PLAYBOOK), "-i", str(directory / "inventory.ini"), *options, str(playbook)]
            returncode, output = self._run(command, env, folder)
            logs.append(output)
            found = read_json_lines(events)
            lines += found
            started = set(ansible_statuses(found))
            if returncode == -1:
                killed = remaining
                break
            remaining = [i for i in remaining if i.name not in started]
            if not started or not remaining:
                break       # all ran, or none did: the playbook itself is broken and its output says why
        registered = ansible_registered(lines)
        hosts = ansible_failed_hosts(lines)
        statuses, failed = ansible_statuses(lines), {i.name for i in items if alias(i) in hosts}
        self._killed(statuses, failed, killed)
        return ToolRun(statuses, frozenset(failed),
                       {i.name: _with_placeholder(registered.get(i.name, {}), self.remote_dir("ansible", i))
                        for i in items},
                       {i.name: snapshot_files(self.remote_dir("ansible", i)) for i in items}, "\n".join(logs))

    def _ansible_options(self, item: Item) -> tuple[list[str], dict[str, str]]:
        """A whole play's ansible-playbook options (extra vars, tags) and environment; none for the others."""
        play = item.play
        if play is None:
            return (["--diff"], {"OUTPUT_DIR": str(self.remote_dir("ansible", item))}) if item.ansible_test \
                else ([], {})
        options = ["-e", json.dumps(self._here(play.extra_vars, "ansible", item))] if play.extra_vars else []
        options += ["--tags", play.tags] if play.tags else []
        options += ["--skip-tags", play.skip_tags] if play.skip_tags else []
        return options + list(play.ansible_options), self._here(play.ansible_env + play.env, "ansible", item)

    def run_ansible_twice(self, items: list[Item], shard: int) -> tuple[ToolRun, ToolRun]:
        return (self.timed(f"ansible shard {shard} run 1", self.run_ansible, items, f"ansible-{shard}-1"),
                self.timed(f"ansible shard {shard} run 2", self.run_ansible, items, f"ansible-{shard}-2"))

    # --- recipe ---

    def recipe_file(self, item: Item, run: int) -> Path:
        if item.play:       # beside its playbook, as Ansible's copy
            path = item.play.playbook.parent / f"_oracle-{slug(item.name)}-recipe-{run}.yml"
        else:
            path = self.work / f"recipe-{run}" / f"{slug(item.name)}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(recipe_text(item, self.server, self.remote_dir("recipe", item)))
        return path

    def _recipe_env(self, items: Sequence[Item] = ()) -> dict[str, str]:
        env = {**os.environ, "HOME": str(self.home)} if self.home is not None else dict(os.environ)
        if items and items[0].play:
            env.update(self._here(items[0].play.env, "recipe", items[0]))
        if items and items[0].ansible_test:
            env["OUTPUT_DIR"] = str(self.remote_dir("recipe", items[0]))
        return env

    def _recipe_options(self, items: Sequence[Item], run: bool) -> list[str]:
        """--roles-path; a whole play's --var (its host's inventory variables, its extra vars) and tags."""
        roles_path = next((i.roles_path for i in items if i.roles_path), None)
        options = ["--roles-path", str(roles_path)] if roles_path else []
        options += ["--diff"] if run and items and items[0].ansible_test else []
        play = items[0].play if items else None
        if play is None:
            return options
        for name, value in (*play.host_vars, *self._here(play.extra_vars, "recipe", items[0]).items()):
            options += ["--var", f"{name}={value}"]
        options += ["--tags", play.tags] if run and play.tags else []
        options += ["--force-handlers"] if run and "--force-handlers" in play.ansible_options else []
        return options + (["--skip-tags", play.skip_tags] if run and play.skip_tags else [])

    def validate(self, item: Item) -> str:
        """recipe's own words when it refuses the item's recipe, else ''."""
        command = [str(RECIPE), "validate", str(self.recipe_file(item, 1)), *self._recipe_options([item], False)]
        returncode, output = self._run(command, self._recipe_env([item]))
        if returncode == 0:
            return ""
        return output.strip() or f"exit {returncode}"

    def validate_all(self, items: list[Item], pool: ThreadPoolExecutor) -> dict[str, str]:
        """recipe's refusal per item: one `recipe validate` of all the recipes, its problems told apart by
        file; one per item only when a problem names no item's file."""
        command = [str(RECIPE), "validate", *(str(self.recipe_file(i, 1)) for i in items),
                   *self._recipe_options(items, False)]
        returncode, output = self._run(command, self._recipe_env(items))
        if returncode == 0:
            return {i.name: "" for i in items}
        told = self._problems_by_item(items, output)
        if told is not None:
            return told
        return dict(zip([i.name for i in items], pool.map(self.validate, items)))

    def _problems_by_item(self, items: list[Item], output: str) -> dict[str, str] | None:
        owner = {str(self.recipe_file(i, 1)): i.name for i in items}
        owner.update({path: i.name for i in items for path in i.tasks})
        found: dict[str, list[str]] = {}
        for line in output.splitlines():
            match = re.match(r"\s+(/[^:]+):\d+:\d+: ", line)
            if match is None:
                continue
            if match.group(1) not in owner:
                return None
            found.setdefault(owner[match.group(1)], []).append(line)
        if not found:
            return None
        return {i.name: "error: the recipe is invalid:\n" + "\n".join(found[i.name]) if i.name in found else ""
                for i in items}

    def run_recipe(self, items: list[Item], run: int) -> ToolRun:
        """One `recipe run` of every item's recipe: its builds run at once, a failed one stops no other."""
        if not items:
            return ToolRun({}, frozenset(), {}, {}, "")
        files = [str(self.recipe_file(i, run)) for i in items]
        events = self.work / f"recipe-{run}" / "events.jsonl"
        command = [str(RECIPE), "run", *files, "--json", str(events), "--output-dir", str(self.work / f"out-{run}"),
                   *self._recipe_options(items, True)]
        events.parent.mkdir(parents=True, exist_ok=True)
        # from the recipe's folder, as ansible-playbook runs from its playbook's: a task on this machine
        # (delegate_to: localhost) with a relative path writes there
        returncode, output = self._run(command, self._recipe_env(items), Path(files[0]).parent)
        lines = read_json_lines(events)
        statuses, failed = recipe_statuses(lines, items), recipe_failed_builds(lines, items)
        self._killed(statuses, failed, items if returncode == -1 else ())
        return ToolRun(statuses, frozenset(failed),
                       {i.name: snapshot_registered(self.remote_dir("recipe", i)) for i in items},
                       {i.name: snapshot_files(self.remote_dir("recipe", i)) for i in items}, output)

    # --- both ---

    def run(self, items: list[Item]) -> Outcomes:
        if len(items) > 1 and any(i.play for i in items):
            raise ValueError("a whole play runs alone: its command line and environment are its own")
        for item in items:
            for tool in TOOLS:
                fresh_dir(self.remote_dir(tool, item))
        shards = [items[index::self.shards] for index in range(self.shards) if items[index::self.shards]]
        records: dict[str, dict[str, list[RunRecord]]] = {i.name: {t: [] for t in TOOLS} for i in items}
        with ThreadPoolExecutor(max_workers=len(shards) + 2) as pool:
            ansible = [pool.submit(self.run_ansible_twice, shard, index) for index, shard in enumerate(shards)]
            if self.between is not None:
                [future.result() for future in ansible]
                self.between()
            invalid = self.timed("recipe validate", self.validate_all, items, pool)
            valid = [i for i in items if not invalid[i.name]]
            recipe_logs = []
            for run in (1, 2):
                outcome = self.timed(f"recipe run {run}", self.run_recipe, valid, run)
                self._record(items, records, "recipe", outcome)
                recipe_logs.append(outcome.log)
            ansible_runs = [future.result() for future in ansible]
        for shard, (first, second) in zip(shards, ansible_runs):
            for outcome in (first, second):
                self._record(shard, records, "ansible", outcome)
        ansible_log = "\n".join(run.log[-3000:] for pair in ansible_runs for run in pair)
        return Outcomes({i.name: Outcome(i, tuple(records[i.name]["ansible"]), tuple(records[i.name]["recipe"]),
                                         invalid[i.name], ansible_log, "\n".join(l[-3000:] for l in recipe_logs))
                         for i in items})

    def _record(self, items: list[Item], records: dict[str, dict[str, list[RunRecord]]], tool: str,
                outcome: ToolRun) -> None:
        for item in items:
            shown = [s for s in outcome.statuses.get(item.name, []) if not s.name.startswith(DUMP_PREFIX)]
            records[item.name][tool].append(RunRecord(tuple(shown), outcome.files.get(item.name, {}),
                                                      outcome.registered.get(item.name, {}),
                                                      ran=item.name in outcome.statuses,
                                                      failed=item.name in outcome.failed))


# --- comparing ---------------------------------------------------------------------------------------------

def comparable(ansible: Any, recipe: Any, path: str = "") -> list[str]:
    """Where two registered values differ, over the keys both have (recursively), volatile keys aside."""
    if isinstance(ansible, dict) and isinstance(recipe, dict):
        problems = []
        for key in sorted(set(ansible) & set(recipe) - VOLATILE):
            if key == "src" and isinstance(ansible[key], str) and UPLOAD in ansible[key]:
                continue     # the temporary copy each tool wrote (copy, template): never the same path
            problems += comparable(ansible[key], recipe[key], f"{path}.{key}" if path else key)
        return problems
    if isinstance(ansible, list) and isinstance(recipe, list) and len(ansible) == len(recipe):
        problems = []
        for index, (a, r) in enumerate(zip(ansible, recipe)):
            problems += comparable(a, r, f"{path}[{index}]")
        return problems
    if ansible == recipe and type(ansible) is type(recipe):
        return []
    return [f"{path}: ansible {json.dumps(ansible)[:200]}  recipe {json.dumps(recipe)[:200]}"]


def base_name(status: TaskStatus) -> str:
    """A task's name without its loop item's label: the labels of complex items (a list of registered results)
    show each tool's result values, which say nothing about the status."""
    return status.name.split(" (", 1)[0]


def _same_tasks(ansible: tuple[TaskStatus, ...], recipe: tuple[TaskStatus, ...]) -> bool:
    return len(ansible) == len(recipe) and all(base_name(a) == base_name(r) for a, r in zip(ansible, recipe))


def status_table(ansible: tuple[TaskStatus, ...], recipe: tuple[TaskStatus, ...]) -> tuple[list[str], int, int]:
    """A side-by-side table of both tools' tasks, aligned by name; (lines, tasks that match, Ansible's tasks)."""
    names_a = [str(s) for s in ansible]
    names_r = [str(s) for s in recipe]
    lines = [f"    {'task':<48} {'ansible':<9} {'recipe':<9}"]
    matched = 0
    for op, a0, a1, r0, r1 in difflib.SequenceMatcher(a=names_a, b=names_r, autojunk=False).get_opcodes():
        if op == "equal" or (op == "replace" and _same_tasks(ansible[a0:a1], recipe[r0:r1])):
            for a, r in zip(ansible[a0:a1], recipe[r0:r1]):
                same = a.status == r.status
                matched += same
                lines.append(f" {'  ' if same else '!!'} {str(a)[:48]:<48} {a.status:<9} {r.status:<9}"
                             + ("" if same else _messages(a, r)))
            continue
        for a in ansible[a0:a1]:
            lines.append(f" !! {str(a)[:48]:<48} {a.status:<9} {'-':<9}" + _messages(a, None))
        for r in recipe[r0:r1]:
            lines.append(f" !! {str(r)[:48]:<48} {'-':<9} {r.status:<9}" + _messages(None, r))
    return lines, matched, len(ansible)


def _messages(ansible: TaskStatus | None, recipe: TaskStatus | None) -> str:
    parts = [f"{tool}: {s.msg[:300]}" for tool, s in (("ansible", ansible), ("recipe", recipe)) if s and s.msg]
    return "".join(f"\n        {part}" for part in parts)


def file_differences(ansible: dict[str, FileEntry], recipe: dict[str, FileEntry]) -> list[str]:
    lines = []
    for path in sorted(set(ansible) | set(recipe)):
        a, r = ansible.get(path), recipe.get(path)
        if a == r:
            continue
        lines.append(f"    {path}:")
        lines.append(f"      ansible: {a if a else '(absent)'}")
        lines.append(f"      recipe:  {r if r else '(absent)'}")
        if a and r and a.kind == r.kind == "file" and a.content != r.content:
            diff = difflib.unified_diff(a.content.splitlines(), r.content.splitlines(), "ansible", "recipe",
                                        lineterm="", n=1)
            lines += ["        " + line for line in list(diff)[:30]]
    return lines


@dataclass(frozen=True)
class Comparison:
    name: str
    matched: int               # tasks (over both runs) whose status matches
    total: int                 # Ansible's tasks over both runs
    report: str                # '' when both tools agree on everything
    file_problems: int = 0

    @property
    def agrees(self) -> bool:
        return not self.report


def compare(outcome: Outcome) -> Comparison:
    item = outcome.item
    if outcome.invalid:
        total = sum(len(r.statuses) for r in outcome.ansible)
        return Comparison(item.name, 0, total, f"recipe refuses {item.name}:\n{outcome.invalid}")
    sections, matched, total, file_problems = [], 0, 0, 0
    for run, (a, r) in enumerate(zip(outcome.ansible, outcome.recipe), start=1):
        table, good, count = status_table(a.statuses, r.statuses)
        matched, total = matched + good, total + count
        problems = []
        if not a.ran:
            problems.append(f"  ansible-playbook did not run the play:\n{outcome.ansible_log[-1500:]}")
        if not r.ran:
            problems.append(f"  recipe did not run the build:\n{outcome.recipe_log[-1500:]}")
        if a.ran and r.ran and a.failed != r.failed:
            problems.append(f"  ansible's play {'failed' if a.failed else 'succeeded'}, "
                            f"recipe's build {'failed' if r.failed else 'succeeded'}")
        if good != count or len(a.statuses) != len(r.statuses):
            problems.append("  statuses differ:\n" + "\n".join(table))
        files = file_differences(a.files, r.files)
        file_problems += sum(1 for line in files if line.startswith("    ") and line.endswith(":")
                             and not line.startswith("      "))
        if files:
            problems.append("  files in remote_tmp_dir differ:\n" + "\n".join(files))
        registered = [f"    {name}.{problem}" for name in sorted(set(a.registered) & set(r.registered))
                      for problem in comparable(a.registered[name], r.registered[name])]
        if registered:
            problems.append("  registered results differ:\n" + "\n".join(registered))
        if problems:
            sections.append(f"run {run}{' (idempotence)' if run == 2 else ''}:\n" + "\n".join(problems))
    report = f"{item.name}: ansible-playbook and recipe differ\n" + "\n".join(sections) if sections else ""
    return Comparison(item.name, matched, total, report, file_problems)


def slug(text: str) -> str:
    """A recipe name (and inventory alias) from any item name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "item"

"""The integration targets that are scripts: a runme.sh that runs playbooks with ansible-playbook.

Each play of each playbook the script runs becomes an item of bench/ansible_compat.py, run alone with the
options the script's first command for that playbook gives it (`-e`, `--tags`, `--skip-tags`, the ANSIBLE_*
environment) on one host: the first its `hosts:` names in the script's inventory. The target's folder is
copied into the bench's work dir, where the wrapped copies go beside the playbook (tests/ansible_oracle.py).
What cannot be carried over is said, never dropped silently: the item's notes, or a reason it is not
comparable.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tests.ansible_oracle import ANSIBLE_PLAYBOOK, HOST_KEYS, PLACEHOLDER, Item, Play, play_text, slug

ANSIBLE_INVENTORY = ANSIBLE_PLAYBOOK.with_name("ansible-inventory")
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")      # recipe's source names
# options that only change what ansible-playbook prints
QUIET = re.compile(r"^-v+$|^--verbose$")
# ansible-playbook's own switches: --force-handlers is recipe's too (the harness gives it both tools);
# --flush-cache goes to ansible-playbook alone, as recipe keeps no fact cache
ANSIBLE_ONLY = frozenset({"--flush-cache", "--force-handlers"})
# settings the harness makes itself: the events callback, the inventory, the config
HARNESS_ENV = frozenset({"ANSIBLE_CONFIG", "ANSIBLE_INVENTORY", "ANSIBLE_CALLBACKS_ENABLED",
                         "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_NOCOLOR"})
# ansible-playbook's options that take a value
TAKES_VALUE = frozenset({"-i", "--inventory", "-e", "--extra-vars", "-t", "--tags", "--skip-tags", "-l", "--limit",
                         "-c", "--connection"})
SHELL_STOP = frozenset({"|", "||", "&&", ";", ")", ">", ">>", "<", ">&", "&", "|&", "2>&1"})


@dataclass(frozen=True)
class Command:
    """One ansible-playbook command of a runme.sh, its shell variables expanded."""

    line: int
    playbook: str                                    # relative to the target's folder
    inventory: str = ""                              # -i: a file, or a host list (`a,b,`)
    extra_vars: tuple[tuple[str, str], ...] = ()
    tags: str = ""
    skip_tags: str = ""
    env: tuple[tuple[str, str], ...] = ()            # the ANSIBLE_* settings it runs with
    ansible_only: tuple[str, ...] = ()               # ANSIBLE_ONLY switches it uses
    ignored: tuple[str, ...] = ()                    # options not carried over (-c local, -l A)


@dataclass(frozen=True)
class Entry:
    """An item of the bench (a role, or a play as wrapped here), what the bench changed or left out to run it,
    or why it cannot run it."""

    name: str                                        # a role's, or target/playbook.yml#N
    item: Item | None = None
    notes: tuple[str, ...] = ()
    not_comparable: str = ""


@dataclass
class Shell:
    """The little of a runme.sh's shell state the commands need: variables, exported or not."""

    scratch: Path                                    # where `$(mktemp -d)` points
    variables: dict[str, str] = field(default_factory=dict)
    exported: set[str] = field(default_factory=set)

    def expand(self, word: str) -> str:
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                      lambda m: self.variables.get(m.group(1), m.group(0)), word)

    def assign(self, word: str, export: bool) -> None:
        name, _, value = word.partition("=")
        self.variables[name] = self.expand(value)
        if export:
            self.exported.add(name)

    def environment(self) -> dict[str, str]:
        return {name: self.variables[name] for name in sorted(self.exported) if name in self.variables}


def logical_lines(text: str) -> list[tuple[int, str]]:
    """The script's lines, continuations joined, comments and blank lines left out, with their line number."""
    found: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined, pending = (pending + line).strip(), ""
        if joined and not joined.startswith("#"):
            found.append((start, joined))
    return found


def _words(text: str) -> list[str]:
    """Shell words up to the first operator (a pipe, a redirection, `&&`, the end of a `$(...)`)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for word in lexer:
        if word in SHELL_STOP or word[0] in "|&;)<>":
            break
        words.append(word)
    if words and words[-1].isdigit() and len(words) > 1:
        words.pop()          # `2>&1`: the 2 of a redirection
    return words


def _track(shell: Shell, line: str) -> None:
    """export, assignments, unset, `$(mktemp -d)` (a scratch dir in the work dir) and the first value of a
    `for` loop's variable."""
    loop = re.match(r"for (\w+) in (\S+)", line)
    temporary = re.match(r"(export\s+)?([A-Za-z_]\w*)=\$\(mktemp\b", line)
    if loop or temporary:
        name, value = (loop.group(1), loop.group(2).rstrip(";")) if loop else (temporary.group(2), str(shell.scratch))
        shell.assign(f"{name}={value}", bool(temporary and temporary.group(1)))
        return
    try:
        words = shlex.split(line.split(";")[0], comments=True)
    except ValueError:
        return
    if words[:1] == ["export"]:
        for word in words[1:]:
            if "=" in word:
                shell.assign(word, True)
            else:
                shell.exported.add(word)
    elif words[:1] == ["unset"]:
        for word in words[1:]:
            shell.variables.pop(word, None)
            shell.exported.discard(word)
    elif words and all(re.match(r"^[A-Za-z_]\w*=", word) for word in words):
        for word in words:
            shell.assign(word, False)


def _command(shell: Shell, number: int, line: str) -> Command | None:
    match = re.search(r"((?:\b[A-Z_][A-Z0-9_]*=\S*\s+)*)ansible-playbook\s+(.*)", line)
    if match is None:
        return None
    env = shell.environment()
    env.update({name: shell.expand(value) for name, _, value in
                (word.partition("=") for word in shlex.split(match.group(1)))})
    try:
        words = [shell.expand(word) for word in _words(match.group(2)) if word != "$@"]
    except ValueError:      # a quote the line closes after a `)`: the words before it were taken
        return None
    env = {name: value for name, value in env.items() if name.startswith("ANSIBLE_") and name not in HARNESS_ENV}
    return _parse(words, number, tuple(sorted(env.items())))


def _parse(words: list[str], number: int, env: tuple[tuple[str, str], ...]) -> Command | None:
    """ansible-playbook's words as a Command; None without a playbook."""
    options: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    ignored: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        value = words[index + 1] if word in TAKES_VALUE and index + 1 < len(words) else ""
        index += 2 if word in TAKES_VALUE else 1
        if word in ("-e", "--extra-vars"):
            extra += _extra_vars(value)
        elif word in ("-i", "--inventory", "-t", "--tags", "--skip-tags"):
            options[{"-i": "inventory", "-t": "tags", "--skip-tags": "skip_tags"}.get(word, word.lstrip("-"))] = value
        elif word.endswith((".yml", ".yaml")) and not word.startswith("-"):
            options["playbook"] = word
        elif word in ANSIBLE_ONLY:
            options[word] = word
        elif not QUIET.match(word):
            ignored.append(f"{word} {value}".strip())
    if "playbook" not in options:
        return None
    return Command(number, options["playbook"], options.get("inventory", ""), tuple(extra), options.get("tags", ""),
                   options.get("skip_tags", ""), env, tuple(word for word in options if word in ANSIBLE_ONLY),
                   tuple(ignored))


def _extra_vars(value: str) -> list[tuple[str, str]]:
    """`-e k=v k2=v2` (JSON or YAML too); a value in /tmp, the script's scratch dir, goes to remote_tmp_dir."""
    if value.lstrip().startswith("{"):
        pairs = [(str(k), str(v)) for k, v in (yaml.safe_load(value) or {}).items()]
    else:
        pairs = [tuple(word.partition("=")[::2]) for word in shlex.split(value)]
    return [(name, re.sub(r"^/tmp(?=/|$)", PLACEHOLDER, text)) for name, text in pairs]


def runme_commands(target: Path, scratch: Path) -> tuple[list[Command], list[str]]:
    """The ansible-playbook commands of target/runme.sh, the first for each playbook, and notes on the rest
    (repeated runs, ad-hoc `ansible` commands, playbook names it leaves to the shell)."""
    shell = Shell(scratch)
    commands: dict[str, Command] = {}
    notes: list[str] = []
    for number, line in logical_lines((target / "runme.sh").read_text()):
        _track(shell, line)
        command = _command(shell, number, line)
        if command is None:
            if re.search(r"(^|[\s(])ansible\s+\S", line):
                notes.append(f"runme.sh:{number}: an ad-hoc `ansible` command, no playbook: not measured")
            continue
        if "$" in command.playbook:
            found = _guess_playbook(target, command.playbook)
            if not found:
                notes.append(f"runme.sh:{number}: playbook {command.playbook} is the shell's: not measured")
                continue
            command = replace(command, playbook=found)
        if command.playbook in commands:
            continue        # run again with other options: measured once, with its first
        commands[command.playbook] = command
    return list(commands.values()), notes


def _guess_playbook(target: Path, pattern: str) -> str:
    """`${testname}.yml` in a function: the one playbook in the folder its shape matches, if only one."""
    glob = re.sub(r"\$\{?\w+\}?", "*", pattern)
    found = [path for path in target.glob(glob) if _is_playbook(path)]
    return found[0].name if len(found) == 1 else ""


def _is_playbook(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(data, list) and all(isinstance(p, dict) and ("hosts" in p or "import_playbook" in p)
                                          for p in data)


# --- the inventory -----------------------------------------------------------------------------------------

def inventory(target: Path, source: str, home: Path) -> tuple[dict[str, Any], str]:
    """ansible-inventory's view of the script's -i (a file or a host list): groups and host variables; and a
    note when the file is not in the corpus."""
    if not source:
        return {}, ""
    if "," not in source and not (target / source).exists():
        return {}, f"inventory {source} is not in the corpus: the play's hosts are taken as named"
    env = {**os.environ, "HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / ".ansible/tmp")}
    result = subprocess.run([str(ANSIBLE_INVENTORY), "-i", source, "--list"], capture_output=True, text=True,
                            cwd=target, env=env, timeout=120)
    if result.returncode != 0:
        return {}, f"inventory {source}: ansible-inventory fails: {result.stderr.strip()[:200]}"
    return json.loads(result.stdout), ""


def group_hosts(data: dict[str, Any], group: str) -> list[str]:
    entry = data.get(group) or {}
    hosts = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts += group_hosts(data, child)
    return list(dict.fromkeys(hosts))


def play_hosts(hosts: Any, data: dict[str, Any]) -> list[str]:
    """The hosts a play's `hosts:` matches in the inventory (patterns with ! or & aside)."""
    patterns = hosts if isinstance(hosts, list) else re.split(r"[,:]", str(hosts))
    found: list[str] = []
    for pattern in (str(p).strip() for p in patterns):
        if not pattern or pattern[0] in "!&":
            continue
        if pattern in ("all", "*"):
            found += group_hosts(data, "all")
        elif pattern in data and pattern != "_meta":
            found += group_hosts(data, pattern)
        else:
            found.append(pattern)
    return list(dict.fromkeys(found))


def host_variables(data: dict[str, Any], host: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The inventory's variables for host, but how to reach it (ansible_*: the sshd's), and those left out."""
    found = ((data.get("_meta") or {}).get("hostvars") or {}).get(host, {})
    kept = [(name, str(value)) for name, value in sorted(found.items()) if not name.startswith("ansible_")]
    return kept, sorted(name for name in found if name.startswith("ansible_"))


# --- items -------------------------------------------------------------------------------------------------

def writable_copy(source: Path, destination: Path) -> Path:
    """The target's folder, copied where the bench may write (the corpus is read-only)."""
    shutil.copytree(source, destination, symlinks=True)
    for path in [destination, *destination.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return destination


def target_items(target: Path, work: Path, home: Path) -> tuple[list[Entry], list[str]]:
    """Each play of each playbook target/runme.sh runs, as an item; and the script's notes."""
    if not (target / "runme.sh").is_file():
        return [], ["no tasks/main.yml, no runme.sh: not run"]
    copy = writable_copy(target, work / "targets" / target.name)
    scratch = work / "scratch" / target.name
    scratch.mkdir(parents=True)
    commands, notes = runme_commands(copy, scratch)
    items: list[Entry] = []
    for command in commands:
        items += command_items(copy, command, home)
    return items, notes


def command_items(copy: Path, command: Command, home: Path) -> list[Entry]:
    playbook = copy / command.playbook
    prefix = f"{copy.name}/{command.playbook}"
    if not playbook.is_file():
        return [Entry(prefix, not_comparable=f"runme.sh:{command.line}: no such playbook")]
    plays = yaml.safe_load(playbook.read_text()) or []
    data, inventory_note = inventory(copy, command.inventory, home)
    return [play_item(f"{prefix}#{index + 1}", playbook, index, play, command, data, inventory_note)
            for index, play in enumerate(plays)]


def play_item(name: str, playbook: Path, index: int, play: Any, command: Command, data: dict[str, Any],
              inventory_note: str) -> Entry:
    if not isinstance(play, dict) or "hosts" not in play:
        return Entry(name, not_comparable="not a play with hosts (an import_playbook?)")
    try:
        keys = [key for key, _, _ in play_text(playbook, index).keys]
    except ValueError as exc:
        return Entry(name, not_comparable=str(exc))
    hosts = play_hosts(play["hosts"], data)
    if not hosts:
        return Entry(name, not_comparable=f"hosts: {play['hosts']} matches no host of the script's inventory")
    # recipe's source names are lowercase: both tools see the same inventory_hostname
    host = hosts[0].lower() if SOURCE_NAME.match(hosts[0].lower()) else slug(hosts[0])
    host_vars, connection = host_variables(data, hosts[0])
    dropped = [key for key in keys if key in HOST_KEYS and key != "hosts"]
    notes = [f"runme.sh:{command.line}", *_host_notes(hosts, host)]
    notes += [f"recipe leaves out: {', '.join(dropped)}"] if dropped else []
    notes += [inventory_note] if inventory_note else []
    notes += [f"inventory's {', '.join(connection)} left out (the sshd's)"] if connection else []
    return Entry(name, Item(name=name, play=Play(
        playbook=playbook, index=index, host=host, host_vars=tuple(host_vars), extra_vars=command.extra_vars,
        tags=command.tags, skip_tags=command.skip_tags, ansible_env=command.env, ansible_options=command.ansible_only,
        env=(("OUTPUT_DIR", PLACEHOLDER),))), tuple(notes + _command_notes(command)))   # as ansible-test gives runme.sh


def _host_notes(hosts: list[str], host: str) -> list[str]:
    if len(hosts) == 1 and host == hosts[0]:
        return []
    renamed = f" (for {hosts[0]})" if host != hosts[0] else ""
    return [f"runs on {host}{renamed}" + (f", 1 of {len(hosts)} hosts: {', '.join(hosts)}" if len(hosts) > 1 else "")]


def _command_notes(command: Command) -> list[str]:
    options = [f"-e {name}={value}" for name, value in command.extra_vars]
    options += [f"--tags {command.tags}"] if command.tags else []
    options += [f"--skip-tags {command.skip_tags}"] if command.skip_tags else []
    options += [f"{name}={value}" for name, value in command.env] + list(command.ansible_only)
    notes = [f"not carried over: {' '.join(command.ignored)}"] if command.ignored else []
    return notes + ([f"with {' '.join(options)}"] if options else [])

"""Packer provisioners as recipe tasks.

shell becomes shell (inline) or script tasks, file a copy, shell-local a task
delegated to the build host, ansible an ansible_playbook task, puppet-masterless
puppet_apply, chef-solo chef_solo. The options every provisioner has become
task keywords: only/except (source names), timeout, max_retries (retries and
until); pause_before is a pause task before the provisioner's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from modules.importers.packer import provisioner_tools
from modules.importers.packer.draft import Comment, Part
from modules.importers.packer.expressions import Untranslatable
from modules.importers.packer.files import PathMapper
from modules.importers.packer.mapping import (Assembly, Rule, apply, as_list, key_values, leftover, note, path_of,
                                              seconds, skip, to)
from modules.importers.packer.template import Plugin, Value

COMMON = ("only", "except", "pause_before", "max_retries", "timeout", "override", "name")
# what a lost connection makes a task's message say (engine.remote.remote_shell): expect_disconnect tolerates it
LOST = "'lost while the command ran' not in (result.msg | default(''))"
STAGING = "recipe uploads what a task needs to a temporary place it removes afterwards"
# execute_command words that say only "run the script, with its variables, maybe through sudo": recipe does that
PLAIN_EXECUTE = {"sudo", "-S", "-E", "-H", "-n", "sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/env", "env", "-c",
                 "-e", "-x", "-eu", "-ex", "-eux", "chmod", "+x", "u+x", "&&", ";", "exec"}
SHEBANG = re.compile(r"^(\S+)(?:\s+-([a-z]+))?\s*$")


@dataclass(frozen=True)
class Scope:
    """Which recipe sources a build's tasks are for, and how Packer names them."""

    build_sources: tuple[str, ...]          # recipe names of the build's sources
    all_sources: tuple[str, ...]
    names: dict[str, str]                   # "qemu.deb", "source.qemu.deb", "deb", a JSON builder's name -> recipe name


# -- shell, shell-local ------------------------------------------------------------------------

def _environment(assembly: Assembly, name: str, value: Value) -> None:
    mapping = key_values(value.data) if name != "env" else dict(value.data)
    assembly.set("environment", {**assembly.options.get("environment", {}), **mapping})


def execute_command_is_plain(source: str) -> bool:
    """Whether an execute_command only runs the script with its variables (through sudo or not)."""
    text = source.split("=", 1)[-1] if "=" in source.split(":", 1)[0] else source.split(":", 1)[-1]
    text = re.sub(r"echo\s+(['\"]).*?\1\s*\|", " ", text)            # echo 'password' | sudo -S
    text = re.sub(r"\{\{-?.*?-?\}\}", " ", text)                       # {{ .Vars }} {{ .Path }}
    words = re.findall(r"[^\s'\",\[\]]+", text.replace("\\\"", " "))     # shell-local's is a list
    return all(word in PLAIN_EXECUTE for word in words)


def _execute_command(assembly: Assembly, name: str, value: Value) -> None:
    if "sudo" in value.source:
        assembly.set("become", True)
    if execute_command_is_plain(value.source):
        assembly.note("execute_command: recipe runs the script with its #! interpreter and the environment"
                      + (", through sudo (become: true)" if "sudo" in value.source else ""))
    else:
        assembly.leftover(name, value, "recipe runs a script itself (its #! interpreter, the task's environment "
                                       "and become); put what else the command did into the script")


def _expect_disconnect(assembly: Assembly, name: str, value: Value) -> None:
    if value.data is True:
        assembly.set("failed_when", assembly.options.get("failed_when", ["result is failed"]) + [LOST])
        assembly.note("expect_disconnect: a connection lost while the script runs (a reboot) is no failure; "
                      "the next task reconnects")


def _exit_codes(assembly: Assembly, name: str, value: Value) -> None:
    codes = as_list(value.data)
    conditions = [c for c in assembly.options.get("failed_when", []) if c != "result is failed"]
    assembly.set("failed_when", [f"result.rc | default(0) not in {codes}", *conditions])


SHELL: dict[str, Rule] = {
    "environment_vars": _environment,
    "env": _environment,
    "expect_disconnect": _expect_disconnect,
    "valid_exit_codes": _exit_codes,
    "start_retry_timeout": note("recipe reconnects after a reboot for up to its reconnect timeout"),
    "remote_folder": note(STAGING), "remote_path": note(STAGING), "remote_file": note(STAGING),
    "skip_clean": note(STAGING),
    "binary": note("recipe uploads files as they are"),
    "use_env_var_file": note("recipe passes the environment to the command itself"),
    "env_var_format": note("recipe passes the environment to the command itself"),
    "pause_after": note("add a pause task after it if the wait matters"),
    "only_on": leftover("recipe's build host is Linux; give the task a when: condition instead"),
    "use_linux_pathing": skip(),
}
SHELL_COMMANDS = ("inline", "script", "scripts", "command", "inline_shebang")


def _shell_tasks(plugin: Plugin, assembly: Assembly) -> list[dict[str, Any]]:
    """The commands of a shell or shell-local provisioner: one shell task (inline, command) or a script task each."""
    settings = plugin.settings
    inline, command = settings.get("inline"), settings.get("command")
    scripts = [settings.get("script")] if settings.get("script") else []
    if settings.get("scripts") is not None:
        scripts.append(settings.get("scripts"))
    for key in ("inline", "command", "script", "scripts"):
        value = settings.get(key)
        if value is not None and not value.translated:
            assembly.leftover(key, value, value.problem)
    tasks = []
    if inline is not None and inline.translated:
        tasks.append({"shell": _inline(as_list(inline.data), settings.get("inline_shebang"), assembly)})
    if command is not None and command.translated:
        tasks.append({"shell": str(command.data)})
    for value in (v for v in scripts if v.translated):
        for path in as_list(value.data):
            tasks.append({"script": path_of(assembly.paths, str(path))})
    return tasks


def _inline(commands: list[Any], shebang: Value | None, assembly: Assembly) -> Any:
    """Packer runs inline commands as one script under `/bin/sh -e`: set -e, then the commands."""
    executable, flags = "/bin/sh", "e"
    if shebang is not None and shebang.translated:
        match = SHEBANG.match(str(shebang.data))
        if match is None:
            assembly.leftover("inline_shebang", shebang, "recipe takes an interpreter and its set flags (/bin/bash -e)")
        else:
            executable, flags = match.group(1), match.group(2) or ""
    script = "\n".join(str(c) for c in commands) + "\n"
    if flags:
        script = f"set -{flags}\n{script}"
    return {"cmd": script, "executable": executable} if executable != "/bin/sh" else script


def _shell_options(plugin: Plugin, assembly: Assembly) -> None:
    apply(SHELL, assembly, skip=(*COMMON, *SHELL_COMMANDS, "execute_command"))
    command = plugin.settings.get("execute_command")
    if command is not None:      # read as written: its {{ .Path }} has no translation, and needs none
        _execute_command(assembly, "execute_command", command)


def shell(plugin: Plugin, assembly: Assembly) -> list[dict[str, Any]]:
    _shell_options(plugin, assembly)
    return _shell_tasks(plugin, assembly)


def shell_local(plugin: Plugin, assembly: Assembly) -> list[dict[str, Any]]:
    """shell-local runs on the machine Packer runs on: the task is delegated to the build host."""
    _shell_options(plugin, assembly)
    assembly.set("delegate_to", "localhost")
    assembly.options.pop("become", None)        # sudo on the build host is not the guest's
    return _shell_tasks(plugin, assembly)


# -- file ------------------------------------------------------------------------------------------

FILE: dict[str, Rule] = {
    "generated": note("recipe copies what is there when the task runs"),
    "direction": skip(),
    "source": skip(), "sources": skip(), "destination": skip(), "content": skip(),
}


def file(plugin: Plugin, assembly: Assembly) -> list[dict[str, Any]]:
    """file uploads as the login user, as Packer's does (no become); a folder with a trailing slash is its
    contents, in both tools."""
    apply(FILE, assembly, skip=COMMON)
    settings = plugin.settings
    direction = settings.get("direction")
    if direction is not None and direction.data == "download":
        assembly.leftover("direction", direction, "recipe has no fetch task; slurp reads a small file from the "
                                                  "machine into a variable")
        return []
    destination = settings.get("destination")
    if destination is None or not destination.translated:
        if destination is not None:
            assembly.leftover("destination", destination, destination.problem)
        return []
    content = settings.get("content")
    if content is not None and content.translated:
        return [{"copy": {"content": content.data, "dest": destination.data}}]
    sources = [settings.get("source")] + ([settings.get("sources")] if settings.get("sources") else [])
    tasks = []
    for value in (v for v in sources if v is not None):
        if not value.translated:
            assembly.leftover("source", value, value.problem)
            continue
        for source in as_list(value.data):
            tasks.append({"copy": {"src": path_of(assembly.paths, str(source)), "dest": destination.data}})
    return tasks


# -- the common options, the task's name ---------------------------------------------------------

def _only(plugin: Plugin, scope: Scope, assembly: Assembly) -> tuple[str, ...]:
    """The recipe sources the provisioner runs on: the build's, narrowed by its only/except."""
    chosen = list(scope.build_sources)
    for key in ("only", "except"):
        value = plugin.settings.get(key)
        if value is None or not value.translated:
            continue
        named = []
        for name in as_list(value.data):
            if str(name) in scope.names:
                named.append(scope.names[str(name)])
            else:
                assembly.leftover(key, value, f"{name!r} names no source of this build")
        chosen = [s for s in chosen if (s in named) == (key == "only")]
    return tuple(chosen)


def _where(plugin: Plugin, only: tuple[str, ...], scope: Scope) -> dict[str, list[str]]:
    """only: [sources], or except: [sources] as the template said it (when its build has every source)."""
    if set(only) == set(scope.all_sources):
        return {}
    if "except" in plugin.settings and "only" not in plugin.settings and \
            set(scope.build_sources) == set(scope.all_sources):
        return {"except": [s for s in scope.all_sources if s not in only]}
    return {"only": list(only)}


def _common(plugin: Plugin, assembly: Assembly) -> list[dict[str, Any]]:
    """timeout and max_retries as keywords; pause_before as a task of its own, returned."""
    settings = plugin.settings
    before = []
    for key, rule in (("timeout", to("timeout", seconds)), ("max_retries", _retries),
                      ("pause_before", _pause_before(before)),
                      ("override", leftover("recipe has no per-source settings for a task: split it into tasks "
                                            "with only: [source]"))):
        value = settings.get(key)
        if value is None:
            continue
        if not value.translated:
            assembly.leftover(key, value, value.problem)
            continue
        try:
            rule(assembly, key, value)
        except Untranslatable as exc:
            assembly.leftover(key, value, str(exc))
    return before


def _retries(assembly: Assembly, name: str, value: Value) -> None:
    assembly.set("retries", value.data)
    assembly.set("until", "result is succeeded")


def _pause_before(tasks: list[dict[str, Any]]) -> Rule:
    def rule(assembly: Assembly, name: str, value: Value) -> None:
        tasks.append({"name": f"pause_before: {value.data}", "pause": {"seconds": int(seconds(value.data))}})
    return rule


def _title(plugin: Plugin, task: dict[str, Any]) -> str:
    module = next(k for k in task if k in MODULE_NAMES)
    args = task[module]
    if isinstance(args, dict):
        detail = args.get("cmd") or args.get("src") or args.get("playbook") or args.get("manifest") or \
            (", ".join(args.get("run_list", [])) if isinstance(args.get("run_list"), list) else "") or \
            (args.get("dest") and f"-> {args['dest']}") or ""
        if module == "copy" and args.get("src"):
            detail = f"{args['src']} -> {args['dest']}"
    else:
        detail = args
    lines = [line for line in str(detail).splitlines() if line.strip() and not line.startswith("set -")]
    first = lines[0].strip() if lines else ""
    more = " ..." if len(lines) > 1 else ""
    return f"{plugin.type}: {first[:60]}{'...' if len(first) > 60 else more}".rstrip(": ")


MAPPERS: dict[str, Callable[[Plugin, Assembly], list[dict[str, Any]]]] = {
    "shell": shell,
    "shell-local": shell_local,
    "file": file,
    **provisioner_tools.MAPPERS,
}
MODULE_NAMES = ("shell", "script", "copy", "pause", *provisioner_tools.MODULE_NAMES)
KEYWORD_ORDER = ("become", "environment", "delegate_to", "only", "timeout", "retries", "until", "failed_when",
                 "ignore_errors")


def map_provisioner(plugin: Plugin, scope: Scope, paths: PathMapper) -> tuple[list[Part], list[Comment]]:
    """The tasks of one provisioner; when none can be made, the comments go into the recipe's header."""
    mapper = MAPPERS.get(plugin.type)
    origin = Comment(f"Packer's {plugin.type} provisioner ({plugin.position})")
    if mapper is None:
        return [], [Comment.not_imported(plugin.position, f"provisioner {plugin.type!r}",
                                         "recipe has no task for it; write its steps as tasks", "")]
    assembly = Assembly(plugin=plugin, paths=paths)
    only = _only(plugin, scope, assembly)
    pauses = _common(plugin, assembly)
    tasks = mapper(plugin, assembly)
    if not only:
        return [], [origin, Comment.note("its only/except leave no source of its build: not imported"),
                    *assembly.comments]
    if not tasks:
        return [], [origin, *assembly.comments]
    keywords = {k: assembly.options[k] for k in KEYWORD_ORDER if k in assembly.options}
    where = _where(plugin, only, scope)
    keywords.update(where)
    bodies = [{**pause, **where} for pause in pauses]
    named = plugin.settings.get("name")
    title = str(named.data) if named is not None and named.translated else None
    bodies += [{"name": title or _title(plugin, task), **task, **keywords} for task in tasks]
    return [Part(body, comments=(origin, *assembly.comments) if index == 0 else ())
            for index, body in enumerate(bodies)], []

"""ansible_playbook: run the real ansible-playbook on the build host against the build's machine, as Packer's
`ansible` provisioner does, for content recipe's own engine does not run (any collection, any module).

It logs in with the build's own SSH endpoint and key, and accepts the machine's host key and no other: the key
recipe's connection verified goes into a temporary known_hosts, with StrictHostKeyChecking=yes, so
ansible-playbook never trusts a key on first use. Everything it is given (inventory, known_hosts, extra_vars,
roles and collections from `requirements`) is written to a private temporary folder, 0600, removed afterwards:
extra_vars never appear on a command line. Each Ansible task becomes a recipe task event through the callback
plug-in in ansible_playbook_callback/, counted in the recap.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol
from ruamel.yaml import YAML, YAMLError

from engine.build.taskmodule import Result, Subtask, TaskContext, TaskModule
from engine.errors import BuildError
from engine.process import run_tool
from engine.recipe.schema import boolean, each, matches
from engine.remote.ssh import SshSession
from modules.tasks._ansible_tool import VERSION, AnsibleTool, find_ansible
from modules.tasks._remote import maybe, text

CALLBACK_DIR = Path(__file__).with_name("ansible_playbook_callback")
HOST_KEY_ALIAS = "recipe-build"      # the name the pinned key is filed under, whatever host and port the build has
DEFAULT_ROLES = ("~/.ansible/roles", "/usr/share/ansible/roles", "/etc/ansible/roles")
DEFAULT_COLLECTIONS = ("~/.ansible/collections", "/usr/share/ansible/collections")
STOP_GRACE = 10.0                    # seconds ansible-playbook gets to stop its workers when the task is cancelled


@dataclass
class Seen:
    """What a run showed: the callback's counts and failures, and Ansible's own error lines."""

    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "changed": 0, "skipped": 0, "failed": 0})
    failures: list[Subtask] = field(default_factory=list)       # not ignored ones, in order
    errors: list[str] = field(default_factory=list)             # ERROR! lines (a syntax error, a missing role)


class AnsiblePlaybook(TaskModule, name="ansible_playbook"):
    description = "Run ansible-playbook on the build host against the build's machine (Packer's ansible provisioner)"
    free_form = "playbook"
    local_files = {"playbook": "files", "requirements": "files", "roles_path": "files", "collections_path": "files"}
    schema = {
        vol.Required("playbook"): str,
        vol.Optional("roles_path", default=[]): each(str),
        vol.Optional("collections_path", default=[]): each(str),
        vol.Optional("requirements", default=None): maybe(str),
        vol.Optional("extra_vars", default={}): dict,
        vol.Optional("tags", default=[]): each(text),
        vol.Optional("skip_tags", default=[]): each(text),
        vol.Optional("groups", default=[]): each(text),
        vol.Optional("become", default=False): boolean,
        vol.Optional("ansible_version", default=None): maybe(matches(VERSION, "a version such as 2.17 or 2.17.3")),
        vol.Optional("install", default=False): boolean,
        vol.Optional("extra_args", default=[]): each(text),
        vol.Optional("env", default={}): {str: text},
    }

    @dataclass(frozen=True)
    class Params:
        playbook: str
        roles_path: list[str]
        collections_path: list[str]
        requirements: str | None
        extra_vars: dict[str, Any]
        tags: list[str]
        skip_tags: list[str]
        groups: list[str]
        become: bool
        ansible_version: str | None
        install: bool
        extra_args: list[str]
        env: dict[str, str]

    async def run(self, params: Params, ctx: TaskContext) -> Result:
        session = ctx.connection
        if not isinstance(session, SshSession):
            raise BuildError("ansible_playbook runs against the build's machine over SSH",
                             hint="leave out delegate_to: ansible-playbook itself runs on this host")
        playbook = ctx.find_file(params.playbook, "files")
        log = (lambda line: ctx.output("stdout", line)) if ctx.output else (lambda line: None)
        tool = await find_ansible(params.ansible_version, params.install, log)
        scratch = Path(tempfile.mkdtemp(prefix="ansible-", dir=ctx.work_dir))
        # ssh's control sockets need a short path (a Unix socket's is at most 107 bytes): their own folder
        control = Path(tempfile.mkdtemp(prefix="recipe-cp-"))
        try:
            return await self._run_in(scratch, control, tool, playbook, params, ctx, session)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
            await asyncio.to_thread(shutil.rmtree, control, True)

    async def _run_in(self, scratch: Path, control: Path, tool: AnsibleTool, playbook: Path, params: Params, ctx: TaskContext,
                      session: SshSession) -> Result:
        roles, collections = scratch / "roles", scratch / "collections"
        if params.requirements:
            await install_requirements(tool, ctx.find_file(params.requirements, "files"), roles, collections)
        inventory = write_inventory(scratch, session, params, ctx)
        extra_vars = write_private(scratch / "extra_vars.json", json.dumps(_extra_vars(params, ctx)))
        argv = [str(tool.playbook), "-i", str(inventory), "-e", f"@{extra_vars}", *_switches(params, ctx),
                *params.extra_args, str(playbook)]
        env = _environment(scratch, control, params, ctx, roles, collections)
        rc, seen = await run_playbook(argv, env, playbook.parent, ctx)
        return _result(rc, seen, tool, playbook.parent)


# -- the files ansible-playbook is given --------------------------------------------------------------------

def write_private(path: Path, content: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(content)
    return path


def write_inventory(scratch: Path, session: SshSession, params: AnsiblePlaybook.Params, ctx: TaskContext) -> Path:
    """The build's machine as the one host of a YAML inventory, in `groups`, logging in as recipe does."""
    endpoint = session.endpoint
    if not endpoint.private_key_file:
        raise BuildError("ansible_playbook logs in with a key, and this source gives only a password",
                         hint="give the source ssh.private_key_file (qemu and amazon builds always have one)")
    known_hosts = write_private(scratch / "known_hosts", f"{HOST_KEY_ALIAS} {session.server_host_key()}\n")
    ssh_args = (f"-o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes "
                f"-o HostKeyAlias={HOST_KEY_ALIAS} -o IdentitiesOnly=yes")
    host = {"ansible_host": endpoint.host, "ansible_port": endpoint.port, "ansible_user": endpoint.user,
            "ansible_connection": "ssh", "ansible_ssh_common_args": ssh_args,
            "ansible_ssh_private_key_file": os.path.expanduser(endpoint.private_key_file)}
    name = ctx.inventory.host if ctx.inventory else "default"
    groups = {group: {"hosts": {name: None}} for group in params.groups}
    inventory = {"all": {"hosts": {name: host}, "children": groups}}
    return write_private(scratch / "inventory.yml", json.dumps(inventory, indent=1))   # JSON is YAML


def _extra_vars(params: AnsiblePlaybook.Params, ctx: TaskContext) -> dict[str, Any]:
    values = dict(params.extra_vars)
    if ctx.become and ctx.become.password:
        values["ansible_become_password"] = ctx.become.password
    return values


def _switches(params: AnsiblePlaybook.Params, ctx: TaskContext) -> list[str]:
    switches = []
    if params.become or ctx.become:
        switches += ["--become", "--become-user", ctx.become.user if ctx.become else "root"]
    if params.tags:
        switches += ["--tags", ",".join(params.tags)]
    if params.skip_tags:
        switches += ["--skip-tags", ",".join(params.skip_tags)]
    if ctx.check:
        switches.append("--check")
    if ctx.diff:
        switches.append("--diff")
    return switches


def _search_path(mine: Path, given: list[str], defaults: tuple[str, ...], ctx: TaskContext) -> str:
    found = [str(ctx.find_file(path, "files").resolve()) for path in given]
    return os.pathsep.join([str(mine), *found, *(os.path.expanduser(d) for d in defaults)])


def _environment(scratch: Path, control: Path, params: AnsiblePlaybook.Params, ctx: TaskContext, roles: Path,
                 collections: Path) -> dict[str, str]:
    own_callbacks = os.environ.get("ANSIBLE_CALLBACK_PLUGINS", "")
    return {**os.environ, **params.env,
            "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join(filter(None, [str(CALLBACK_DIR), own_callbacks])),
            "ANSIBLE_ROLES_PATH": _search_path(roles, params.roles_path, DEFAULT_ROLES, ctx),
            "ANSIBLE_COLLECTIONS_PATH": _search_path(collections, params.collections_path, DEFAULT_COLLECTIONS, ctx),
            "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_LOCAL_TEMP": str(scratch / "tmp"), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PYTHONUNBUFFERED": "1"}


async def install_requirements(tool: AnsibleTool, requirements: Path, roles: Path, collections: Path) -> None:
    """requirements.yml as ansible-galaxy reads it: a list of roles, or `roles:` and `collections:`; from local
    paths and tarballs offline, from Galaxy or git where this host reaches them. Relative paths are taken from
    the file's folder."""
    try:
        document = YAML(typ="safe").load(requirements.read_text())
    except (OSError, YAMLError) as exc:
        raise BuildError(f"cannot read requirements {requirements}: {exc}") from None
    has_roles = isinstance(document, list) or (isinstance(document, dict) and bool(document.get("roles")))
    has_collections = isinstance(document, dict) and bool(document.get("collections"))
    if not (has_roles or has_collections):
        raise BuildError(f"{requirements} lists no roles and no collections",
                         hint="write `roles:` and/or `collections:` lists, as ansible-galaxy reads them")
    galaxy = str(tool.galaxy)
    hint = "the requirement must be a local path or tarball, or a source this host reaches"
    if has_roles:
        await _galaxy(galaxy, "role", requirements, roles, hint)
    if has_collections:
        await _galaxy(galaxy, "collection", requirements, collections, hint)


async def _galaxy(galaxy: str, kind: str, requirements: Path, into: Path, hint: str) -> None:
    # run from the file's folder: ansible-galaxy takes a relative src from its working directory
    await run_tool("/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "galaxy", requirements.parent,
                   galaxy, kind, "install", "-r", requirements, "-p", into,
                   what=f"ansible-galaxy {kind} install -r {requirements.name}", hint=hint)


# -- running it ---------------------------------------------------------------------------------------------

async def run_playbook(argv: list[str], env: dict[str, str], cwd: Path, ctx: TaskContext) -> tuple[int, Seen]:
    """Run ansible-playbook in its own process group, streaming its output and the callback's events; the group
    goes when it ends (its ssh ControlPersist masters with it) and when the task is cancelled."""
    read_fd, write_fd = os.pipe()
    seen = Seen()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env={**env, "RECIPE_EVENTS_FD": str(write_fd)}, pass_fds=(write_fd,),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
    except OSError as exc:
        os.close(read_fd)
        raise BuildError(f"cannot run {argv[0]}: {exc.strerror}") from None
    finally:
        os.close(write_fd)
    try:
        await asyncio.wait_for(asyncio.gather(_stream_output(process, seen, ctx), _read_events(read_fd, seen, ctx),
                                              process.wait()), ctx.timeout)
    except (asyncio.CancelledError, asyncio.TimeoutError):
        await _stop(process)
        raise
    finally:
        await close_masters(Path(env["ANSIBLE_SSH_CONTROL_PATH_DIR"]))
    return process.returncode if process.returncode is not None else -1, seen


async def _stream_output(process: asyncio.subprocess.Process, seen: Seen, ctx: TaskContext) -> None:
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith(("ERROR!", "[ERROR]")) and len(seen.errors) < 5:
            seen.errors.append(line)
        if ctx.output and line.strip():
            ctx.output("stdout", line)


async def _read_events(fd: int, seen: Seen, ctx: TaskContext) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb"))
    try:
        async for raw in reader:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            _on_event(event, seen, ctx)
    finally:
        transport.close()


def _on_event(event: dict[str, Any], seen: Seen, ctx: TaskContext) -> None:
    if event.get("event") == "start":
        ctx.subtask_started(str(event.get("task", "")))
        return
    status = "failed" if event.get("status") == "unreachable" else str(event.get("status", "ok"))
    step = Subtask(name=str(event.get("task", "")), status=status, msg=str(event.get("msg", "")),
                   where=str(event.get("where", "")), duration=float(event.get("duration") or 0.0),
                   ignored=bool(event.get("ignored")))
    seen.counts[status] = seen.counts.get(status, 0) + 1
    if status == "failed" and not step.ignored:
        seen.failures.append(step)
    ctx.subtask_ended(step)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the group first: ansible-playbook then stops its workers and closes its connections."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE)
    except asyncio.TimeoutError:
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()


async def close_masters(control_dir: Path) -> None:
    """ansible-playbook's ssh connection masters (ControlPersist) outlive it in sessions of their own: each is
    told to exit through its socket, so nothing is left running."""
    sockets = sorted(control_dir.iterdir()) if control_dir.is_dir() else []
    for socket in sockets:
        process = await asyncio.create_subprocess_exec(
            "ssh", "-O", "exit", "-o", f"ControlPath={socket}", HOST_KEY_ALIAS, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await process.wait()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _result(rc: int, seen: Seen, tool: AnsibleTool, base: Path) -> Result:
    counts = " ".join(f"{key}={value}" for key, value in seen.counts.items())
    installed = f" (ansible-core {tool.version} installed by recipe at {tool.playbook.parent.parent})" \
        if tool.installed_now else ""
    data = {"ansible_stats": dict(seen.counts), "ansible_version": tool.version}
    if rc == 0:
        return Result(changed=seen.counts.get("changed", 0) > 0, rc=rc, data=data,
                      msg=f"ansible-playbook: {counts}{installed}")
    if seen.failures:
        first = seen.failures[0]
        where = _relative(first.where, base)
        return Result(failed=True, rc=rc, data=data,
                      msg=f"Ansible task '{first.name}' failed ({where}): {first.msg}".rstrip(": ") + installed)
    said = " ".join(seen.errors) or "its output says why (recipe run -v shows it)"
    return Result(failed=True, rc=rc, data=data, msg=f"ansible-playbook exited with {rc}{installed}: {said}")


def _relative(where: str, base: Path) -> str:
    path, _, line = where.rpartition(":")
    try:
        return f"{Path(path).relative_to(base)}:{line}" if path else where
    except ValueError:
        return where

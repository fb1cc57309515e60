"""chef_solo: converge the target with `chef-solo` (or Cinc's `cinc-solo`), as Packer's chef-solo provisioner does.

The cookbook directories, roles, data bags and environments are uploaded into a private temporary directory
(see _provisioner) beside a generated solo.rb and node JSON (the run list and the `json` attributes, which
may hold secrets: they travel in the upload only), and chef-solo runs there as root. Chef's last line,
"Chef Infra Client finished, N/M resources updated in ...", says whether anything changed; check mode runs
--why-run ("N/M resources would have been updated").

Chef is not packaged in Debian 12, so nothing installs it by default: install_command runs (as root) only
when neither chef-solo nor cinc-solo is found, and without one the task fails saying so.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Mapping

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.errors import BuildError
from engine.recipe.schema import each
from engine.remote.connection import CommandResult
from modules.tasks._provisioner import (ENV_FILE, Bundle, as_root, environment_file, find_or_install, in_workdir,
                                        local_directory, quoted_lines, run_in_workdir)
from modules.tasks._remote import maybe, tail, text, words

TOOLS = ("chef-solo", "cinc-solo")
EXTRA_DIRS = ("/opt/chef/bin", "/opt/cinc/bin")       # where the omnibus packages put them
FINISHED = re.compile(r"\b(?:Chef|Cinc)(?: Infra)? Client finished, (\d+)/(\d+) resources")
FAILURE_LINE = re.compile(r"\b(?:FATAL|ERROR): ")
LICENSES = ("accept", "accept-silent", "accept-no-persist")
# option -> (solo.rb setting, folder in the work directory) for the single directories
PATHS = {"roles": ("role_path", "roles"), "data_bags": ("data_bag_path", "data_bags"),
         "environments": ("environment_path", "environments")}
NO_CHEF_HINT = ("Chef is not packaged in Debian 12: give install_command (Chef's or Cinc's install script, "
                "say), or start from an image that has chef-solo")


def json_value(value: Any) -> Any:
    """Node attributes: anything JSON can hold, checked here rather than when the file is written."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise vol.Invalid(f"not a JSON value: {exc}") from None
    return value


class ChefSolo(TaskModule, name="chef_solo"):
    description = "Converge the target with chef-solo (or cinc-solo) and local cookbooks (Packer's chef-solo)"
    local_files = {"cookbooks": "files", "roles": "files", "data_bags": "files", "environments": "files"}
    schema = {
        vol.Optional("cookbooks", default=[]): each(str),
        vol.Optional("roles", default=None): maybe(str),
        vol.Optional("data_bags", default=None): maybe(str),
        vol.Optional("environments", default=None): maybe(str),
        vol.Optional("environment", default=None): maybe(text),
        vol.Optional("run_list", default=[]): each(text),
        vol.Optional("json", default={}): vol.All(vol.Schema({str: object}), json_value),
        vol.Optional("install_command", default=None): maybe(text),
        vol.Optional("chef_license", default=None): maybe(vol.In(LICENSES)),
    }

    @dataclass(frozen=True)
    class Params:
        cookbooks: list[str]
        roles: str | None
        data_bags: str | None
        environments: str | None
        environment: str | None
        run_list: list[str]
        json: dict[str, Any]
        install_command: str | None
        chef_license: str | None

        def __post_init__(self) -> None:
            if self.run_list and "run_list" in self.json:
                raise vol.Invalid("the run list is given twice: keep run_list or json.run_list", path=["run_list"])

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        bundle, settings = self.upload(p, ctx)          # local files first: a missing one fails before the target
        root = await as_root(ctx)
        missing = BuildError("neither chef-solo nor cinc-solo is installed on the target", hint=NO_CHEF_HINT)
        install = partial(run_install_command, p.install_command) if p.install_command else None
        tool = await find_or_install(root, TOOLS, EXTRA_DIRS, missing, install)
        if tool.path is None:
            return Result(changed=True, msg="install_command would run, then chef-solo (check mode)")
        bundle.generated["solo.rb"] = solo_rb(settings, p.environment)
        bundle.generated["node.json"] = json.dumps(node(p)).encode()
        if p.chef_license:
            bundle.generated[ENV_FILE] = environment_file({"CHEF_LICENSE": p.chef_license})
        flags = ["--no-color", *(["--why-run"] if ctx.check else []),
                 *(["--chef-license", p.chef_license] if p.chef_license else [])]
        command = " ".join([words([tool.path, *flags]), "-c", in_workdir("solo.rb"), "-j", in_workdir("node.json")])
        data = {"installed": tool.installed}
        return outcome(await run_in_workdir(root, bundle, command, "chef"), ctx.check, data)

    @staticmethod
    def upload(p: Params, ctx: TaskContext) -> tuple[Bundle, dict[str, str | list[str]]]:
        """The local directories to upload, and the solo.rb settings that name them (paths under solo.rb's)."""
        bundle = Bundle()
        settings: dict[str, str | list[str]] = {}
        for index, name in enumerate(p.cookbooks):
            bundle.local[f"cookbooks/{index}"] = local_directory(ctx, "cookbooks", name)
        if p.cookbooks:
            settings["cookbook_path"] = [f"cookbooks/{index}" for index in range(len(p.cookbooks))]
        for option, (setting, folder) in PATHS.items():
            name = getattr(p, option)
            if name:
                bundle.local[folder] = local_directory(ctx, option, name)
                settings[setting] = folder
        return bundle, settings


async def run_install_command(command: str, root: TaskContext, found: Mapping[str, str]) -> str:
    """install_command, as root, its output streamed as the task's."""
    res = await root.sh(command)
    if not res.ok:
        raise BuildError(f"install_command failed with rc {res.rc}: {tail(res.stderr) or tail(res.stdout)}")
    return "install_command"


def node(p: ChefSolo.Params) -> dict[str, Any]:
    """The node JSON chef-solo's -j reads: the attributes, and the run list when run_list gives it."""
    return {**p.json, **({"run_list": p.run_list} if p.run_list else {})}


def ruby_string(value: str) -> str:
    """A Ruby single-quoted literal: in one only \\ and ' are special, and nothing is interpolated."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def solo_rb(settings: Mapping[str, str | list[str]], environment: str | None) -> bytes:
    """solo.rb, every path in it relative to its own directory (the work directory, whose name only the
    target knows): Chef evaluates the file with its path as __FILE__, as knife.rb's documented idiom uses."""
    def under(relative: str) -> str:
        return f"File.join(base, {ruby_string(relative)})"

    lines = ["# written by recipe's chef_solo task; the directory it is in is removed after the run",
             "base = File.dirname(File.expand_path(__FILE__))"]
    for setting, path in settings.items():
        value = "[" + ", ".join(map(under, path)) + "]" if isinstance(path, list) else under(path)
        lines.append(f"{setting} {value}")
    if environment:
        lines.append(f"environment {ruby_string(environment)}")
    lines.append(f"file_cache_path {under('cache')}")
    return ("\n".join(lines) + "\n").encode()


def outcome(res: CommandResult, check: bool, data: dict[str, Any]) -> Result:
    said = f"ran {data['installed']}; " if data.get("installed") else ""
    if not res.ok:
        errors = quoted_lines(res.stdout + "\n" + res.stderr, FAILURE_LINE) or tail(res.stderr) or tail(res.stdout)
        return Result(failed=True, msg=f"{said}chef-solo failed (exit {res.rc}): {errors}", rc=res.rc,
                      stdout=res.stdout, stderr=res.stderr, data=data)
    finished = FINISHED.findall(res.stdout)
    if not finished:       # it succeeded without saying what it did: assume it changed something
        return Result(changed=True, msg=f"{said}chef-solo succeeded but did not say how many resources it updated",
                      rc=res.rc, stdout=res.stdout, stderr=res.stderr, data=data)
    updated, total = (int(n) for n in finished[-1])
    verb = "would be updated (why-run)" if check else "updated"
    return Result(changed=updated > 0, msg=f"{said}{updated}/{total} resources {verb}", rc=res.rc,
                  stdout=res.stdout, stderr=res.stderr, data=data)

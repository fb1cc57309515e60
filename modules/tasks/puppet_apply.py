"""puppet_apply: apply a Puppet manifest on the target with `puppet apply`, as Packer's puppet-masterless
provisioner does.

The manifest (a file or a directory of them), the module directories and hiera.yaml with the data
directories it names are uploaded into a private temporary directory (see _provisioner), facts are
exported as FACTER_<name> from a file there, and `puppet apply --detailed-exitcodes` runs as root.
Its status is the result: 0 nothing changed, 2 changes applied, 4 or 6 failures. In check mode it runs
with --noop; Puppet 7 still exits 0 then, so "would change" is read from its --summarize report.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import voluptuous as vol
from ruamel.yaml import YAML, YAMLError

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.errors import BuildError
from engine.recipe.schema import boolean, each, matches
from engine.remote.connection import CommandResult
from modules.tasks._provisioner import (ENV_FILE, Bundle, Tool, as_root, environment_file, find_or_install,
                                        in_workdir, local_directory, quoted_lines, run_in_workdir)
from modules.tasks._remote import maybe, q, tail, text, words

FACT_NAME = re.compile(r"^[A-Za-z0-9_]+$")           # what an environment variable's name may hold
ERROR_LINE = re.compile(r"^Error: ")
OUT_OF_SYNC = re.compile(r"^\s*Out of sync: (\d+)\s*$", re.MULTILINE)   # --summarize's count of pending changes
EXTRA_DIRS = ("/opt/puppetlabs/bin",)                 # where Puppet's own packages put it, off the PATH
MODULES_HINT = "each entry is a directory of modules, as puppet's --modulepath takes them"
# a Schema of its own: strict() lets a plain nested dict take keys its validators refuse
FACTS = vol.Schema({matches(FACT_NAME, "fact name"): text})


@dataclass(frozen=True)
class Installer:
    """How one package manager installs Puppet: a refresh first (or none), then each package in turn."""

    refresh: str | None
    install: str                  # {tool} the package manager's path, {package} a package's name
    packages: tuple[str, ...]


INSTALLERS = {
    # Debian 12 calls it puppet-agent, earlier Debian and Ubuntu puppet; a fresh cloud image has no package lists
    "apt-get": Installer("{tool} update -q", "DEBIAN_FRONTEND=noninteractive {tool} install -y -q {package}",
                         ("puppet-agent", "puppet")),
    "dnf": Installer(None, "{tool} install -y {package}", ("puppet",)),
    "yum": Installer(None, "{tool} install -y {package}", ("puppet",)),
    "zypper": Installer(None, "{tool} --non-interactive install {package}", ("puppet",)),
}


class PuppetApply(TaskModule, name="puppet_apply"):
    description = "Apply a Puppet manifest on the target with puppet apply (Packer's puppet-masterless)"
    free_form = "manifest"
    local_files = {"manifest": "files", "modules": "files", "hiera_config": "files"}
    schema = {
        vol.Required("manifest"): str,
        vol.Optional("modules", default=[]): each(str),
        vol.Optional("hiera_config", default=None): maybe(str),
        vol.Optional("facts", default={}): FACTS,
        vol.Optional("environment", default=None): maybe(text),
        vol.Optional("extra_args", default=[]): each(text),
        vol.Optional("install", default=False): boolean,
    }

    @dataclass(frozen=True)
    class Params:
        manifest: str
        modules: list[str]
        hiera_config: str | None
        facts: dict[str, str]
        environment: str | None
        extra_args: list[str]
        install: bool

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        bundle, arguments = self.upload(p, ctx)        # local files first: a missing one fails before the target
        root = await as_root(ctx)
        missing = BuildError("puppet is not installed on the target",
                             hint="set install: true to install it with the target's package manager")
        tool = await find_or_install(root, ["puppet"], EXTRA_DIRS, missing, install_puppet if p.install else None,
                                     helpers=list(INSTALLERS))
        if tool.path is None:
            return Result(changed=True, msg="puppet would be installed, then the manifest applied (check mode)")
        flags = ["--noop", "--summarize"] if ctx.check else []
        flags += ["--show_diff"] if ctx.diff else []
        flags += [f"--environment={p.environment}"] if p.environment else []
        command = " ".join([words([tool.path, "apply", "--detailed-exitcodes", "--color=false", *flags,
                                   *p.extra_args]), *arguments])
        return outcome(await run_in_workdir(root, bundle, command, "puppet"), ctx.check, tool)

    @staticmethod
    def upload(p: Params, ctx: TaskContext) -> tuple[Bundle, list[str]]:
        """What to upload, and the arguments (shell words) that point puppet at it, the manifest last."""
        manifest = ctx.find_file(p.manifest, "files")
        bundle = Bundle(local={f"manifest/{manifest.name}": manifest},
                        generated={ENV_FILE: environment_file({f"FACTER_{k}": v for k, v in p.facts.items()})})
        options = []
        for index, name in enumerate(p.modules):
            bundle.local[f"modules/{index}"] = local_directory(ctx, "modules", name, hint=MODULES_HINT)
        if p.modules:
            options.append("--modulepath=" + ":".join(in_workdir(f"modules/{i}") for i in range(len(p.modules))))
        if p.hiera_config:
            config, trees = hiera_files(ctx.find_file(p.hiera_config, "files"))
            bundle.local.update({f"hiera/{name}": path for name, path in trees.items()})
            options.append("--hiera_config=" + in_workdir(f"hiera/{config}"))
        return bundle, [*options, in_workdir(f"manifest/{manifest.name}")]


def hiera_files(config: Path) -> tuple[str, dict[str, Path]]:
    """hiera.yaml and the data directories it names, under names that keep where they are relative to each
    other: Hiera 5 takes a relative datadir (default `data`) from the directory hiera.yaml is in. Returns
    hiera.yaml's name and {name: local path}. An absolute datadir is a path on the target: not uploaded."""
    datadirs = [config.parent / name for name in datadir_names(config) if not os.path.isabs(name)]
    datadirs = [Path(os.path.normpath(d)) for d in datadirs if d.is_dir()]
    top = Path(os.path.commonpath([config.parent, *datadirs]))
    kept = [d for d in sorted(set(datadirs)) if not any(o != d and o in d.parents for o in datadirs)]
    trees = {str(config.relative_to(top)): config, **{str(d.relative_to(top)): d for d in kept}}
    return str(config.relative_to(top)), trees


def datadir_names(config: Path) -> list[str]:
    try:
        document = YAML(typ="safe").load(config.read_text())
    except (OSError, YAMLError) as exc:
        raise BuildError(f"cannot read hiera_config {config}: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != 5:
        raise BuildError(f"hiera_config {config} is not a Hiera 5 file", hint="it must say version: 5")
    defaults = document.get("defaults") if isinstance(document.get("defaults"), dict) else {}
    default = str(defaults.get("datadir", "data"))
    levels = [level for level in document.get("hierarchy") or [] if isinstance(level, dict)]
    return list(dict.fromkeys([default, *(str(level.get("datadir", default)) for level in levels)]))


async def install_puppet(root: TaskContext, found: Mapping[str, str]) -> str:
    """Install Puppet with the first package manager found; return the package that installed."""
    manager = next((name for name in INSTALLERS if name in found), None)
    if manager is None:
        raise BuildError("puppet is not installed and no package manager was found to install it",
                         hint=f"install: true knows {', '.join(INSTALLERS)}; install puppet in the base image")
    installer, tool = INSTALLERS[manager], found[manager]
    if installer.refresh:
        res = await root.sh(installer.refresh.format(tool=q(tool)))
        if not res.ok:
            raise BuildError(f"{manager} could not refresh its package lists: {tail(res.stderr) or res.rc}")
    for package in installer.packages:
        res = await root.sh(installer.install.format(tool=q(tool), package=package))
        if res.ok:
            return package
    raise BuildError(f"{manager} could not install {' or '.join(installer.packages)}: {tail(res.stderr) or res.rc}")


def outcome(res: CommandResult, check: bool, tool: Tool) -> Result:
    """--detailed-exitcodes as a Result: 0 nothing changed, 2 changed, 4 failures, 6 changes and failures."""
    data = {"installed": tool.installed}
    said = f"installed {tool.installed}; " if tool.installed else ""
    if res.rc in (0, 2):
        # --noop exits 0 with changes pending (Puppet 7): --summarize's "Out of sync" counts them
        pending = sum(int(n) for n in OUT_OF_SYNC.findall(res.stdout)) if check else 0
        changed = res.rc == 2 or pending > 0
        return Result(changed=changed, msg=said + summary(changed, check, pending), rc=res.rc, stdout=res.stdout,
                      stderr=res.stderr, data=data)
    errors = quoted_lines(res.stdout + "\n" + res.stderr, ERROR_LINE) or tail(res.stderr) or tail(res.stdout)
    return Result(failed=True, changed=res.rc == 6, msg=f"{said}puppet apply failed (exit {res.rc}): {errors}",
                  rc=res.rc, stdout=res.stdout, stderr=res.stderr, data=data)


def summary(changed: bool, check: bool, pending: int) -> str:
    if not changed:
        return "nothing to change"
    if not check:
        return "changes applied"
    return f"{pending} resource(s) would change (noop)" if pending else "changes would be applied (noop)"

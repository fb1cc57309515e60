"""The provisioners that run another tool: ansible, puppet-masterless, chef-solo.

Each becomes the task module that runs the same tool (ansible_playbook,
puppet_apply, chef_solo). Packer's plumbing options (how it proxies SSH, where
it stages files, the command line it builds) need nothing in recipe, whose
modules do that themselves: they become notes.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

from modules.importers.packer.mapping import (Assembly, Rule, apply, as_list, key_values, leftover, note, path_of,
                                              skip, to, to_path)
from modules.importers.packer.template import Plugin, Value

JINJA = re.compile(r"\{\{.*?\}\}")
PLUMBING = "recipe connects ansible-playbook to the build's machine itself"
STAGING = "recipe uploads what the tool needs to a temporary place and removes it"
COMMON = ("only", "except", "pause_before", "max_retries", "timeout", "override", "name")
MODULE_NAMES = ("ansible_playbook", "puppet_apply", "chef_solo")


@dataclass
class AnsibleArguments:
    """ansible-playbook's command line as Packer's extra_arguments give it, taken apart."""

    extra_vars: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    become: bool = False
    rest: list[str] = field(default_factory=list)


def _words(text: str) -> list[str]:
    """shlex's words, with the Jinja expressions in text kept whole (they hold spaces)."""
    kept: list[str] = []

    def hide(match: re.Match) -> str:
        kept.append(match.group(0))
        return f"\0{len(kept) - 1}\0"

    words = shlex.split(JINJA.sub(hide, text))
    return [re.sub(r"\0(\d+)\0", lambda m: kept[int(m.group(1))], word) for word in words]


def _extra_vars(text: str, parsed: AnsibleArguments) -> None:
    if text.startswith("@"):
        parsed.rest += ["--extra-vars", text]
    elif text.lstrip().startswith("{"):
        try:
            parsed.extra_vars.update(json.loads(text))
        except json.JSONDecodeError:
            parsed.rest += ["--extra-vars", text]
    else:
        for word in _words(text):
            key, sep, value = word.partition("=")
            if sep:
                parsed.extra_vars[key] = value
            else:
                parsed.rest += ["--extra-vars", word]


def ansible_arguments(args: list[str]) -> AnsibleArguments:
    """-e/--extra-vars k=v (or JSON) into extra_vars, --tags and --skip-tags apart, -b/--become; the rest as is."""
    parsed = AnsibleArguments()
    words = list(args)
    while words:
        word = words.pop(0)
        option, sep, attached = word.partition("=") if word.startswith("--") else (word, "", "")
        if option in ("-e", "--extra-vars", "-t", "--tags", "--skip-tags") and not sep and words:
            attached, sep = words.pop(0), "="
        elif word.startswith("-e") and len(word) > 2 and not word.startswith("--"):
            option, attached, sep = "-e", word[2:], "="
        if option in ("-e", "--extra-vars") and sep:
            _extra_vars(attached, parsed)
        elif option in ("-t", "--tags") and sep:
            parsed.tags += [t.strip() for t in attached.split(",") if t.strip()]
        elif option == "--skip-tags" and sep:
            parsed.skip_tags += [t.strip() for t in attached.split(",") if t.strip()]
        elif word in ("-b", "--become"):
            parsed.become = True
        else:
            parsed.rest.append(word)
    return parsed


def _extra_arguments(assembly: Assembly, name: str, value: Value) -> None:
    parsed = ansible_arguments([str(a) for a in as_list(value.data)])
    for key, found in (("extra_vars", parsed.extra_vars), ("tags", parsed.tags), ("skip_tags", parsed.skip_tags),
                       ("extra_args", parsed.rest)):
        if found:
            assembly.set(f"ansible_playbook.{key}", found)
    if parsed.become:
        assembly.set("ansible_playbook.become", True)


def _search_path(dotted: str) -> Rule:
    """roles_path and collections_path: Ansible's colon-separated folders, as a list named from the recipe."""
    def rule(assembly: Assembly, name: str, value: Value) -> None:
        folders = [part for item in as_list(value.data) for part in str(item).split(":") if part]
        assembly.set(dotted, path_of(assembly.paths, folders))
    return rule


ANSIBLE: dict[str, Rule] = {
    "playbook_file": to_path("ansible_playbook.playbook"),
    "roles_path": _search_path("ansible_playbook.roles_path"),
    "collections_path": _search_path("ansible_playbook.collections_path"),
    "galaxy_file": to_path("ansible_playbook.requirements"),
    "extra_arguments": _extra_arguments,
    "groups": to("ansible_playbook.groups"),
    "ansible_env_vars": to("ansible_playbook.env", key_values),
    "user": note("ansible-playbook logs in as the source's ssh user"),
    **{key: note(PLUMBING) for key in (
        "use_proxy", "sftp_command", "use_sftp", "ssh_host_key_file", "ssh_authorized_key_file", "local_port",
        "host_alias", "inventory_directory", "keep_inventory_file", "ansible_ssh_extra_args", "adapter_ip",
        "skip_version_check", "staging_directory", "clean_staging_directory")},
    "command": note("recipe runs ansible-playbook from PATH (or installs the ansible_version asked)"),
    "galaxy_command": note("recipe installs the requirements with ansible-galaxy"),
    "galaxy_force_install": note("recipe installs the requirements with ansible-galaxy"),
    "galaxy_force_with_deps": note("recipe installs the requirements with ansible-galaxy"),
    "empty_groups": leftover("the machine is put in groups only; add the empty ones to the playbook's hosts"),
    "inventory_file": leftover("recipe writes the inventory of the build's machine itself"),
    "inventory_file_template": leftover("recipe writes the inventory of the build's machine itself"),
    # ansible-local's: what it uploaded beside the playbook is found there by ansible-playbook on the build host
    "playbook_dir": note("ansible-playbook runs from the playbook's folder, where its roles and vars are found"),
    "playbook_paths": note("ansible-playbook runs from the playbook's folder, where its roles and vars are found"),
    "group_vars": note("ansible-playbook finds group_vars beside the playbook"),
    "host_vars": note("ansible-playbook finds host_vars beside the playbook"),
    "role_paths": _search_path("ansible_playbook.roles_path"),
    "inventory_groups": to("ansible_playbook.groups", lambda v: [g for g in str(v).split(",") if g]),
}


def ansible(plugin: Plugin, assembly: Assembly) -> list[dict[str, Any]]:
    """ansible (and ansible-local, which runs the same playbook from inside the guest) as ansible_playbook."""
    assembly.set("ansible_playbook", {})
    if plugin.type == "ansible-local":
        assembly.note("ansible-local ran ansible-playbook inside the guest; ansible_playbook runs it from the "
                      "build host against the guest, to the same effect")
    apply(ANSIBLE, assembly, skip=(*COMMON, "playbook_files"))
    files = plugin.settings.get("playbook_files")
    options = assembly.options.pop("ansible_playbook")
    if files is not None and files.translated:
        playbooks = path_of(assembly.paths, as_list(files.data))
        return [{"ansible_playbook": {**options, "playbook": path}} for path in playbooks]
    return [{"ansible_playbook": options}] if "playbook" in options else []


# -- puppet-masterless -----------------------------------------------------------------------------

def _manifest_dir(assembly: Assembly, name: str, value: Value) -> None:
    """Puppet 4 and later have no `import`: the directory is only the manifest when no manifest_file is given."""
    if "manifest_file" not in assembly.plugin.settings:
        assembly.set("puppet_apply.manifest", path_of(assembly.paths, value.data))
    else:
        assembly.note(f"{name}: puppet_apply uploads the manifest file; what it imported belongs in modules")


def _ignore_exit_codes(assembly: Assembly, name: str, value: Value) -> None:
    if value.data is True:
        assembly.set("ignore_errors", True)


PUPPET: dict[str, Rule] = {
    "manifest_file": to_path("puppet_apply.manifest"),
    "manifest_dir": _manifest_dir,
    "module_paths": to_path("puppet_apply.modules"),
    "hiera_config_path": to_path("puppet_apply.hiera_config"),
    "facter": to("puppet_apply.facts"),
    "extra_arguments": to("puppet_apply.extra_args", lambda v: [str(a) for a in as_list(v)]),
    "prevent_sudo": note("puppet_apply runs puppet as root (through sudo when the login is not root)"),
    "ignore_exit_codes": _ignore_exit_codes,
    "puppet_bin_dir": note("puppet_apply finds puppet on the machine's PATH, or installs it (install: true)"),
    "execute_command": note("puppet_apply builds puppet apply's command line from its options"),
    "guest_os_type": note("recipe's guests are Unix-like"),
    "staging_directory": note(STAGING), "working_directory": note(STAGING),
    "clean_staging_directory": note(STAGING),
}


def puppet(plugin: Plugin, assembly: Assembly) -> list[dict[str, Any]]:
    """Packer's puppet-masterless expects Puppet on the machine, as puppet_apply does unless install: true."""
    assembly.set("puppet_apply", {})
    apply(PUPPET, assembly, skip=COMMON)
    options = assembly.options.pop("puppet_apply")
    return [{"puppet_apply": options}] if "manifest" in options else []


# -- chef-solo ------------------------------------------------------------------------------------

CHEF: dict[str, Rule] = {
    "cookbook_paths": to_path("chef_solo.cookbooks"),
    "roles_path": to_path("chef_solo.roles"),
    "data_bags_path": to_path("chef_solo.data_bags"),
    "environments_path": to_path("chef_solo.environments"),
    "chef_environment": to("chef_solo.environment"),
    "run_list": to("chef_solo.run_list"),
    "json": to("chef_solo.json"),
    "install_command": to("chef_solo.install_command"),
    "chef_license": to("chef_solo.chef_license"),
    "skip_install": note("chef_solo runs install_command only when Chef is not on the machine"),
    "prevent_sudo": note("chef_solo runs chef-solo as root (through sudo when the login is not root)"),
    "version": leftover("put the version into install_command (e.g. install.sh -v 18)"),
    "remote_cookbook_paths": leftover("chef_solo uploads its cookbooks; copy the machine's own ones beside them"),
    "config_template": leftover("chef_solo writes solo.rb from its options"),
    "encrypted_data_bag_secret_path": leftover("chef_solo has no encrypted data bag secret option"),
    "policy_group": leftover("chef_solo runs a run_list, not a policy"),
    "policy_name": leftover("chef_solo runs a run_list, not a policy"),
    "execute_command": note("chef_solo builds chef-solo's command line from its options"),
    "guest_os_type": note("recipe's guests are Unix-like"),
    "staging_directory": note(STAGING),
    "skip_clean_staging_directory": skip(),
}


def chef(plugin: Plugin, assembly: Assembly) -> list[dict[str, Any]]:
    assembly.set("chef_solo", {})
    apply(CHEF, assembly, skip=COMMON)
    options = assembly.options.pop("chef_solo")
    if "skip_install" not in plugin.settings and "install_command" not in options:
        assembly.note("Packer installed Chef with Chef's install script; chef_solo installs it only with "
                      "install_command (Chef is not packaged in Debian 12)")
    return [{"chef_solo": options}]


MAPPERS: dict[str, Callable[[Plugin, Assembly], list[dict[str, Any]]]] = {
    "ansible": ansible,
    "ansible-local": ansible,
    "puppet-masterless": puppet,
    "chef-solo": chef,
}

"""The play's inventory: the build's own host, the groups group_by puts it in, and the hosts add_host adds.

A build is a play against one host, so the hosts add_host adds are never connected to: they exist as names, groups
and variables (`groups`, `hostvars[name]`), as a later play of Ansible's would see them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class Inventory:
    host: str                                                          # the build's own host
    own_groups: set[str] = field(default_factory=set)                  # group_by: the groups the host joined
    added: dict[str, dict[str, Any]] = field(default_factory=dict)     # add_host: name -> its variables
    members: dict[str, list[str]] = field(default_factory=dict)        # add_host: group -> the added hosts in it

    def would_change(self, name: str, groups: list[str], host_vars: Mapping[str, Any]) -> bool:
        """Whether add_host with these arguments changes anything (Ansible's add_dynamic_host `changed`)."""
        if name not in self.added and name != self.host:
            return True
        known = self.added.get(name, {})
        if any(known.get(key, object()) != value for key, value in host_vars.items()):
            return True
        return any(name not in self.members.get(group, ()) for group in groups)

    def add_host(self, name: str, groups: list[str], host_vars: Mapping[str, Any]) -> None:
        self.added.setdefault(name, {}).update(host_vars)
        for group in groups:
            hosts = self.members.setdefault(group, [])
            if name not in hosts:
                hosts.append(name)

    def group_names(self, name: str) -> list[str]:
        own = self.own_groups if name == self.host else set()
        return sorted((own | {g for g, hosts in self.members.items() if name in hosts}) - {"all", "ungrouped"})

    def groups(self) -> dict[str, list[str]]:
        """Ansible's `groups`: every group with its hosts, `all` first; a host in no group is `ungrouped`."""
        every = [self.host, *(h for h in self.added if h != self.host)]
        found: dict[str, list[str]] = {"all": every, "ungrouped": []}
        for host in every:
            names = self.group_names(host)
            for group in names or ["ungrouped"]:
                found.setdefault(group, []).append(host)
        return found

    def host_vars(self, name: str) -> dict[str, Any]:
        """hostvars[name] for an added host: its variables and the inventory's own names."""
        return {"inventory_hostname": name, "inventory_hostname_short": name.split(".")[0],
                "group_names": self.group_names(name), **self.added.get(name, {})}

"""Roles from Ansible collections: `ns.col.role` names the role `role` of the collection `ns.col`.

Looked for where Ansible looks, in this order: the `collections/` folder beside the recipe (as Ansible reads one
beside the playbook), each folder of ANSIBLE_COLLECTIONS_PATH, then ~/.ansible/collections and
/usr/share/ansible/collections. Each holds ansible_collections/<ns>/<col>/roles/<role>.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

# a role's fully qualified name: namespace.collection.role, each a Python identifier (Galaxy's rule)
FQCN = re.compile(r"^([A-Za-z_]\w*)\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)$")
DEFAULT_PATHS = ("~/.ansible/collections", "/usr/share/ansible/collections")


def split_role_fqcn(name: str) -> tuple[str, str] | None:
    """("ns.col", "role") for "ns.col.role"; None for a plain role name (which may hold dots, as Galaxy's
    "author.role" folder names do)."""
    found = FQCN.match(name)
    return (f"{found[1]}.{found[2]}", found[3]) if found else None


def collection_dirs(base: Path) -> list[Path]:
    """The folders holding ansible_collections/, most specific first."""
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS") or ""
    entries = [base / "collections", *(Path(p) for p in configured.split(os.pathsep) if p),
               *(Path(p).expanduser() for p in DEFAULT_PATHS)]
    # an entry may name the ansible_collections folder itself, as Ansible accepts
    return list(dict.fromkeys(e.parent if e.name == "ansible_collections" else e for e in entries))


def collection_role_dirs(name: str, base: Path) -> list[Path]:
    """Where the collection role `name` may be, in search order; [] for a plain role name."""
    parts = split_role_fqcn(name)
    if parts is None:
        return []
    namespace, collection = parts[0].split(".")
    return [d / "ansible_collections" / namespace / collection / "roles" / parts[1] for d in collection_dirs(base)]


__all__ = ["collection_dirs", "collection_role_dirs", "split_role_fqcn"]

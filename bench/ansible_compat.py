"""How much real Ansible content recipe runs unchanged, and how much of it does what ansible-playbook does.

For a corpus folder (like ../shared/ansible-corpus: Ansible's own integration targets under
test/integration/targets/<name>, Galaxy roles under roles/<name>), per item:
- does `recipe validate` accept it unchanged (a recipe with `roles: [<item>]` and --roles-path), with
  recipe's first problem when not;
- for the items that validate, both tools run it twice on the same throwaway sshd (tests/ansible_oracle.py):
  the tasks whose status matches out of Ansible's, and the files that differ in remote_tmp_dir;
- anything either tool left outside remote_tmp_dir (in /tmp, /var/tmp, the target user's HOME or the fresh HOME
  the tools run with).
The sshd is this machine itself, as root: an item whose files name a system module (apt, user, service...)
or a system path (/etc/...) is only validated here, never run (the roles run in a guest build instead).
Integration targets make their own remote_tmp_dir (setup_remote_tmp_dir: a tempfile in /tmp, removed by a
handler at the end), so most of their files are compared by their own asserts, not here.
At the end: totals and the share of matching tasks.

    .venv/bin/python bench/ansible_compat.py --corpus ../shared/ansible-corpus [--only lineinfile,copy]
"""
from __future__ import annotations

import argparse
import os
import pwd
import re
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ansible_oracle import Batch, Comparison, Item, Outcome, compare  # noqa: E402
from tests.sshd import start_sshd  # noqa: E402

# Ansible's helpers for its own targets: dependencies of the others, not items themselves
HELPERS = ("prepare_tests", "setup_remote_tmp_dir")
WATCHED = (Path("/tmp"), Path("/var/tmp"), Path(pwd.getpwuid(os.getuid()).pw_dir))   # the target user's HOME
# items read through whose system module or path is harmless here, and why
REVIEWED = {
    "lineinfile": "tasks/acls.yml: apt only on Ubuntu; ~/test.txt on the target, removed in its `always`; "
                  "leaves file.txt in the target user's HOME (reported at the end)",
}
# what makes an item unsafe to run against this machine: a module that changes the system, a system path
SYSTEM_MODULE = re.compile(r"^\s*-?\s*(ansible\.builtin\.|ansible\.posix\.|community\.general\.)?"
                           r"(apt|apt_key|apt_repository|deb822_repository|package|yum|dnf|pip|user|group|service|"
                           r"systemd|systemd_service|sysctl|mount|hostname|reboot|cron|authorized_key|pamd|"
                           r"pam_limits|modprobe|timezone|locale_gen|debconf|seboolean|selinux)\s*:", re.MULTILINE)
SYSTEM_PATH = re.compile(r"""["'\s=](/etc|/usr|/var/(?!tmp)|/boot|/lib|/opt|/srv|/root)/""")


def corpus_items(corpus: Path) -> list[Item]:
    """Each integration target with a tasks/ folder (a role, as ansible-test runs it) and each Galaxy role."""
    items = []
    targets = corpus / "test/integration/targets"
    for target in sorted(targets.iterdir()) if targets.is_dir() else []:
        if target.name not in HELPERS and (target / "tasks/main.yml").is_file():
            items.append(Item(name=target.name, roles=(target.name,), roles_path=targets))
    roles = corpus / "roles"
    for role in sorted(roles.iterdir()) if roles.is_dir() else []:
        if (role / "tasks/main.yml").is_file():
            items.append(Item(name=role.name, roles=(role.name,), roles_path=roles, gather_facts=True))
    return items


def skipped_targets(corpus: Path) -> list[str]:
    """Targets that are scripts (runme.sh) with no tasks/main.yml: ansible-test runs them, not a role."""
    targets = corpus / "test/integration/targets"
    return sorted(t.name for t in targets.iterdir()
                  if t.name not in HELPERS and not (t / "tasks/main.yml").is_file()) if targets.is_dir() else []


def system_change(item: Item) -> str:
    """Why running the item here would change this machine ('' when nothing says so): the first system module
    or path in its role, or in the roles its meta/main.yml depends on."""
    if item.name in REVIEWED:
        return ""
    for role in _with_dependencies(item):
        for path in sorted((item.roles_path / role).rglob("*.yml")):
            text = path.read_text(errors="replace")
            for pattern in (SYSTEM_MODULE, SYSTEM_PATH):
                match = pattern.search(text)
                if match:
                    line = text.count("\n", 0, match.start()) + 1
                    return f"{path.relative_to(item.roles_path)}:{line}: {match.group(0).strip()}"
    return ""


def _with_dependencies(item: Item) -> list[str]:
    found: list[str] = []
    pending = list(item.roles)
    while pending:
        role = pending.pop()
        if role in found or not (item.roles_path / role).is_dir():
            continue
        found.append(role)
        meta = item.roles_path / role / "meta/main.yml"
        data = yaml.safe_load(meta.read_text()) if meta.is_file() else None
        for dependency in (data or {}).get("dependencies") or []:
            pending.append(dependency if isinstance(dependency, str) else dependency.get("role", ""))
    return found


def listing(directories: tuple[Path, ...]) -> set[str]:
    found = set()
    for directory in directories:
        if directory.is_dir():
            found |= {str(path) for path in directory.iterdir()}
    return found


def first_problem(invalid: str) -> str:
    lines = [line.strip() for line in invalid.splitlines() if line.strip()]
    detail = next((line for line in lines if not line.startswith("error:")), lines[0] if lines else "")
    return detail[:300]


def print_item(outcome: Outcome, comparison: Comparison) -> None:
    name = outcome.item.name
    if outcome.invalid:
        print(f"{name:<28} validates: no   {first_problem(outcome.invalid)}")
        return
    print(f"{name:<28} validates: yes  tasks matching: {comparison.matched}/{comparison.total}  "
          f"file differences: {comparison.file_problems}")


def run_corpus(items: list[Item], work: Path, verbose: bool) -> tuple[list[tuple[Outcome, Comparison]], set[str]]:
    home = work / "home"
    home.mkdir()
    watched = (*WATCHED, home)
    before = listing(watched)
    server = start_sshd(work / "sshd")
    results = []
    try:
        for item in items:    # one at a time, each printed as it ends
            batch = Batch(server, work / item.name, home=home, timeout=1800, shards=1)
            unsafe = system_change(item)
            try:
                if unsafe:
                    problem = batch.validate(item)
                    print(f"{item.name:<28} validates: {'no ' if problem else 'yes'}  "
                          f"{first_problem(problem) if problem else ''}")
                    print(f"{'':<28} not run here: it changes this machine ({unsafe})")
                    continue
                outcome = batch.run([item])[item.name]
            finally:
                batch.close()
            comparison = compare(outcome)
            print_item(outcome, comparison)
            if verbose and not comparison.agrees:
                print(comparison.report)
            results.append((outcome, comparison))
    finally:
        server.stop()
    ours = {str(work)}
    left = {path for path in listing(watched) - before if path not in ours}
    return results, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--only", default="", help="comma-separated item names")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each difference, task by task")
    args = parser.parse_args()
    items = corpus_items(args.corpus.resolve())
    if args.only:
        wanted = set(args.only.split(","))
        items = [i for i in items if i.name in wanted]
    for name in skipped_targets(args.corpus.resolve()):
        print(f"{name:<28} (a runme.sh target, not a role: not run)")
    with tempfile.TemporaryDirectory(prefix="ansible-compat-") as tmp:
        results, left = run_corpus(items, Path(tmp), args.verbose)
    valid = [(o, c) for o, c in results if not o.invalid]
    matched = sum(c.matched for _, c in valid)
    total = sum(c.total for _, c in valid)
    all_tasks = sum(c.total for _, c in results)
    print()
    print(f"items: {len(results)}, validate unchanged: {len(valid)}")
    print(f"tasks (Ansible's, both runs) in items that validate: {total}, status matching recipe: {matched}"
          + (f" ({100 * matched / total:.1f}%)" if total else ""))
    print(f"tasks in all items: {all_tasks}, matching: {matched}"
          + (f" ({100 * matched / all_tasks:.1f}%)" if all_tasks else ""))
    print(f"items whose files all match: {sum(1 for _, c in valid if c.file_problems == 0)} of {len(valid)}")
    if left:
        print("new outside remote_tmp_dir while it ran (other processes' too): " + ", ".join(sorted(left)))
    else:
        print("left outside remote_tmp_dir: nothing in " + ", ".join(str(w) for w in WATCHED) + " or HOME")


if __name__ == "__main__":
    main()

"""How much real Ansible content recipe runs unchanged, and how much of it does what ansible-playbook does.

For a corpus folder (like ../shared/ansible-corpus: Ansible's own integration targets under
test/integration/targets/<name>, Galaxy roles under roles/<name>), per item (a target that is a role, a Galaxy
role, or one play of a playbook a target's runme.sh runs: `target/playbook.yml#N`, see bench/lib/playbook_targets.py):
- does `recipe validate` accept it unchanged (a recipe with `roles: [<item>]` and --roles-path; for a play, the
  play's keys as the recipe's), with recipe's first problem when not;
- for the items that validate, both tools run it twice on the same throwaway sshd (tests/ansible_oracle.py):
  the tasks whose status matches out of Ansible's, and the files that differ in remote_tmp_dir;
- anything either tool left outside remote_tmp_dir (in /tmp, /var/tmp, the target user's HOME or the fresh HOME
  the tools run with).
The sshd is this machine itself, as root; an item whose files name a system module (apt, user, service...)
or a system path (/etc/...) runs instead in a throwaway Debian root (bench/lib/debian_root.py), made afresh
for each tool; Galaxy roles, which start services, are only validated here (they run in a guest build:
bench/corpus_roles.yml).
The targets run from a copy in the work folder (some write into their own files/), with stand-ins for the
helpers of Ansible's test suite the corpus lacks (bench/stand_ins: setup_nobody).
Integration targets make their own remote_tmp_dir (setup_remote_tmp_dir: a tempfile in /tmp, removed by a
handler at the end), so most of their files are compared by their own asserts, not here.
A play that cannot be wrapped is "not comparable", and counts as an item that does not validate.
At the end: totals and the share of matching tasks.

    .venv/bin/python bench/ansible_compat.py --corpus ../shared/ansible-corpus [--only lineinfile,set_fact]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib.debian_root import DebianRoot, debian_root  # noqa: E402
from bench.lib.playbook_targets import Entry, target_items  # noqa: E402
from tests.ansible_oracle import KILLED, Batch, Comparison, Item, Outcome, Play, compare, slug  # noqa: E402
from tests.sshd import SshServer, start_sshd  # noqa: E402

# Ansible's helpers for its own targets: dependencies of the others, not items themselves
HELPERS = ("prepare_tests", "setup_remote_tmp_dir")
STAND_INS = ("setup_nobody",)      # helpers the corpus lacks: bench/stand_ins
PLAY_TIMEOUT = 180         # seconds for each tool's run of a play
REPORT_LINES = 200         # of an item's differences, with -v
WATCHED = (Path("/tmp"), Path("/var/tmp"), Path(pwd.getpwuid(os.getuid()).pw_dir))   # the target user's HOME
# items read through whose system module or path is harmless here, and why
# files an item leaves in the target user's HOME, where both tools would meet: removed before each tool's runs
# (the tools then run one after the other) and at the end
HOME_LEFTOVERS = {"lineinfile": ("file.txt",)}
REVIEWED = {
    "lineinfile": "tasks/acls.yml: apt only on Ubuntu; ~/test.txt on the target, removed in its `always`; "
                  "leaves file.txt in the target user's HOME (HOME_LEFTOVERS)",
    "handlers/46447.yml": "runs /usr/bin/true and /usr/bin/false",
}
# what makes an item unsafe to run against this machine: a module that changes the system, a system path
SYSTEM_MODULE = re.compile(r"^\s*-?\s*(ansible\.builtin\.|ansible\.posix\.|community\.general\.)?"
                           r"(apt|apt_key|apt_repository|deb822_repository|package|yum|dnf|pip|user|group|service|"
                           r"systemd|systemd_service|sysctl|mount|hostname|reboot|cron|authorized_key|pamd|"
                           r"pam_limits|modprobe|timezone|locale_gen|debconf|seboolean|selinux)\s*:", re.MULTILINE)
SYSTEM_PATH = re.compile(r"""["'\s=](/etc|/usr|/var/(?!tmp)|/boot|/lib|/opt|/srv|/root)/""")
# what an item needs a booted system for (the Debian root has no init): it only validates here
SERVICE_MODULE = re.compile(r"^\s*-?\s*(ansible\.builtin\.)?(service|systemd|systemd_service)\s*:", re.MULTILINE)


def corpus_items(corpus: Path, work: Path) -> list[Item]:
    """Each integration target with a tasks/ folder (a role, as ansible-test runs it), from a copy in `work`
    with the stand-ins beside them, and each Galaxy role."""
    items = []
    targets = copy_targets(corpus / "test/integration/targets", work / "targets")
    for target in sorted(targets.iterdir()) if targets.is_dir() else []:
        if target.name not in HELPERS + STAND_INS and (target / "tasks/main.yml").is_file():
            # gathering facts, as ansible-test's play for a POSIX target does; in diff mode, which some targets'
            # asserts need (file's modification_time.yml reads .diff of a task without `diff: yes`)
            items.append(Item(name=target.name, roles=(target.name,), roles_path=targets, gather_facts=True,
                              ansible_test=True))
    roles = corpus / "roles"
    for role in sorted(roles.iterdir()) if roles.is_dir() else []:
        if (role / "tasks/main.yml").is_file():
            items.append(Item(name=role.name, roles=(role.name,), roles_path=roles, gather_facts=True))
    return items


def copy_targets(targets: Path, copy: Path) -> Path:
    """The role targets and helpers, and the stand-ins for helpers the corpus lacks."""
    if not targets.is_dir():
        return copy
    for target in targets.iterdir():
        if (target / "tasks/main.yml").is_file():
            shutil.copytree(target, copy / target.name, symlinks=True)
            shutil.copytree(target, pristine(copy) / target.name, symlinks=True)
    for stand_in in STAND_INS:
        if not (copy / stand_in).exists():
            shutil.copytree(ROOT / "bench/stand_ins" / stand_in, copy / stand_in)
    return copy


def pristine(copy: Path) -> Path:
    """The untouched copy of the targets beside the one the tools run (see fresh_roles)."""
    return copy.with_name(copy.name + "-pristine")


def fresh_roles(item: Item) -> None:
    """The item's roles as the corpus has them again: a target writes into its own files/ (copy makes an empty
    directory there), which the second tool must not find made."""
    for role in _with_dependencies(item):
        if (pristine(item.roles_path) / role).is_dir():
            shutil.rmtree(item.roles_path / role)
            shutil.copytree(pristine(item.roles_path) / role, item.roles_path / role, symlinks=True)


def script_targets(corpus: Path) -> list[Path]:
    """Targets that are scripts (runme.sh) with no tasks/main.yml: their playbooks' plays are items."""
    targets = corpus / "test/integration/targets"
    return sorted(t for t in targets.iterdir() if t.name not in HELPERS and not (t / "tasks/main.yml").is_file()
                  and t.is_dir()) if targets.is_dir() else []


def system_change(item: Item, patterns: tuple[re.Pattern, ...] = (SYSTEM_MODULE, SYSTEM_PATH)) -> str:
    """Why running the item here would change this machine ('' when nothing says so): the first system module
    or path in its role, or in the roles its meta/main.yml depends on; for a play, in its playbook or in the
    files and roles of its folder the playbook names."""
    if item.name in REVIEWED or item.name.split("#")[0] in REVIEWED:
        return ""
    if item.play:
        folder = item.play.playbook.parent
        paths = play_files(item.play)
    else:
        folder = item.roles_path
        paths = [path for role in _with_dependencies(item) for path in sorted((folder / role).rglob("*.yml"))]
    for path in paths:
        text = path.read_text(errors="replace")
        for pattern in patterns:
            match = pattern.search(text)
            if match:
                line = text.count("\n", 0, match.start()) + 1
                return f"{path.relative_to(folder)}:{line}: {match.group(0).strip()}"
    return ""


def play_files(play: Play) -> list[Path]:
    """The playbook, and its folder's YAML files whose name (a role's: the role's name) the playbook's text has."""
    folder = play.playbook.parent
    text = play.playbook.read_text(errors="replace")
    found = [play.playbook]
    for path in sorted(folder.rglob("*.yml")):
        parts = path.relative_to(folder).parts
        name = parts[parts.index("roles") + 1] if "roles" in parts[:-1] else path.stem
        if path != play.playbook and not path.name.startswith("_oracle-") and re.search(
                rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            found.append(path)
    return found


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


def ansible_refusal(outcome: Outcome) -> str:
    """ansible-playbook's first error when it ran none of the play (it refused the playbook), else ''."""
    if not outcome.ansible or outcome.ansible[0].ran:
        return ""
    lines = [line.strip() for line in outcome.ansible_log.splitlines()]
    return next((line for line in lines if line.startswith(("[ERROR]", "ERROR!"))), "(no error said)")[:300]


def print_item(outcome: Outcome, comparison: Comparison) -> None:
    name = outcome.item.name
    refusal = ansible_refusal(outcome)
    if outcome.invalid:
        print(f"{name:<28} validates: no   {first_problem(outcome.invalid)}")
        if refusal:
            print(f"{'':<28} ansible-playbook refuses it too: {refusal}")
        return
    print(f"{name:<28} validates: yes  tasks matching: {comparison.matched}/{comparison.total}  "
          f"file differences: {comparison.file_problems}")
    if refusal:
        print(f"{'':<28} but ansible-playbook refuses it: {refusal}")
    elif outcome.ansible and outcome.recipe and outcome.ansible[0].failed and outcome.recipe[0].failed:
        failed = [s for s in outcome.ansible[0].statuses if s.status == "failed"]
        where = f" at {failed[-1].name!r}: {failed[-1].msg[:200]}" if failed else ""
        print(f"{'':<28} the play fails under both tools{where}")
    elif outcome.ansible and outcome.recipe and outcome.ansible[0].failed != outcome.recipe[0].failed:
        # the per-task figures count Ansible's tasks: a recipe that fails later, or runs on, shows here
        how = {True: "fails", False: "succeeds"}
        ending = outcome.recipe[0].statuses[-1] if outcome.recipe[0].statuses else None
        killed = f" ({KILLED} {ending.msg})" if ending and ending.name == KILLED else ""
        print(f"{'':<28} but the play {how[outcome.ansible[0].failed]} under ansible-playbook, "
              f"{how[outcome.recipe[0].failed]} under recipe{killed}")


@dataclass
class Totals:
    results: list[tuple[Outcome, Comparison]] = field(default_factory=list)
    not_comparable: int = 0          # plays the bench cannot wrap: items that do not validate, no task run
    left: set[str] = field(default_factory=set)     # new outside remote_tmp_dir


@dataclass
class Targets:
    """Where items run: this machine's sshd, or a Debian root (started when an item first needs it)."""

    server: SshServer
    work: Path
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    root: DebianRoot | None = None

    def debian_root(self) -> DebianRoot:
        if self.root is None:
            self.root = self.stack.enter_context(debian_root(self.work))
        else:
            self.root.reset()
        return self.root


def run_entry(entry: Entry, targets: Targets, work: Path, home: Path, verbose: bool
              ) -> tuple[Outcome, Comparison] | None:
    """One item with both tools, printed as it ends; None when it is not comparable or not run here."""
    if entry.item is None:
        print(f"{entry.name:<28} not comparable: {entry.not_comparable}")
        return None
    item = entry.item
    unsafe, service = system_change(item), system_change(item, (SERVICE_MODULE,))
    if unsafe and not service:
        root = targets.debian_root()     # a fresh one; and another for recipe's runs, after Ansible's

        def between() -> None:
            root.reset()
            fresh_roles(item)

        outcome = run_batch(item, Batch(root.server, work / slug(item.name), home=home, timeout=1800, shards=1,
                                        between=between))
    else:
        outcome = run_here(item, targets.server, work, home, service)
    if outcome is None:
        return None
    comparison = compare(outcome)
    print_item(outcome, comparison)
    if entry.notes:
        print(f"{'':<28} " + "; ".join(entry.notes))
    if verbose and not comparison.agrees:
        lines = comparison.report.splitlines()
        print("\n".join(lines[:REPORT_LINES]) + (f"\n... {len(lines) - REPORT_LINES} more lines"
                                                  if len(lines) > REPORT_LINES else ""))
    return outcome, comparison


def run_here(item: Item, server: SshServer, work: Path, home: Path, service: str) -> Outcome | None:
    """The item against this machine's sshd; an item that starts services is only validated."""
    # a play of these targets takes seconds; one that runs on (handlers notifying each other) is killed
    leftovers = [Path(pwd.getpwnam(server.user).pw_dir) / name for name in HOME_LEFTOVERS.get(item.name, ())]

    def remove_leftovers() -> None:
        for path in leftovers:
            path.unlink(missing_ok=True)

    remove_leftovers()
    batch = Batch(server, work / slug(item.name), home=home, timeout=PLAY_TIMEOUT if item.play else 1800, shards=1,
                  between=remove_leftovers if leftovers else None)
    try:
        if service:
            problem = batch.validate(item)
            print(f"{item.name:<28} validates: {'no ' if problem else 'yes'}  "
                  f"{first_problem(problem) if problem else ''}")
            print(f"{'':<28} not run here: it starts services ({service})")
            return None
        return batch.run([item])[item.name]
    finally:
        batch.close()
        remove_leftovers()


def run_batch(item: Item, batch: Batch) -> Outcome:
    try:
        return batch.run([item])[item.name]
    finally:
        batch.close()


def run_corpus(entries: list[Entry], work: Path, home: Path, verbose: bool) -> Totals:
    watched = (*WATCHED, home)
    before = listing(watched)
    targets = Targets(start_sshd(work / "sshd"), work)
    totals = Totals()
    try:
        for entry in entries:    # one at a time, each printed as it ends
            result = run_entry(entry, targets, work, home, verbose)
            if result is not None:
                totals.results.append(result)
            totals.not_comparable += entry.item is None
    finally:
        targets.server.stop()
        targets.stack.close()
    ours = {str(work)}
    totals.left = {path for path in listing(watched) - before if path not in ours}
    return totals


def play_entries(corpus: Path, work: Path, home: Path, wanted: set[str]) -> list[Entry]:
    """The plays of the script targets (all, or those --only names by target, playbook or play)."""
    entries: list[Entry] = []
    for target in script_targets(corpus):
        if wanted and target.name not in wanted and not any(w.startswith(target.name + "/") for w in wanted):
            continue
        found, notes = target_items(target, work, home)
        for note in notes:
            print(f"{target.name:<28} {note}")
        entries += [e for e in found if not wanted or {target.name, e.name, e.name.split("#")[0]} & wanted]
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--only", default="", help="comma-separated item names: a role, a script target (its plays), "
                        "target/playbook.yml or target/playbook.yml#N")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each difference, task by task")
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    wanted = set(filter(None, args.only.split(",")))
    with tempfile.TemporaryDirectory(prefix="ansible-compat-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        roles = [Entry(i.name, i) for i in corpus_items(corpus, work) if not wanted or i.name in wanted]
        totals = run_corpus(roles + play_entries(corpus, work, home, wanted), work, home, args.verbose)
    print_totals(totals)


def print_totals(totals: Totals) -> None:
    results = totals.results
    valid = [(o, c) for o, c in results if not o.invalid]
    matched = sum(c.matched for _, c in valid)
    total = sum(c.total for _, c in valid)
    all_tasks = sum(c.total for _, c in results)
    print()
    print(f"items: {len(results) + totals.not_comparable}, validate unchanged: {len(valid)}"
          + (f", not comparable: {totals.not_comparable}" if totals.not_comparable else ""))
    print(f"tasks (Ansible's, both runs) in items that validate: {total}, status matching recipe: {matched}"
          + (f" ({100 * matched / total:.1f}%)" if total else ""))
    print(f"tasks in all items: {all_tasks}, matching: {matched}"
          + (f" ({100 * matched / all_tasks:.1f}%)" if all_tasks else ""))
    print(f"items whose files all match: {sum(1 for _, c in valid if c.file_problems == 0)} of {len(valid)}")
    refused = [o for o, _ in results if ansible_refusal(o)]
    if refused:
        print(f"items ansible-playbook refuses: {len(refused)}, recipe too: {sum(1 for o in refused if o.invalid)}")
    if totals.left:
        print("new outside remote_tmp_dir while it ran (other processes' too): " + ", ".join(sorted(totals.left)))
    else:
        print("left outside remote_tmp_dir: nothing in " + ", ".join(str(w) for w in WATCHED) + " or HOME")


if __name__ == "__main__":
    main()

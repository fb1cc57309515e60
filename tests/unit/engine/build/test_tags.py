"""--tags and --skip-tags: TagFilter against ansible-playbook's own selection.

One task list is both an Ansible playbook's and a recipe's. The expected
selections of the table were taken from `ansible-playbook --list-tasks` (ansible-core
2.19.14) for each combination; test_ansible_selects_what_tagfilter_selects runs
ansible-playbook once more, for the combination that exercises most rules,
so the table cannot drift from Ansible.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.build.play import TagFilter
from engine.recipe.compile import compile_recipe
from engine.recipe.model import Task
from engine.recipe.tasks import tag_set

TASKS = """\
- {name: t_none, debug: {msg: x}}
- {name: t_a, debug: {msg: x}, tags: [a]}
- {name: t_b, debug: {msg: x}, tags: b}
- {name: t_ab, debug: {msg: x}, tags: "a, b"}
- {name: t_always, debug: {msg: x}, tags: [always]}
- {name: t_never, debug: {msg: x}, tags: [never]}
- {name: t_never_a, debug: {msg: x}, tags: [never, a]}
- {name: t_always_b, debug: {msg: x}, tags: [always, b]}
- {name: t_c, debug: {msg: x}, tags: [c]}
- {name: t_untagged_word, debug: {msg: x}, tags: [untagged]}
- {name: t_num, debug: {msg: x}, tags: ["42"]}
- {name: t_never_always, debug: {msg: x}, tags: [never, always]}
- block:
    - {name: t_in_block_c, debug: {msg: x}, tags: [c]}
    - {name: t_in_block, debug: {msg: x}}
  tags: [blk]
"""

# (--tags, --skip-tags) -> the tasks ansible-playbook --list-tasks lists, in order
ANSIBLE_SELECTS = {
    ("", ""): "t_none t_a t_b t_ab t_always t_always_b t_c t_untagged_word t_num t_never_always t_in_block_c "
              "t_in_block",
    ("a", ""): "t_a t_ab t_always t_never_a t_always_b t_never_always",
    ("tagged", ""): "t_a t_b t_ab t_always t_always_b t_c t_num t_never_always t_in_block_c t_in_block",
    ("untagged", ""): "t_none t_always t_always_b t_untagged_word t_never_always",
    ("a,tagged", "b"): "t_a t_always t_never_a t_c t_num t_never_always t_in_block_c t_in_block",
    ("", "always"): "t_none t_a t_b t_ab t_c t_untagged_word t_num t_in_block_c t_in_block",
    ("never", ""): "t_always t_never t_never_a t_always_b t_never_always",
    ("all", "a"): "t_none t_b t_always t_always_b t_c t_untagged_word t_num t_never_always t_in_block_c t_in_block",
    ("", "tagged"): "t_none t_untagged_word",
    ("", "untagged"): "t_a t_b t_ab t_always t_always_b t_c t_num t_never_always t_in_block_c t_in_block",
    ("c", ""): "t_always t_always_b t_c t_never_always t_in_block_c",
    ("", "all"): "t_always t_always_b t_never_always",
    ("always", ""): "t_always t_always_b t_never_always",
    ("42,blk", ""): "t_always t_always_b t_num t_never_always t_in_block_c t_in_block",
}
LIVE = ("a,tagged", "b")
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
RECIPE_HEAD = "name: tags\nsources: {one: {platform: ssh, ssh: {host: h}}}\ntasks:\n"


def tag_filter(only: str, skip: str) -> TagFilter:
    """As the command line makes it (engine.cli.main): no --tags is `all`."""
    return TagFilter(tag_set(only) or frozenset({"all"}), tag_set(skip))


def leaves(tasks: tuple[Task, ...]) -> list[Task]:
    return [leaf for t in tasks for leaf in (leaves(t.block) if t.module is None else [t])]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> list[Task]:
    recipe = tmp_path_factory.mktemp("tags") / "r.yml"
    recipe.write_text(RECIPE_HEAD + "".join(f"  {line}\n" for line in TASKS.splitlines()))
    return leaves(compile_recipe(recipe).tasks)


def selected(tasks: list[Task], only: str, skip: str) -> str:
    chosen = tag_filter(only, skip)
    return " ".join(t.name for t in tasks if chosen.selects(t.tags))


@pytest.mark.parametrize("only,skip", list(ANSIBLE_SELECTS))
def test_tagfilter_selects_what_ansible_selects(compiled, only, skip):
    assert selected(compiled, only, skip) == ANSIBLE_SELECTS[(only, skip)]


@pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-core is a test dependency: make test installs it")
def test_ansible_selects_what_tagfilter_selects(compiled, tmp_path):
    playbook = tmp_path / "pb.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                        + "".join(f"    {line}\n" for line in TASKS.splitlines()))
    only, skip = LIVE
    listed = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(playbook), "--list-tasks",
                             "--tags", only, "--skip-tags", skip], capture_output=True, text=True, timeout=120,
                            check=True, env={"PATH": "/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1",
                                             "ANSIBLE_LOCAL_TEMP": str(tmp_path), "HOME": str(tmp_path)})
    names = re.findall(r"^\s+(t_\w+)\s+TAGS:", listed.stdout, re.MULTILINE)
    assert " ".join(names) == ANSIBLE_SELECTS[LIVE] == selected(compiled, only, skip)


def test_tags_written_as_ansible_allows():
    assert tag_set("a, b") == tag_set(["a", "b"]) == frozenset({"a", "b"})
    assert tag_set([42, "x,y"]) == frozenset({"42", "x", "y"})
    assert tag_set(None) == frozenset()


def test_a_literal_untagged_tag_is_untagged_and_an_empty_set_is_too():
    only_untagged = tag_filter("untagged", "")
    assert only_untagged.selects(frozenset()) and only_untagged.selects(frozenset({"untagged"}))
    assert not tag_filter("tagged", "").selects(frozenset({"untagged"}))


@pytest.mark.parametrize("only,skip,expected", [
    ("", "always", False),       # --skip-tags always wins over always
    ("x", "always", False),
    ("x", "", True),
    ("", "all", True),           # always survives --skip-tags all
])
def test_always_rules(only, skip, expected):
    assert tag_filter(only, skip).selects(frozenset({"always"})) is expected


def test_never_runs_only_when_asked_for_by_name():
    assert not tag_filter("all", "").selects(frozenset({"never", "a"}))
    assert not tag_filter("tagged", "").selects(frozenset({"never", "a"}))
    assert tag_filter("a", "").selects(frozenset({"never", "a"}))
    assert not tag_filter("a", "never").selects(frozenset({"never", "a"}))


def test_an_include_keeps_its_tags_and_an_import_passes_them_on(tmp_path):
    """As Ansible: `include_tasks` with tags: [x] runs under --tags x, but its tasks are filtered on their own
    tags (the classic surprise); import_tasks' tags reach every imported task."""
    (tmp_path / "inc.yml").write_text("- {name: inside, debug: {msg: x}}\n")
    (tmp_path / "r.yml").write_text(RECIPE_HEAD + "  - {include_tasks: inc.yml, tags: [x]}\n"
                                    "  - {import_tasks: inc.yml, tags: [y]}\n")
    include, imported = compile_recipe(tmp_path / "r.yml").tasks
    assert include.include == "include_tasks" and include.tags == frozenset({"x"})
    assert include.block[0].tags == frozenset() and not tag_filter("x", "").selects(include.block[0].tags)
    assert imported.block[0].tags == frozenset({"y"}) and tag_filter("y", "").selects(imported.block[0].tags)


def test_the_implicit_flush_handlers_runs_under_tags(tmp_path):
    (tmp_path / "r.yml").write_text(RECIPE_HEAD.replace("tasks:\n", "pre_tasks:\n  - {debug: {msg: p}, tags: x}\n"
                                                        "tasks:\n  - {debug: {msg: t}, tags: x}\n"))
    flush = [t for t in compile_recipe(tmp_path / "r.yml").tasks if t.module == "meta"]
    assert flush and all(tag_filter("x", "").selects(t.tags) for t in flush)

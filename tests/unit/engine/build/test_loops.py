"""A task's loop: its items, what each iteration sees, and the value a loop registers.

The expected values are Ansible's: ansible-playbook 2.19.14 was run once on a
playbook registering each kind of loop (all items skipped, one failed, none,
some changed, loop_control extended with index_var and loop_var) and the
registered values' keys are copied here.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.build.loops import item_result, item_vars, loop_items, loop_names, loop_result
from engine.errors import Position
from engine.recipe.model import Origin, Task
from engine.recipe.template import Scope, TemplateFailure


def task(**fields) -> Task:
    return Task(position=Position("t.yml", 1, 1), path="tasks[0]", origin=Origin(base_dir=Path("/nonexistent")),
                module="debug", **fields)


def scope(**variables) -> Scope:
    return Scope([variables])


# -- the items ----------------------------------------------------------------------

def test_loop_takes_a_list_or_a_template_giving_one():
    assert loop_items(task(loop=[1, "{{ x }}"]), scope(x=2)) == [1, 2]
    assert loop_items(task(loop="{{ pkgs }}"), scope(pkgs=["a", "b"])) == ["a", "b"]
    assert loop_items(task(loop="{{ d | dict2items }}"), scope(d={"k": 1})) == [{"key": "k", "value": 1}]


@pytest.mark.parametrize("value", ["{{ d }}", "{{ s }}", "plain"])
def test_loop_over_anything_but_a_list_fails_with_ansibles_message(value):
    with pytest.raises(TemplateFailure, match="Invalid data passed to 'loop', it requires a list"):
        loop_items(task(loop=value), scope(d={"a": 1}, s="text"))


@pytest.mark.parametrize("lookup,terms,expected", [
    ("items", [[1, 2], 3], [1, 2, 3]),                      # with_items flattens one level
    ("list", [[1, 2], 3], [[1, 2], 3]),                     # with_list does not
    ("dict", {"a": 1}, [{"key": "a", "value": 1}]),
    ("indexed_items", ["a", "b"], [[0, "a"], [1, "b"]]),
    ("sequence", "start=1 end=3", ["1", "2", "3"]),
])
def test_with_lookups_give_ansibles_items(lookup, terms, expected):
    items = loop_items(task(loop=terms, lookup=lookup), scope())
    assert [list(i) if isinstance(i, tuple) else i for i in items] == expected   # Ansible's zip gives tuples too


def test_with_items_renders_its_template_first():
    assert loop_items(task(loop="{{ pkgs }}", lookup="items"), scope(pkgs=["a", ["b"]])) == ["a", "b"]


def test_loop_names_render_a_templated_loop_var_and_leave_a_plain_one():
    templated = task(loop=[1], loop_var="{{ prefix }}_item", index_var="{{ prefix }}_i")
    assert (loop_names(templated, scope(prefix="pkg")).loop_var, loop_names(templated, scope(prefix="pkg")).index_var) \
        == ("pkg_item", "pkg_i")
    plain = task(loop=[1], loop_var="pkg")
    assert loop_names(plain, scope()) is plain


# -- what each iteration sees ---------------------------------------------------------

def test_plain_loop_defines_item_and_ansible_loop_var_only():
    values = item_vars(task(loop=["a", "b"]), ["a", "b"], 1)
    assert values["item"] == "b" and values["ansible_loop_var"] == "item"
    assert "ansible_loop" not in values and "ansible_index_var" not in values


def test_loop_control_extended_as_ansible_gives_it():
    loop = task(loop=["a", "b", "c"], loop_var="v", index_var="i", extended=True)
    first, _, last = (item_vars(loop, ["a", "b", "c"], i) for i in range(3))
    assert first["ansible_loop"] == {"allitems": ["a", "b", "c"], "first": True, "index": 1, "index0": 0,
                                     "last": False, "length": 3, "nextitem": "b", "revindex": 3, "revindex0": 2}
    assert last["ansible_loop"] == {"allitems": ["a", "b", "c"], "first": False, "index": 3, "index0": 2,
                                    "last": True, "length": 3, "previtem": "b", "revindex": 1, "revindex0": 0}
    assert (first["v"], first["i"], first["ansible_index_var"], first["ansible_loop_var"]) == ("a", 0, "i", "v")


def test_one_item_result_carries_the_loop_names_as_ansible_registers_them():
    loop = task(loop=["a"], loop_var="v", index_var="i", extended=True)
    entry = item_result(loop, item_vars(loop, ["a"], 0), {"changed": False, "msg": "x"})
    # Ansible's keys for this entry: ansible_index_var ansible_loop ansible_loop_var changed failed i msg v
    assert {"ansible_index_var", "ansible_loop", "ansible_loop_var", "changed", "i", "msg", "v"} <= set(entry)
    assert (entry["v"], entry["i"], entry["ansible_loop_var"], entry["ansible_index_var"]) == ("a", 0, "v", "i")


# -- what the loop registers ------------------------------------------------------------

def strip(value: dict) -> dict:
    return {k: v for k, v in value.items() if k != "results"}


def test_an_empty_loop_registers_ansibles_skip():
    assert loop_result([]) == {"changed": False, "skipped": True, "skipped_reason": "No items in the list",
                               "results": []}


def test_a_loop_with_a_failed_item():
    value = loop_result([{"changed": False, "failed": False}, {"changed": False, "failed": True}])
    assert strip(value) == {"changed": False, "failed": True, "msg": "One or more items failed", "skipped": False}


def test_a_loop_with_a_changed_item_and_a_skipped_one():
    assert strip(loop_result([{"changed": True}, {"skipped": True, "changed": False}])) == \
        {"changed": True, "msg": "All items completed", "skipped": False}
    assert strip(loop_result([{"skipped": True, "changed": False}, {"changed": False}])) == \
        {"changed": False, "msg": "All items completed", "skipped": False}


def test_a_loop_whose_items_were_all_skipped():
    value = loop_result([{"skipped": True, "changed": False}, {"skipped": True, "changed": False}])
    assert strip(value) == {"changed": False, "msg": "All items skipped", "skipped": True}

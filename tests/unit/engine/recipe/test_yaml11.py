"""YAML 1.1 as Ansible reads task files: recipe's reader against Ansible's own loader.

ansible.parsing.utils.yaml.from_yaml (PyYAML's YAML 1.1 resolver) is the
oracle: each scalar of the table is read by both and must give the same value
of the same type. Dates are the one planned difference: recipe keeps them as
their ISO text, which is what a template makes of Ansible's date anyway.
"""
from __future__ import annotations

import datetime
import math

import pytest
from ansible.parsing.utils.yaml import from_yaml

from engine.errors import RecipeError
from engine.recipe.template import Scope, render
from engine.recipe.yamlpos import UnsafeText, YMap, new_yaml, parse_yaml

SCALARS = [
    # booleans: YAML 1.1's words in three cases, but not y/n (Ansible keeps them as strings)
    "yes", "no", "Yes", "NO", "on", "Off", "true", "False", "TRUE", "y", "n", "Y", "N", "tRue", "yes please",
    # integers: a leading 0 is octal (mode: 0644), 0o is not YAML 1.1, sexagesimal 1:30 is 90
    "0644", "0755", "0_644", "644", "1_000", "0x1F", "0x_1F", "0b101", "1:30", "190:20:30", "+12", "-0", "00", "08",
    "0o644",
    # floats and what only looks like one
    "1.5", "09.5", "0.1_0", "1.0E+3", ".inf", "-.Inf", "+.inf", "-.5", "1.2.3", "3.0.0", "1,000",
    # null
    "~", "null", "Null", "NULL", "",
    # explicit tags and quotes
    "'yes'", '"0644"', "!!str yes", "!!str 0644", "!!int '12'", "!!float '1'",
]


def ansible_value(text: str):
    value = from_yaml(f"v: {text}\n")["v"]
    if isinstance(value, datetime.date):
        return value.isoformat()
    # Ansible 2.19 tags its values with their origin (_AnsibleTaggedStr, ...): compare the plain value
    plain = next((kind for kind in (bool, str, int, float) if isinstance(value, kind)), None)
    return plain(value) if plain else value


def recipe_value(text: str):
    return parse_yaml(f"v: {text}\n", "t.yml")["v"]


def same(left, right) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return left == right and type(left) is type(right)


@pytest.mark.parametrize("text", SCALARS)
def test_scalars_read_as_ansible_reads_them(text):
    assert same(recipe_value(text), ansible_value(text)), (recipe_value(text), ansible_value(text))


def test_the_values_ansible_content_depends_on():
    data = parse_yaml("become: yes\nmode: 0644\nanswer: y\nupdate_cache: on\nport: '8080'\n", "t.yml")
    assert data == {"become": True, "mode": 0o644, "answer": "y", "update_cache": True, "port": "8080"}


@pytest.mark.parametrize("text", ["2024-01-01", "2024-01-01 10:00:00"])
def test_dates_are_their_iso_text(text):
    assert recipe_value(text) == ansible_value(text)


def test_nan_is_a_float_as_in_ansible():
    assert math.isnan(recipe_value(".nan")) and math.isnan(ansible_value(".nan"))


def test_boolean_keys_as_in_ansible():
    text = "m: {yes: 1, off: 2, y: 3}\n"
    assert parse_yaml(text, "t.yml")["m"] == from_yaml(text)["m"] == {True: 1, False: 2, "y": 3}


def test_merge_keys_as_in_ansible():
    text = "base: &b {a: 1, b: 2}\nv:\n  <<: *b\n  b: 3\n"
    assert parse_yaml(text, "t.yml")["v"] == from_yaml(text)["v"] == {"a": 1, "b": 3}


@pytest.mark.parametrize("text", ["1e3", "1.0e3", "1e+3", "6e1"])
def test_an_exponent_without_dot_and_sign_is_a_string(text):
    assert same(recipe_value(text), ansible_value(text))


def test_unsafe_text_is_never_rendered():
    data = parse_yaml("v: !unsafe '{{ lookup(\"pipe\", \"id\") }}'\nw: '{{ x }}'\n", "t.yml")
    assert isinstance(data["v"], UnsafeText)
    scope = Scope([{"x": "rendered"}])
    assert render(data["v"], scope) == '{{ lookup("pipe", "id") }}'
    assert render(data["w"], scope) == "rendered"
    assert from_yaml('v: !unsafe "{{ x }}"\n')["v"] == data["v"].replace('lookup("pipe", "id")', "x")


def test_new_yaml_is_yaml_1_1_and_keeps_positions():
    loaded = new_yaml().load("a:\n  b: yes\n  c: 010\n")
    assert loaded["a"]["b"] is True and loaded["a"]["c"] == 8
    assert loaded["a"].lc.line == 1
    positioned = parse_yaml("a:\n  b: yes\n", "t.yml")
    assert isinstance(positioned["a"], YMap)
    assert (positioned["a"].value_pos["b"].line, positioned["a"].value_pos["b"].column) == (2, 6)


def test_a_tag_ansible_does_not_know_is_an_error_with_its_position():
    with pytest.raises(RecipeError) as caught:
        parse_yaml("a: 1\nb: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n", "t.yml")
    assert "t.yml:2:" in str(caught.value)


@pytest.mark.parametrize("start", ["", "---\n", "%YAML 1.2\n---\n"])
def test_yaml_1_1_also_after_a_document_start(start):
    """Most task files begin with `---`, where ruamel falls back to YAML 1.2; Ansible reads 1.1 regardless."""
    text = start + "mode: 0644\nflag: no\nbecome: yes\n"
    assert parse_yaml(text, "t.yml") == {"mode": 420, "flag": False, "become": True}

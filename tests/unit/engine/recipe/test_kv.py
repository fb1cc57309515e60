"""Ansible's `key=value` argument strings, compared with Ansible's own parser.

ansible.parsing.splitter.parse_kv is the oracle: every input of the tables
goes through both and the results must be the same (Ansible's `_raw_params` is
recipe's free_form). check_raw=True is how Ansible parses a free-form module's
string (command, shell), which recipe does with `only=` the options of those.
"""
from __future__ import annotations

import pytest
from ansible.parsing.splitter import parse_kv as ansible_parse_kv

from engine.recipe.kv import parse_kv, split_args, unquote

# The options Ansible takes out of a free-form command line (check_raw=True), as recipe's `only=`.
COMMAND_OPTIONS = frozenset({"creates", "removes", "chdir", "executable", "warn", "stdin", "stdin_add_newline",
                             "strip_empty_ends"})

SAME_AS_ANSIBLE = [
    'a=1 b="x y" c={{ v }}',
    "name=nginx state=present",
    "src=a dest='/tmp/with space'",
    'msg="{{ a }} and {{ b }}"',
    'x={{ a | default("p q") }} y=2',
    "echo a=b chdir=/tmp",
    "ls -l creates=/x removes=/y",
    'echo "hello world" > /tmp/f',
    "echo 'it''s'",
    'key="a=b"',
    "a=",
    "a==b",
    "echo {# c #} done",
    'path=/etc/x line="a = b" regexp=^a',
    "mode=0644 owner=root",
    'a="1" "b c"',
    "{{ k }}={{ v }}",
    "name={{ item }} state=present update_cache=yes",
    "echo {{ a ~ ' ' ~ b }} chdir={{ dir }}",
    'msg="{% if x %}yes{% else %}no{% endif %}"',
]


def ours(text: str, only: frozenset[str] | None) -> dict:
    """recipe's result in Ansible's shape: the options, and `_raw_params` for the free-form rest."""
    parsed = parse_kv(text, only)
    return {**parsed.options, **({"_raw_params": parsed.free_form} if parsed.free_form else {})}


@pytest.mark.parametrize("text", [*SAME_AS_ANSIBLE, "a=1\nb=2"])
def test_every_word_an_option_as_ansible_parses_a_module_string(text):
    assert ours(text, None) == ansible_parse_kv(text)


@pytest.mark.parametrize("text", SAME_AS_ANSIBLE)
def test_command_options_only_as_ansible_parses_a_free_form_command(text):
    assert ours(text, COMMAND_OPTIONS) == ansible_parse_kv(text, check_raw=True)


def test_the_example_of_the_brief_word_by_word():
    assert split_args('a=1 b="x y" c={{ v }}') == ["a=1", 'b="x y"', "c={{ v }}"]
    assert parse_kv('a=1 b="x y" c={{ v }}').options == {"a": "1", "b": "x y", "c": "{{ v }}"}


def test_quotes_and_jinja_keep_their_spaces_and_a_command_keeps_its_own_key_value_words():
    parsed = parse_kv('echo a=b "c d" {{ x | default("e f") }} creates=/tmp/done', only=COMMAND_OPTIONS)
    assert parsed.options == {"creates": "/tmp/done"}
    assert parsed.free_form == 'echo a=b "c d" {{ x | default("e f") }}'


def test_unquote_takes_only_a_matching_pair():
    assert [unquote(v) for v in ('"a b"', "'a'", "\"a'", '"', "a")] == ["a b", "a", "\"a'", '"', "a"]


# Differences from Ansible's parser found with the tables above. Each is a real input Ansible content uses.

def test_a_multi_line_command_with_an_option_keeps_its_lines():
    script = "creates=/y\nif true; then\n  echo a\nfi"
    assert ours(script, COMMAND_OPTIONS) == ansible_parse_kv(script, check_raw=True)
    assert parse_kv(script, COMMAND_OPTIONS).free_form == "if true; then\n  echo a\nfi"


def test_a_command_keeps_its_spacing_when_an_option_is_taken_out():
    text = "printf '%s'   x chdir=/t"
    assert ours(text, COMMAND_OPTIONS) == ansible_parse_kv(text, check_raw=True)


@pytest.mark.parametrize("text", ['line="a\\tb" path=/x', 'cmd="echo \\"q\\""', 'a="x\\ny"'])
def test_escapes_in_option_values_are_decoded(text):
    assert ours(text, None) == ansible_parse_kv(text)


def test_known_harmless_differences_from_ansible():
    """Recorded, not bugs worth a fix: Ansible splits on spaces only (a tab stays inside a word) and takes any
    key (`--opt=1`, `foo-bar=1`), which every module's schema then refuses anyway; recipe takes identifier keys
    and splits on any whitespace."""
    assert ansible_parse_kv("--opt=1 x=2") == {"--opt": "1", "x": "2"}
    assert ours("--opt=1 x=2", None) == {"x": "2", "_raw_params": "--opt=1"}
    assert ansible_parse_kv("a=1\tb=2") == {"a": "1\tb=2"}
    assert ours("a=1\tb=2", None) == {"a": "1", "b": "2"}

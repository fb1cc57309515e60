"""recipe's Jinja against Ansible's: the same expressions, the same variables, the same values.

ansible-playbook runs once for the whole table (one set_fact of every expression, then one copy of them
all as JSON), so the comparison costs one Ansible start, not one per expression. ansible-core is a test
dependency: when ansible-playbook is missing this fails, it does not skip.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.recipe.template import Scope, render

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

VARIABLES = {
    "nums": [3, 1, 2, 3], "other": [2, 3, 4], "words": ["b", "a", "B", "a"],
    "nested": [1, [2, [3, [4]]], None, "null"],
    "res_ok": {"changed": False, "failed": False}, "res_changed": {"changed": True, "failed": False},
    "res_failed": {"failed": True, "changed": False}, "res_skipped": {"skipped": True, "changed": False},
    "res_loop": {"results": [{"changed": False}, {"changed": True}]},
    "users": [{"name": "alice", "groups": ["wheel", "dev"]}, {"name": "bob", "groups": ["dev"]}],
    "d": {"a": 1, "b": 2}, "text": "Hello World 2024-01-15 ver=1.2.3", "size": 1536000,
    "who": "bob", "yaml_docs": "a: 1\n---\nb: [2, 3]\n", "two_lines": "a\nver", "a_b": "a\nb",
    # patterns as variables: how a backslash in an expression's text is read is the template layer's business
    "digits": r"\d+", "ver_groups": r"ver=(\d+)\.(\d+)", "year": r"(?P<y>\d{4})-", "word_w": r"W\w+",
    "g1": r"\1", "g2": r"\2", "gy": r"\g<y>", "bracket_1": r"<\1>", "num_group": r"(\d+)",
}

# (id, expression): every expression here must evaluate without error in both.
TABLE = [
    # tests on registered results
    ("changed", "res_changed is changed"), ("not-changed", "res_ok is changed"), ("change", "res_changed is change"),
    ("failed", "res_failed is failed"), ("succeeded", "res_failed is succeeded"), ("success", "res_ok is success"),
    ("skipped", "res_skipped is skipped"), ("skip", "res_ok is skip"), ("loop-changed", "res_loop is changed"),
    ("finished", "res_ok is finished"), ("unreachable", "res_ok is unreachable"),
    ("undefined-is-defined", "undefined_thing is defined"), ("undefined-is-undefined", "undefined_thing is undefined"),
    ("key-defined", "d.a is defined"), ("missing-key-defined", "d.zz is defined"),
    # versions
    ("version-loose", "'1.10' is version('1.9', '>')"), ("version-eq", "'1.2.3' is version('1.2.3', 'eq')"),
    ("version-lt", "'2.0' is version('10.0', 'lt')"), ("version-default-op", "'1.0' is version('1.0')"),
    ("version-semver-pre", "'1.0.0-beta.2' is version('1.0.0-beta.11', '<', version_type='semver')"),
    ("version-semver-rc", "'1.0.0-rc1' is version('1.0.0', '<', version_type='semver')"),
    ("version-strict", "'1.0a1' is version('1.0', 'lt', strict=true)"),
    ("version-pep440", "'3.10' is version('3.9', '>=', version_type='pep440')"),
    ("version-compare", "'1.2.3' is version_compare('1.2', 'gt')"),
    ("version-ne", "'1.0' is version('1.0.0', '!=')"),
    # regex tests
    ("match", "text is match('Hello')"), ("match-not-start", "text is match('World')"),
    ("search-icase", "text is search('world', ignorecase=true)"),
    ("regex-multiline", "two_lines is regex('^ver', multiline=true)"),
    ("regex-match-type", "text is regex('World', match_type='match')"),
    # collections and truth
    ("contains", "nums is contains(3)"), ("subset", "[1, 2] is subset(nums)"), ("superset", "nums is superset([1, 9])"),
    ("truthy-convert", "'yes' is truthy(convert_bool=true)"),
    ("truthy-convert-no", "'no' is truthy(convert_bool=true)"),
    ("truthy-plain", "'no' is truthy"), ("falsy", "0 is falsy"), ("any", "[true, false] is any"),
    ("all", "[true, false] is all"), ("nan", "('nan' | float) is nan"),
    # file tests on the controller
    ("directory", "tmp is directory"), ("file", "(tmp ~ '/files/motd') is file"), ("link", "(tmp ~ '/link') is link"),
    ("exists", "(tmp ~ '/nope') is exists"), ("abs", "tmp is abs"), ("mount", "'/' is mount"),
    ("same-file", "tmp is same_file(tmp ~ '/.')"),
    # set theory and lists (ints: a set's order is the same in every Python process)
    ("union", "nums | union(other)"),
    ("intersect", "nums | intersect(other)"), ("difference", "nums | difference(other)"),
    ("symmetric-difference", "nums | symmetric_difference(other)"),
    ("union-words-sorted", "words | union(['c']) | sort(case_sensitive=true)"),
    ("unique", "nums | unique"),
    ("unique-words", "words | unique"), ("unique-case", "words | unique(case_sensitive=true)"),
    ("flatten", "nested | flatten"), ("flatten-1", "nested | flatten(levels=1)"),
    ("flatten-nulls", "nested | flatten(skip_nulls=false)"),
    ("ternary", "true | ternary('y', 'n')"), ("ternary-none", "none | ternary('y', 'n', 'nil')"),
    ("ternary-none-2", "none | ternary('y', 'n')"), ("mandatory", "d | mandatory"),
    ("product", "[1, 2] | product(['a', 'b']) | list"), ("permutations", "[1, 2, 3] | permutations(2) | list"),
    ("combinations", "[1, 2, 3] | combinations(2) | list"), ("zip", "[1, 2, 3] | zip(['a', 'b']) | list"),
    ("zip-longest", "[1, 2, 3] | zip_longest(['a'], fillvalue='-') | list"),
    ("dict2items", "d | dict2items"), ("items2dict", "[{'key': 'k', 'value': 'v'}] | items2dict"),
    ("dict2items-names", "d | dict2items(key_name='n', value_name='v')"),
    ("subelements", "users | subelements('groups')"), ("extract", "['a', 'b'] | map('extract', d) | list"),
    ("map-attribute", "users | map(attribute='name') | list"), ("map-no-list", "users | map(attribute='name')"),
    ("selectattr", "users | selectattr('name', 'equalto', 'bob') | map(attribute='name') | list"),
    ("min", "nums | min"), ("max-attribute", "users | max(attribute='name')"), ("sum", "nums | sum"),
    ("first-last", "[nums | first, nums | last]"),
    ("combine", "{'a': 1} | combine({'b': 2}, {'a': 3})"), ("combine-list", "[{'a': 1}, {'a': 2, 'c': 3}] | combine"),
    ("combine-recursive", "{'a': {'x': 1} } | combine({'a': {'y': 2} }, recursive=true)"),
    ("combine-list-merge", "{'l': [1, 2]} | combine({'l': [2, 3]}, list_merge='append_rp')"),
    ("random-seeded", "60 | random(seed='s')"), ("random-list-seeded", "nums | random(seed=42)"),
    ("random-start-step", "100 | random(start=10, step=5, seed='x')"), ("shuffle-seeded", "nums | shuffle(seed='x')"),
    ("type-debug", "[d | type_debug, 'x' | type_debug, nums | type_debug, 1 | type_debug, none | type_debug]"),
    # text
    ("regex-findall", "text | regex_findall(digits)"), ("regex-escape", "'a.b*c' | regex_escape"),
    ("regex-escape-posix", "'a.b*c' | regex_escape('posix_basic')"),
    ("regex-search-groups", "text | regex_search(ver_groups, g1, g2)"),
    ("regex-search-named", "text | regex_search(year, gy)"),
    ("regex-search-none", "text | regex_search('nomatch')"), ("regex-search-plain", "text | regex_search(word_w)"),
    ("regex-replace", "text | regex_replace(num_group, bracket_1, count=2)"),
    ("to-uuid", "'hello' | to_uuid"), ("to-uuid-ns", "'x' | to_uuid(namespace='6ba7b810-9dad-11d1-80b4-00c04fd430c8')"),
    ("bool", "['yes' | bool, 'off' | bool, 'TRUE' | bool, 1 | bool, 0 | bool, true | bool]"),
    ("int-float", "['42' | int, '3.5' | float, '0x1F' | int(base=16), 'x' | int, '7.9' | int]"),
    ("hashes", "['hello' | checksum, 'hello' | md5, 'hello' | sha1, 'hello' | hash('sha256'), 'hello' | hash('md5')]"),
    ("comment", "a_b | comment"), ("comment-c", "'x' | comment('c')"), ("comment-cblock", "'x' | comment('cblock')"),
    ("comment-xml", "'x' | comment('xml')"), ("comment-decoration", "'x' | comment(decoration='; ', prefix_count=2)"),
    ("human-readable", "[size | human_readable, 1048576 | human_readable(unit='K'), 10 | human_readable(isbits=true)]"),
    ("human-to-bytes", "['1.5 MB' | human_to_bytes, '10Mb' | human_to_bytes(isbits=true), '2K' | human_to_bytes, "
                       "'10' | human_to_bytes(default_unit='M'), '1 kilobyte' | human_to_bytes]"),
    ("from-yaml-all", "yaml_docs | from_yaml_all | list"),
    ("to-datetime", "[('2024-01-15 10:00:00' | to_datetime).year, "
                    "(('2024-01-16' | to_datetime('%Y-%m-%d')) - ('2024-01-15' | to_datetime('%Y-%m-%d'))).days]"),
    ("strftime", "'%Y-%m-%d %H:%M' | strftime(86400, utc=true)"),
    ("split", "['a b  c' | split, 'a,b' | split(','), 'a,b,c' | split(',', 1)]"),
    ("paths", "['/a/b.tar.gz' | basename, '/a/b' | dirname, 'a/b.tar.gz' | splitext, ['/a', 'b', 'c.txt'] | path_join, "
              "'/etc/ssh/sshd_config' | relpath('/etc'), '/a/./b/../c' | normpath]"),
    ("expanduser", "'~/x' | expanduser"), ("expandvars", "'$RECIPE_DIFF_VAR/x' | expandvars"),
    ("realpath", "(tmp ~ '/link') | realpath"), ("fileglob-filter", "(tmp ~ '/files/*.txt') | fileglob | sort"),
    ("quote", "['it' | quote, \"it's\" | quote, none | quote]"),
    ("b64", "['héllo' | b64encode, 'aMOpbGxv' | b64decode, '??>' | b64encode(urlsafe=true)]"),
    # lookups
    ("lookup-file", "lookup('file', 'motd')"), ("lookup-file-no-rstrip", "lookup('file', 'motd', rstrip=false)"),
    ("lookup-file-two", "lookup('file', 'motd', 'a.txt')"),
    ("lookup-file-wantlist", "lookup('file', 'motd', wantlist=true)"),
    ("lookup-template", "lookup('template', 't.j2')"),
    ("lookup-template-vars", "lookup('template', 't.j2', template_vars={'who': 'eve'})"),
    ("lookup-env", "lookup('env', 'RECIPE_DIFF_VAR')"),
    ("lookup-env-default", "lookup('env', 'RECIPE_DIFF_NOPE', default='dflt')"),
    ("lookup-env-unset", "lookup('env', 'RECIPE_DIFF_NOPE')"),
    ("lookup-pipe", "lookup('pipe', 'echo hi; basename \"$PWD\"')"), ("lookup-vars", "lookup('vars', 'text')"),
    ("lookup-vars-default", "lookup('vars', 'nope_var', default='dv')"),
    ("first-found", "lookup('first_found', ['nope', 'files/motd'])"),
    ("first-found-paths", "lookup('first_found', {'files': ['nope', 'a.txt'], 'paths': [tmp ~ '/files']})"),
    ("first-found-skip", "query('first_found', ['nope'], skip=true)"),
    ("fileglob", "query('fileglob', '*.txt') | sort"),
    ("fileglob-lookup", "lookup('fileglob', 'files/*.txt') | split(',') | sort"),
    ("items", "query('items', [1, [2, [3]]])"), ("items-lookup-str", "lookup('items', ['a', 'b'])"),
    ("items-lookup-int", "lookup('items', [1, 2])"), ("list", "query('list', [1, [2]])"), ("dict", "query('dict', d)"),
    ("indexed-items", "query('indexed_items', ['a', 'b'])"), ("together", "query('together', [1, 2], ['a'])"),
    ("nested", "query('nested', [1, 2], ['a', 'b'])"), ("subelements-lookup", "query('subelements', users, 'groups')"),
    ("sequence-kv", "query('sequence', 'start=1 end=5 stride=2')"),
    ("sequence-count", "query('sequence', 'count=3 format=host%02d')"),
    ("sequence-short", "query('sequence', '4-6')"), ("sequence-lookup", "lookup('sequence', '1-3')"),
    ("sequence-down", "query('sequence', 'start=5 end=1 stride=-2')"),
    ("sequence-octal-text", "query('sequence', '0600-0602')"),
    ("lookup-errors-ignore", "lookup('file', 'nope', errors='ignore')"),
    ("query-errors-ignore", "query('file', 'nope', errors='ignore')"),
]


def _files(root: Path) -> None:
    (root / "files").mkdir()
    (root / "templates").mkdir()
    (root / "files" / "motd").write_text("  hello there  \n\n")
    (root / "files" / "a.txt").write_text("A\n")
    (root / "files" / "b.txt").write_text("B\n")
    (root / "templates" / "t.j2").write_text("Hi {{ who }}\n{% if who == 'bob' %}\nbob!\n{% endif %}\nend\n")
    (root / "link").symlink_to(root / "files")


def _ansible_values(root: Path) -> dict:
    assert ANSIBLE_PLAYBOOK.exists(), \
        f"{ANSIBLE_PLAYBOOK} is missing: ansible-core is a test dependency (pip install -e .[test])"
    facts = {f"r{n}": "{{ " + expression + " }}" for n, (_, expression) in enumerate(TABLE)}
    collect = "{{ {" + ", ".join(f"'r{n}': r{n}" for n in range(len(TABLE))) + "} | to_json }}"
    play = [{"hosts": "localhost", "gather_facts": False, "vars": {**VARIABLES, "tmp": str(root)},
             "tasks": [{"set_fact": facts}, {"copy": {"content": collect, "dest": str(root / "out.json")}}]}]
    (root / "play.yml").write_text(json.dumps(play))
    env = {**os.environ, "ANSIBLE_HOME": str(root / ".ansible"), "ANSIBLE_LOCAL_TEMP": str(root / ".tmp"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_DEPRECATION_WARNINGS": "0"}
    done = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "play.yml",
                           "-e", f"ansible_python_interpreter={sys.executable}"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ansible-playbook failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return json.loads((root / "out.json").read_text())


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("jinja_vs_ansible")
    _files(root)
    os.environ["RECIPE_DIFF_VAR"] = "from-env"     # for both: ansible-playbook inherits it
    ansible = _ansible_values(root)
    return root, ansible


@pytest.mark.parametrize("expression", [expression for _, expression in TABLE], ids=[name for name, _ in TABLE])
def test_recipe_evaluates_like_ansible(both, expression):
    root, ansible = both
    scope = Scope([{**VARIABLES, "tmp": str(root), "playbook_dir": str(root)}])
    ours = json.loads(json.dumps(render("{{ " + expression + " }}", scope), default=str))
    assert ours == ansible[f"r{[e for _, e in TABLE].index(expression)}"]

import datetime

import pytest
import voluptuous as vol

from engine.registry import TASK_MODULES
from modules.tasks._yaml11 import load_vars_text

# Types as Ansible (PyYAML, YAML 1.1) reads them, verified with ansible-playbook (ansible-core 2.19.14):
# include_vars of this file, then `debug: msg="{{ [a, ...] | map('type_debug') }}"`.
YAML_11 = """\
a: yes
b: 0644
c: on
d: 2020-01-01
e: "{{ 1 + 1 }}"
f: 1e3
g: 0x1f
h: 1_000
i: 0o17
j: ~
k: !unsafe "{{ x }}"
l: 010
m: 1:30
n: y
"""
AS_ANSIBLE_READS_IT = {"a": True, "b": 420, "c": True, "d": datetime.date(2020, 1, 1), "e": "{{ 1 + 1 }}",
                       "f": "1e3", "g": 31, "h": 1000, "i": "0o17", "j": None, "k": "{{ x }}", "l": 8, "m": 90,
                       "n": "y"}


def test_file_as_ansible_reads_it(h):
    path = h.file("vars", "v.yml", YAML_11)
    result = h.run("include_vars", {"file": "v.yml"})
    assert result.status == "ok" and not result.changed
    assert result.new_vars == AS_ANSIBLE_READS_IT
    assert {key: type(value) for key, value in result.new_vars.items()} == {
        key: type(value) for key, value in AS_ANSIBLE_READS_IT.items()}
    assert result.data == {"ansible_facts": AS_ANSIBLE_READS_IT, "ansible_included_var_files": [str(path)]}


def test_free_form_json_and_name(h):
    h.file("vars", "Debian.json", '{"packages": ["nginx"], "port": 80}')
    assert h.run("include_vars", "Debian.json").new_vars == {"packages": ["nginx"], "port": 80}
    named = h.run("include_vars", "file=Debian.json name=web")
    assert named.new_vars == {"web": {"packages": ["nginx"], "port": 80}}
    assert h.run("include_vars", "Debian.json name=web").new_vars == named.new_vars


def test_empty_file_is_no_variables(h):
    h.file("vars", "empty.yml", "# nothing yet\n")
    result = h.run("include_vars", {"file": "empty.yml"})
    assert result.status == "ok" and result.new_vars == {}


def test_dir_sorted_with_depth_and_filters(h):
    h.file("vars", "vd/a.yml", "x: 1\n")
    h.file("vars", "vd/sub/b.yaml", "x: 2\ny: 1\n")
    h.file("vars", "vd/c.txt", "z: 3\n")
    h.file("vars", "vd/skip.yml", "x: 9\n")
    root = h.root / "vars" / "vd"
    every = h.run("include_vars", {"dir": "vd", "name": "all", "ignore_unknown_extensions": True,
                                   "ignore_files": "skip.yml"})
    assert every.new_vars == {"all": {"x": 2, "y": 1}}
    assert every.data["ansible_included_var_files"] == [str(root / "a.yml"), str(root / "sub" / "b.yaml")]
    top = h.run("include_vars", {"dir": str(root), "depth": 1, "extensions": ["yml", "txt"],
                                 "ignore_files": ["skip\\.yml"]})
    assert top.new_vars == {"x": 1, "z": 3}
    matching = h.run("include_vars", {"dir": "vd", "files_matching": "^b", "ignore_unknown_extensions": True})
    assert matching.new_vars == {"x": 2, "y": 1}


def test_dir_with_an_unknown_extension_fails(h):
    h.file("vars", "vd/a.yml", "x: 1\n")
    h.file("vars", "vd/c.txt", "z: 3\n")
    result = h.run("include_vars", {"dir": "vd", "name": "all"})
    assert result.status == "failed" and result.msg.endswith("c.txt does not have a valid extension: yaml, yml, json")
    assert result.data["ansible_facts"] == {"all": {"x": 1}} and not result.new_vars


def test_hash_behaviour_merge(h):
    h.set_vars(web={"port": 80, "tls": {"on": True}})
    h.file("vars", "v.yml", "web: {tls: {cert: a.pem}}\n")
    merged = h.run("include_vars", {"file": "v.yml", "hash_behaviour": "merge"})
    assert merged.new_vars == {"web": {"port": 80, "tls": {"on": True, "cert": "a.pem"}}}
    assert h.run("include_vars", {"file": "v.yml"}).new_vars == {"web": {"tls": {"cert": "a.pem"}}}


def test_check_mode_reads_too(h):
    h.file("vars", "v.yml", "x: 1\n")
    assert h.run("include_vars", {"file": "v.yml"}, check=True).new_vars == {"x": 1}


@pytest.mark.parametrize("name, content, message", [
    ("missing.yml", None, "Could not find or access 'missing.yml'"),
    ("list.yml", "[1, 2]\n", "list.yml must be stored as a dictionary/hash"),
    ("bad.yml", "a: [\n", "YAML parsing failed at "),
    ("vault.yml", "a: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n", "ansible-vault"),
])
def test_failures(h, name, content, message):
    if content is not None:
        h.file("vars", name, content)
    result = h.run("include_vars", {"file": name})
    assert result.status == "failed" and message in result.msg and result.data["message"] == result.msg
    assert result.new_vars == {} and result.data["ansible_included_var_files"] == []


def test_missing_dir_fails(h):
    result = h.run("include_vars", {"dir": "nowhere"})
    assert result.status == "failed" and result.msg == "nowhere directory does not exist"


def test_bad_arguments(h):
    with pytest.raises(vol.Invalid, match="incompatible"):
        h.params("include_vars", {"file": "a.yml", "dir": "d"})
    with pytest.raises(vol.Invalid, match="incompatible"):
        h.params("include_vars", {"file": "a.yml", "depth": 1})
    with pytest.raises(vol.Invalid, match="give file"):
        h.params("include_vars", {"name": "x"})
    with pytest.raises(vol.Invalid, match="not a valid variable name"):
        h.params("include_vars", {"file": "a.yml", "name": "a-b"})


def test_validate_checks_the_file_exists():
    assert TASK_MODULES.get("include_vars").local_files == {"file": "vars"}


# Verified with ansible-playbook (ansible-core 2.19.14): a folder vd/ with a.yml {x: 1}, sub/b.yaml {x: 2, y: 1}
# and c.txt {z: 3}: include_vars {dir: vd, name: all, ignore_unknown_extensions: true} registers
# ansible_facts {"all": {"x": 2, "y": 1}} and ansible_included_var_files [vd/a.yml, vd/sub/b.yaml];
# {dir: vd, name: all2, depth: 1, extensions: [yml, txt]} registers {"all2": {"x": 1, "z": 3}}, [a.yml, c.txt].
def test_same_as_ansible(h):
    h.file("vars", "vd/a.yml", "x: 1\n")
    h.file("vars", "vd/sub/b.yaml", "x: 2\ny: 1\n")
    h.file("vars", "vd/c.txt", "z: 3\n")
    root = h.root / "vars" / "vd"
    first = h.run("include_vars", {"dir": "vd", "name": "all", "ignore_unknown_extensions": True}).as_register()
    assert first["ansible_facts"] == {"all": {"x": 2, "y": 1}} and first["changed"] is False
    assert first["ansible_included_var_files"] == [str(root / "a.yml"), str(root / "sub/b.yaml")]
    second = h.run("include_vars", {"dir": "vd", "name": "all2", "depth": 1, "extensions": ["yml", "txt"]})
    assert second.as_register()["ansible_facts"] == {"all2": {"x": 1, "z": 3}}
    assert second.data["ansible_included_var_files"] == [str(root / "a.yml"), str(root / "c.txt")]


def test_a_vars_file_starting_with_a_document_start_is_still_yaml_1_1():
    assert load_vars_text("---\nm: 0644\nb: yes\n", "x.yml") == {"m": 420, "b": True}

"""A table of broken recipes: each must exit 2 and name the exact line and column, without a traceback."""
from __future__ import annotations

import textwrap

import pytest

from engine.cli.main import main

HEAD = """\
name: web
sources:
  box:
    platform: ssh
    ssh: {host: 127.0.0.1}
"""

# (id, recipe text, extra files, expected "line:col", expected words in the message)
CASES = [
    ("yaml-indentation", "name: web\n  sources: {}\n", {}, "2:10", "YAML syntax error"),
    ("yaml-tab", "name: web\nsources:\n\tbox: {}\n", {}, "3:1", "tab"),
    ("yaml-unclosed-flow", "name: web\ntasks: [a, b\n", {}, "3:1", "YAML syntax error"),
    ("duplicate-key", HEAD + "tasks: []\ntasks: []\n", {}, "7:1", "duplicate key"),
    ("not-a-mapping", "- just\n- a list\n", {}, "1:1", "must be a mapping"),
    ("empty-file", "", {}, "", "must be a mapping"),
    ("bad-name", HEAD.replace("name: web", "name: Web_Server"), {}, "1:7", "not a valid recipe name"),
    ("missing-sources", "name: web\n", {}, "1:1", "required key 'sources'"),
    ("misspelled-top-level-key", HEAD + "taks: []\n", {}, "6:1", "did you mean 'tasks'"),
    ("unknown-platform", HEAD.replace("platform: ssh", "platform: qemuu"), {}, "4:15", "unknown platform"),
    ("source-without-platform", "name: web\nsources:\n  box: {ssh: {host: h}}\n", {}, "3:8", "'platform' is missing"),
    ("ssh-port-out-of-range", HEAD.replace("host: 127.0.0.1", "host: h, port: 70000"), {}, "5:26", "at most 65535"),
    ("unknown-ssh-option", HEAD.replace("host: 127.0.0.1", "host: h, usr: me"), {}, "5:20", "did you mean 'user'"),
    ("unknown-module", HEAD + "tasks:\n  - cpoy: {content: x, dest: /tmp/x}\n", {}, "7:5", "did you mean 'copy'"),
    ("misspelled-option", HEAD + "tasks:\n  - copy: {content: x, dest: /tmp/x, moed: '0644'}\n", {}, "7:38",
     "did you mean 'mode'"),
    ("out-of-range-mode", HEAD + "tasks:\n  - copy: {content: x, dest: /tmp/x, mode: 99999}\n", {}, "7:44",
     "out of range"),
    ("wrong-type", HEAD + "tasks:\n  - shell: 'true'\n    retries: three\n", {}, "8:14", "expected an integer"),
    ("two-modules", HEAD + "tasks:\n  - shell: 'true'\n    command: 'true'\n", {}, "8:5", "one module"),
    ("no-module", HEAD + "tasks:\n  - name: nothing to do\n", {}, "7:5", "no module"),
    ("undefined-variable", HEAD + "tasks:\n  - shell: echo {{ greting }}\n", {}, "7:12",
     "undefined variable 'greting'"),
    ("undefined-in-source", HEAD.replace("host: 127.0.0.1", "host: '{{ target }}'"), {}, "5:17",
     "undefined variable 'target'"),
    ("template-syntax", HEAD + "tasks:\n  - shell: 'echo {{ x + }}'\n", {}, "7:12", "syntax"),
    ("when-syntax", HEAD + "tasks:\n  - shell: 'true'\n    when: x ==\n", {}, "8:11", "syntax"),
    ("reserved-var", HEAD + "vars:\n  build: 1\n", {}, "7:3", "reserved"),
    ("missing-role", HEAD + "roles:\n  - nginxx\n", {}, "7:5", "role 'nginxx' not found"),
    ("role-missing-argument", HEAD + "roles:\n  - role: needs\n", {"roles/needs/meta/argument_specs.yml":
     "argument_specs:\n  main:\n    options:\n      port: {type: int, required: true}\n"}, "7:5",
     "requires the argument 'port'"),
    ("role-argument-type", HEAD + "roles:\n  - role: needs\n    vars: {port: eighty}\n",
     {"roles/needs/meta/argument_specs.yml": "argument_specs:\n  main:\n    options:\n      port: {type: int}\n"},
     "8:18", "must be of type int"),
    ("missing-template", HEAD + "tasks:\n  - template: {src: nope.j2, dest: /tmp/x}\n", {}, "7:21",
     "template 'nope.j2' not found"),
    ("missing-include", HEAD + "tasks:\n  - import_tasks: nowhere.yml\n", {}, "7:19", "not found"),
    ("include-loop", HEAD + "tasks:\n  - include_tasks: a.yml\n", {"a.yml": "- include_tasks: a.yml\n"}, "1:18",
     "include loop"),
    ("unknown-handler", HEAD + "tasks:\n  - shell: 'true'\n    notify: restart ngnix\n"
     "handlers:\n  - name: restart nginx\n    shell: 'true'\n", {}, "8:13", "did you mean 'restart nginx'"),
    ("unknown-only-source", HEAD + "tasks:\n  - shell: 'true'\n    only: [bx]\n", {}, "8:11", "no source named 'bx'"),
    ("loop-not-a-list", HEAD + "tasks:\n  - shell: 'true'\n    loop: 3\n", {}, "8:11", "loop takes a list"),
    ("rescue-without-block", HEAD + "tasks:\n  - shell: 'true'\n    rescue: []\n", {}, "8:5", "rescue goes with block"),
    ("error-in-role-task", HEAD + "roles: [broken]\n", {"roles/broken/tasks/main.yml": "- shell: 'true'\n  whn: x\n"},
     "2:3", "did you mean 'when'"),
    ("unknown-export", HEAD + "exports:\n  - ovaa: {}\n", {}, "7:5", "did you mean 'ova'"),
    ("keep-input-on-a-first-export", HEAD + "exports:\n  - qcow2: {keep_input: false}\n", {}, "7:13",
     "unknown option"),
    ("vagrant-provider", HEAD + "exports:\n  - vagrant: {provider: [libvirt, virtualbx]}\n", {}, "7:35",
     "virtualbox"),
    ("ova-controller", HEAD + "exports:\n  - ova: {controller: ide}\n", {}, "7:23", "scsi"),
    ("ami-without-name", HEAD + "exports:\n  - ami: {region: eu-west-1}\n", {}, "7:10", "required key 'name'"),
    ("ami-bad-region", HEAD + "exports:\n  - ami: {name: web, region: Ireland}\n", {}, "7:30", "a region like"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_recipe_exits_2_at_the_exact_position(case, tmp_path, capsys):
    _id, text, extra, where, words = case
    for name, content in extra.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    recipe = tmp_path / "web.yml"
    recipe.write_text(text)
    code = main(["validate", str(recipe)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    first = err.splitlines()[1].strip()
    located = f":{where}: " if where else ": "
    assert located in first, first
    assert words in err, err


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    recipe = tmp_path / "web.yml"
    recipe.write_text(HEAD + "taks: []\ntasks:\n  - cpoy: {}\n  - shell: echo {{ nope }}\n    retries: x\n")
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "4 problems" in err
    for expected in (":6:1:", ":8:5:", ":9:12:", ":10:14:"):
        assert expected in err, err


def test_at_least_25_cases():
    assert len(CASES) >= 25


def test_missing_recipe_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err

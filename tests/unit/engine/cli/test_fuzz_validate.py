"""`recipe validate` on bad input: whatever the file holds, the answer is 0 or 2, never a traceback.

Three kinds of input, each from hypothesis with a fixed seed (derandomize) so a run is repeatable:
  - bytes and YAML-ish text: invalid UTF-8, tabs, deep nesting, anchors and aliases, duplicate and
    non-string keys, very long lines;
  - recipe-shaped documents: names, sources with random platforms and options, tasks with random
    modules, arguments and keywords, exports, vars, and Jinja both well-formed and broken;
  - mutations of the valid example recipes: keys deleted, types swapped, Jinja inserted,
    indentation changed, text truncated.
Every input that once crashed `validate` is kept as an @example, with the bug it found.

`validate` is offline and has no side effects: a network connection or a subprocess fails the test,
and the directory the recipe lives in must look the same afterwards.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import os
import re
import shutil
import socket
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.cli.main import main
from engine.errors import RecipeError
from engine.recipe.recipe_schema import KEYWORDS
from engine.recipe.yamlpos import parse_yaml
from engine.registry import EXPORTS, PLATFORMS, TASK_MODULES, load_plugins

REPO = Path(__file__).resolve().parents[4]
EXAMPLES = int(os.environ.get("RECIPE_FUZZ_EXAMPLES", "60"))   # more for a deeper search, e.g. 2000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

load_plugins()
PLATFORM_NAMES = sorted(PLATFORMS.names())
EXPORT_NAMES = sorted(EXPORTS.names())
MODULE_NAMES = sorted(TASK_MODULES.names())


def _keys(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        return [str(getattr(k, "schema", k)) for k in schema]
    return list(getattr(schema, "keys", []))


PLATFORM_OPTIONS = {name: _keys(PLATFORMS.get(name).schema) + ["ssh"] for name in PLATFORM_NAMES}
EXPORT_OPTIONS = {name: _keys(EXPORTS.get(name).schema) + ["keep_input"] for name in EXPORT_NAMES}
MODULE_OPTIONS = {name: _keys(TASK_MODULES.get(name).static_schema()) for name in MODULE_NAMES}
SSH_OPTIONS = ["user", "host", "port", "password", "private_key_file", "host_key", "known_hosts",
               "connect_timeout"]
TOP_LEVEL = ["name", "description", "vars", "secrets", "become", "sources", "roles", "tasks", "handlers",
             "verify", "exports"]


# -- the sandbox every example runs in ------------------------------------------------------

class Offline(AssertionError):
    pass


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory with what the valid recipes reference: templates, a local role, a base image file."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(REPO / "playbooks/examples/templates", root / "templates")
    (root / "files").mkdir()
    (root / "files/hello.txt").write_text("hello\n")
    (root / "base.qcow2").write_bytes(b"QFI\xfb" + b"\0" * 60)
    role = root / "roles/local"
    for relative, text in {
        "tasks/main.yml": "- name: local role task\n  copy: {content: '{{ local_msg }}', dest: /tmp/x}\n",
        "defaults/main.yml": "local_msg: hi\n",
        "meta/argument_specs.yml": "argument_specs:\n  main:\n    options:\n"
                                   "      local_msg: {type: str, choices: [hi, ho]}\n",
    }.items():
        (role / relative).parent.mkdir(parents=True, exist_ok=True)
        (role / relative).write_text(text)
    (root / "common.yml").write_text("- shell: echo common\n")
    return root


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No network, no processes: validate must not download a base image nor run anything."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise Offline(f"validate tried to reach out: {args[:2]!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket, "create_connection", refuse)
        patch.setattr(subprocess.Popen, "__init__", refuse)
        patch.setattr(asyncio, "create_subprocess_exec", refuse)
        patch.setattr(asyncio, "create_subprocess_shell", refuse)
        yield


LOCATED = re.compile(r"  (/[^:]+):\d+:\d+: \S")
UNLOCATED = re.compile(r"  (/[^:]+: (a recipe must be a mapping|cannot read|recipe file not found)|--var)")


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.name != "recipe.yml"}


def validate(root: Path, content: bytes | str, *extra: str) -> tuple[int, str]:
    """Run `recipe validate` in process on content; the exit code and everything it printed."""
    recipe = root / "recipe.yml"
    recipe.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    before = _snapshot(root)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["validate", str(recipe), *extra])
    text = out.getvalue() + err.getvalue()
    assert not caught, [str(w.message) for w in caught]   # a warning prints a Python source line on stderr
    assert code in (0, 2), text
    assert "Traceback" not in text and "internal error" not in text, text
    if code == 2:   # one line per problem, each saying where: file:line:column, or the file when it has none
        assert text.startswith("error: the recipe is invalid"), text
        for line in text.splitlines()[1:]:
            assert LOCATED.match(line) or UNLOCATED.match(line), line
    assert _snapshot(root) == before, "validate changed files"
    return code, text


# -- (a) bytes and YAML-ish text ----------------------------------------------------------------

HEAD = "name: web\nsources:\n  box:\n    platform: ssh\n    ssh: {host: h}\n"
TOKENS = ["name: web\n", "sources:\n", "  box:\n", "    platform: ssh\n", "tasks:\n", "  - ", "shell: x\n",
          "vars:\n", "  a: 1\n", "\t", "  ", "    ", "- ", "{", "}", "[", "]", ": ", ", ", "&a ", "*a", "*b",
          "<<: *a\n", "? ", "!!binary ", "!foo ", "!!set ", "!!omap ", "!!python/object:os.system ", "{{ x }}",
          "{{", "}}", "{%", "%}", '"', "'", "# c\n", "---\n", "...\n", "%YAML 1.2\n", "\n", "|\n", ">-\n",
          "\\", "\x00", "\x85", "\u2028", "\ufeff", "é", "1: x\n", "null: x\n", "true: x\n", "~", ".nan",
          "0x1F", "1e9999", "2024-01-01", "=", "@", "`", "%"]


def _deep(depth: int, kind: str) -> str:
    if kind == "flow-list":
        return "[" * depth + "]" * depth
    if kind == "flow-map":
        return "{a: " * depth + "1" + "}" * depth
    if kind == "block":
        return "".join("  " * i + "a:\n" for i in range(depth)) + "  " * depth + "b: 1\n"
    return "'{{ " + "(" * depth + "1" + ")" * depth + " }}'"


def _laughs(levels: int, width: int) -> str:
    lines = [HEAD, "vars:\n", "  l0: &l0 [" + ", ".join(["lol"] * width) + "]\n"]
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]\n")
    lines.append(f"tasks:\n  - debug: {{msg: '{{{{ l{levels - 1} }}}}'}}\n    loop: *l{levels - 1}\n")
    return "".join(lines)


yamlish = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
nesting = st.one_of(
    st.builds(lambda depth, kind: HEAD + "vars:\n  a: " + _deep(depth, kind) + "\n",
              st.sampled_from([2, 30, 63, 64, 65, 150, 400]), st.sampled_from(["flow-list", "flow-map"])),
    st.builds(lambda depth: HEAD + "vars:\n" + _deep(depth, "block"), st.sampled_from([2, 63, 64, 65, 150, 400])))
deep_jinja = st.builds(lambda depth: HEAD + "tasks:\n  - shell: " + _deep(depth, "jinja") + "\n",
                       st.sampled_from([10, 200, 1500]))
laughs = st.builds(_laughs, st.integers(2, 9), st.integers(2, 12))
long_lines = st.builds(lambda n, c: HEAD + "description: " + c * n + "\nvars: {" + f"x: {c * n}}}\n",
                       st.sampled_from([1, 10_000, 200_000]), st.sampled_from(["x", "é", " ", "'", "\\"]))
duplicates = st.builds(lambda key, level: HEAD + ("tasks: []\n" if level == 0 else "vars:\n") +
                       (f"{key}: 1\n{key}: 2\n" if level == 0 else f"  {key}: 1\n  {key}: 2\n"),
                       st.sampled_from(["tasks", "name", "a", "1", "null", "'x'"]), st.integers(0, 1))
odd_keys = st.builds(lambda key, where: {
    "top": HEAD + f"{key}: x\n", "vars": HEAD + f"vars:\n  {key}: x\n",
    "sources": f"name: web\nsources:\n  {key}: {{platform: ssh, ssh: {{host: h}}}}\n",
    "task": HEAD + f"tasks:\n  - shell: x\n    {key}: x\n", "args": HEAD + f"tasks:\n  - copy: {{{key}: x}}\n",
    "export": HEAD + f"exports:\n  - {key}: {{}}\n", "role": HEAD + f"roles:\n  - role: local\n    vars: {{{key}: x}}\n",
}[where], st.sampled_from(["1", "null", "true", "1.5", "[a, b]", "{a: 1}", "? [a]\n", "'<<'", "2024-01-01",
                           "!!binary aGk=", "~", "''"]),
    st.sampled_from(["top", "vars", "sources", "task", "args", "export", "role"]))


@FUZZ
@given(st.binary(max_size=400))
@example(b"name: \xff\xfe\n")                                       # invalid UTF-8
@example(b"\xef\xbb\xbf" + HEAD.encode())                           # a UTF-8 BOM
@example(b"name: a\x00b\n")                                         # NUL
def test_random_bytes(workdir, data):
    validate(workdir, data)


@FUZZ
@given(st.one_of(st.text(max_size=300), yamlish, st.builds(lambda a, b: HEAD + a + b, yamlish, yamlish)))
@example(HEAD + "secrets: 5\n")                      # bug: TypeError, a non-list `secrets` was iterated
@example(HEAD + "secrets: {a: 1}\n")
@example(HEAD + "vars:\n  base: &b {x: 1}\n  m:\n    <<: *b\n    y: 2\n")   # bug: KeyError 'x' (merge key)
@example(HEAD + "vars:\n  a: &a [1, *a]\n")
@example(HEAD + "vars:\n  a: &a\n    b: *a\n")                # a recursive alias
@example(HEAD + "vars:\n  a: &x 1\n  b: &x 2\n  c: *x\n")        # ruamel's multi-line warning on stderr
@example(HEAD + "vars: {a: !foo bar, b: !!binary aGk=, c: !!set {x, y}}\n")   # unknown tags reached the model
@example(HEAD + "vars: {a: !!python/object:os.system x}\n")
@example(HEAD + "tasks:\n  - import_tasks: " + "a" * 5000 + "\n")       # bug: OSError, file name too long
@example(HEAD + "tasks:\n  - import_tasks: \"a\\0b\"\n")                # bug: ValueError, embedded NUL byte
@example(HEAD + "tasks:\n  - template: {src: " + "a" * 5000 + ", dest: /x}\n")   # bug: OSError in is_file()
@example(HEAD + "roles: [" + "a" * 5000 + "]\n")                        # bug: OSError in is_dir()
@example(HEAD + "exports:\n  - manifest: '{{ greting }}'\n")          # an error without a line:column
@example("name: web\nsources:\n  1: {platform: ssh, ssh: {host: h}}\n  b: {platform: ssh, ssh: {host: h}}\n"
         "tasks:\n  - shell: x\n    only: [c]\n")                       # bug: TypeError, sorting 1 and 'b'
@example(HEAD.replace("host: h", "host: \"{{ 'a' * 10**10 }}\""))     # 10 GB string: refused, not made
@example("? - :")                                              # bug: TypeError in ruamel, a mapping as a key
@example(HEAD + "vars: {a: !!int x, b: !!set 1}\n")           # bug: ValueError/AttributeError in ruamel
@example("!!set")
@example("0:\n0: 0\n\x850")                                     # a line break in a message split its line
@example("0\u20280:")
@example("name: web\nsources:\n  box:\n    platform: [ssh]\n")   # bug: TypeError, unhashable platform
@example("name: web\nsources:\n  box:\n    platform: {a: 1}\n    ssh: {host: h}\n")
def test_random_text(workdir, text):
    validate(workdir, text)


@FUZZ
@given(st.one_of(nesting, deep_jinja, laughs, long_lines, duplicates, odd_keys))
@example(HEAD + "vars:\n  a: " + "[" * 5000 + "]" * 5000 + "\n")   # bug: RecursionError in the YAML parser
@example(HEAD + "vars:\n  a: " + "[" * 300 + "]" * 300 + "\n")     # bug: RecursionError past the parser
@example(HEAD + "tasks:\n  - shell: \"{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}\"\n")  # bug: RecursionError, Jinja
@example(_laughs(9, 12))                                           # bug: 12**9 nodes expanded, hung
def test_hostile_yaml(workdir, text):
    validate(workdir, text)


def test_what_the_hostile_yaml_found_reads_as_it_should():
    """Found on the way: anchored booleans, merge keys and !!str are data, with positions."""
    doc = parse_yaml("a: &t true\nb: *t\nbase: &b {x: 1}\nm:\n  <<: *b\n  y: 2\ns: !!str 1\n", "f.yml")
    assert doc == {"a": True, "b": True, "base": {"x": 1}, "m": {"y": 2, "x": 1}, "s": "1"}
    assert type(doc["b"]) is bool                                   # was the int 1
    assert str(doc["m"].key_pos["x"]) == "f.yml:3:11"               # a merged key is where the anchor wrote it
    with pytest.raises(RecipeError, match=r"f.yml:1:4: the YAML tag !foo is not supported"):
        parse_yaml("a: !foo x\n", "f.yml")
    with pytest.raises(RecipeError, match=r"f.yml:2:70: nested more than 64 levels deep"):
        parse_yaml("x: 1\nvars: " + "[" * 500 + "]" * 500 + "\n", "f.yml")
    with pytest.raises(RecipeError, match=r"f.yml:4:5: the document has more than 100000 values"):
        parse_yaml("".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 10) + "]\n" for i in range(7)),
                   "f.yml")


# -- (b) recipe-shaped documents ------------------------------------------------------------------

identifiers = st.from_regex(r"\A[a-z_][a-z0-9_]{0,8}\Z")
names = st.one_of(st.sampled_from(["web", "a", "hello-ssh", "Web", "-x", "", "a b", "1"]), identifiers)
variable_names = st.sampled_from(["greeting", "http_port", "ports", "api_token", "host", "missing", "build",
                                  "facts", "item", "range", "lipsum", "cycler", "self", "config", "request"])
JINJA = ["{{ greeting }}", "{{ http_port + 1 }}", "{{ ports | join(',') }}", "{{ missing }}", "{{ greting }}",
         "{{ build.id }}", "{{ build.nope }}", "{{ facts.os_id }}", "{{ item }}", "{{ x + }}", "{{ ", "}}",
         "{% if %}", "{% for i in ports %}{{ i }}{% endfor %}", "{% endfor %}", "{# c #}", "{{ 'a' ~ 1 }}",
         "{{ 1 / 0 }}", "{{ ports[99] }}", "{{ {}.a.b }}", "{{ ''.__class__ }}", "{{ lipsum.__globals__ }}",
         "{{ cycler.__init__.__globals__ }}", "{{ 1 | attr('__class__') }}", "{{ '{0.__class__}'.format(1) }}",
         "{{ self._TemplateReference__context }}", "{{ range(10) | list }}", "{{ 'x' * 100 }}",
         "{{ 10 ** 3 }}", "{{ greeting | nofilter }}", "{{ greeting is notatest }}", "{{ api_token }}",
         "{{ ports | to_json | from_json }}", "{{ 'a: 1' | from_yaml }}", "{{ '[' | from_json }}",
         "{{ 'x' | b64decode }}", "{{ none }}", "{{ none.x }}", "{{ '%s' % ports }}", "{{ greeting.upper() }}",
         "{{ greeting | regex_replace('(', '') }}", "{{ {'a': 1} | dict2items }}", "{{ 1 | items2dict }}",
         "{{ [1] | combine }}", "{{ 'a' | hash('nope') }}", "{% set x = 1 %}{{ x }}", "{% raw %}{{{% endraw %}"]
jinja = st.one_of(st.sampled_from(JINJA),
                  st.builds(lambda a, b: a + " " + b, st.sampled_from(JINJA), st.sampled_from(JINJA)),
                  st.builds(lambda name, flt: "{{ " + name + flt + " }}", variable_names,
                            st.sampled_from(["", " | upper", " | default(1)", " | int", " | bool", " | quote",
                                             " | basename", " | to_nice_yaml", " | b64encode", "()", ".x",
                                             "[0]", " | length", " | list", " | first", " is defined"])))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.integers(), st.floats(),
                    st.text(max_size=12), jinja, st.sampled_from(["0644", "4G", "yes", "~/.ssh/id", "/tmp/x",
                                                                  "eu-west-1", "sha256:" + "0" * 64]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.one_of(identifiers, st.integers()),
                                                                       inner, max_size=4)), max_leaves=12)


def _options(keys: list[str]) -> st.SearchStrategy:
    return st.dictionaries(st.one_of(st.sampled_from(keys or ["x"]), identifiers), values, max_size=5)


bases = st.one_of(
    st.fixed_dictionaries({"path": st.sampled_from(["base.qcow2", "/nonexistent/base.qcow2", "", "{{ greeting }}"])},
                          optional={"format": st.sampled_from(["qcow2", "raw", "vmdkk", 1, ["a"]])}),
    st.fixed_dictionaries({"url": st.sampled_from(["https://example.invalid/x.qcow2", "ftp://x", "nope", "file:///x"]),
                           "checksum": st.sampled_from(["sha256:" + "a" * 64, "file:https://example.invalid/SUMS",
                                                        "md5:x", 1])}),
    st.fixed_dictionaries({"bootstrap": st.one_of(st.none(), st.fixed_dictionaries(
        {}, optional={"distro": st.one_of(st.sampled_from(["debian", "ubuntu", "arch"]), values),
                      "suite": values, "packages": values, "mirror": values, "size": values}))}),
    values)


@st.composite
def sources(draw):
    platform = draw(st.one_of(st.sampled_from(PLATFORM_NAMES), st.sampled_from(["qemuu", "", "docker"]), values))
    entry = dict(draw(_options(PLATFORM_OPTIONS.get(platform, []) if isinstance(platform, str) else [])))
    if draw(st.booleans()):
        entry["platform"] = platform
    if platform == "qemu" and draw(st.booleans()):
        entry["base"] = draw(bases)
    if draw(st.booleans()):
        entry["ssh"] = draw(st.one_of(st.dictionaries(st.sampled_from(SSH_OPTIONS), values, max_size=4), values))
    return entry


@st.composite
def tasks(draw, depth: int = 0):
    module = draw(st.one_of(st.sampled_from(MODULE_NAMES), st.sampled_from(["cpoy", "include_tasks",
                                                                             "import_tasks", "block"])))
    task: dict[str, Any] = {}
    if module in ("import_tasks", "include_tasks"):
        task[module] = draw(st.one_of(st.sampled_from(["common.yml", "nope.yml", "{{ x }}", "recipe.yml", "files",
                                                       "/dev/null", "a" * 300]), values))
    elif module == "block":
        task["block"] = draw(st.lists(tasks(depth + 1), max_size=2)) if depth < 2 else draw(values)
    else:
        task[module] = draw(st.one_of(_options(MODULE_OPTIONS.get(module, [])), values))
    for keyword in draw(st.lists(st.sampled_from([*KEYWORDS, "listen", "whn"]), max_size=3, unique=True)):
        task[keyword] = draw(values)
    return task


exports = st.one_of(st.lists(st.one_of(
    st.sampled_from(EXPORT_NAMES + ["ovaa"]).flatmap(
        lambda kind: st.builds(lambda options: {kind: options},
                               st.one_of(st.none(), _options(EXPORT_OPTIONS.get(kind, []))))),
    values), max_size=3), values)
TOP_LEVEL_VALUES = {
    "name": names,
    "vars": st.one_of(st.dictionaries(st.one_of(variable_names, identifiers), values, max_size=5), values),
    "secrets": st.one_of(st.lists(st.one_of(variable_names, values), max_size=3), values),
    "sources": st.one_of(st.dictionaries(st.one_of(names, st.integers()), sources(), min_size=1, max_size=2), values),
    "roles": st.one_of(st.lists(st.one_of(
        st.sampled_from(["local", "motd", "hardening", "vagrant", "nope"]),
        st.fixed_dictionaries({"role": st.sampled_from(["local", "motd", 1])}, optional={"vars": values}),
        values), max_size=2), values),
    "tasks": st.one_of(st.lists(tasks(), max_size=4), values),
    "handlers": st.lists(tasks(), max_size=2),
    "verify": st.lists(tasks(), max_size=2),
    "exports": exports,
}


@st.composite
def recipes(draw):
    doc: dict[Any, Any] = {}
    for key in draw(st.lists(st.sampled_from(TOP_LEVEL + ["taks", "1"]), min_size=1, max_size=8, unique=True)):
        doc[key] = draw(TOP_LEVEL_VALUES.get(key, values))
    return doc


def dump(doc: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    stream = io.StringIO()
    yaml.dump(doc, stream)
    return stream.getvalue()


@FUZZ
@given(recipes())
@example({"name": "web", "vars": {0: None},                 # bug: TypeError in difflib, a var named 0
          "sources": {"web": {"platform": "qemu", "base": {"path": "{{ greeting }}"}}}})
def test_random_recipes(workdir, doc):
    validate(workdir, dump(doc))


@FUZZ
@given(recipes(), st.lists(st.builds(lambda n, v: f"{n}={v}", st.sampled_from(["greeting", "x", "1a", ""]),
                                     st.sampled_from(["1", "{{ x }}", "[", "a: b", "", "{{ ''.__class__ }}"])),
                           max_size=2))
@example({"name": "web", "sources": {"box": {"platform": "ssh", "ssh": {"host": "h"}}},
          "tasks": [{"apt": {"upgrade": []}}]}, [])                  # bug: TypeError in apt's schema
@example({"name": "web", "sources": {"box": {"platform": "ssh", "ssh": {"host": "h"}}},
          "tasks": [{"apt": {}, "only": 1}]}, [])                     # bug: TypeError, 'only: 1' iterated
@example({"name": "web", "sources": {"box": {"platform": "qemu", "base": {"bootstrap": {"distro": ["a"]}}}}},
         [])                                                           # bug: TypeError in the qemu platform
@example({"tasks": [{"include_tasks": "\x1e"}]}, [])                   # a control character split the line
@example({"tasks": [{"copy": {"src": "a/\x1e/b", "dest": "/x"}}]}, [])
def test_random_recipes_with_vars(workdir, doc, assignments):
    extra = [arg for assignment in assignments for arg in ("--var", assignment)]
    validate(workdir, dump(doc), *extra)


# -- (c) mutations of valid recipes ------------------------------------------------------------------

def _valid_recipes() -> dict[str, str]:
    texts = {name: (REPO / "playbooks/examples" / name).read_text() for name in ("web.yml", "hello-ssh.yml")}
    texts["appliance.yml"] = (REPO / "tests/integration/data/appliance.yml").read_text().replace("@BASE@", "base.qcow2")
    texts["qemu-url.yml"] = (
        "name: url\nsources:\n  vm:\n    platform: qemu\n    base:\n      url: https://example.invalid/d.qcow2\n"
        "      checksum: file:https://example.invalid/SHA256SUMS\n    ssh: {user: debian}\n"
        "roles: [{role: local, vars: {local_msg: ho}}]\n"
        "tasks:\n  - import_tasks: common.yml\n  - copy: {src: hello.txt, dest: /tmp/hello}\n    loop: [1, 2]\n"
        "exports:\n  - qcow2: {}\n  - manifest: {}\n")
    return texts


VALID = _valid_recipes()


def test_the_valid_recipes_are_valid(workdir):
    """The mutation tests start from valid recipes; and validating one downloads nothing."""
    for name, text in VALID.items():
        code, output = validate(workdir, text)
        assert code == 0, (name, output)


def test_validate_downloads_no_base_image(workdir, tmp_path, monkeypatch):
    """A url base is checked, not fetched; a path base need not exist yet: nothing reaches out, nothing is
    cached (the `offline` fixture fails any connection or process)."""
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "cache"))
    for base in ("{url: 'https://example.invalid/d.qcow2', checksum: 'file:https://example.invalid/SHA256SUMS'}",
                 "{url: 'https://example.invalid/d.qcow2', checksum: 'sha256:" + "a" * 64 + "'}",
                 "{path: base.qcow2}", "{path: /nonexistent/base.qcow2}", "{bootstrap: {distro: debian}}"):
        code, output = validate(workdir, f"name: b\nsources:\n  vm: {{platform: qemu, base: {base}, ssh: {{user: u}}}}\n"
                                         "exports:\n  - qcow2: {}\n")
        assert code == 0, output
    assert not (tmp_path / "cache").exists()


def _yaml_rt() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    return yaml


def _nodes(node: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _nodes(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _nodes(value, (*path, index))
    return found


def _parent(doc: Any, path: tuple) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


REPLACEMENTS = [None, 0, -1, 3.5, True, "", "x", "{{ greting }}", "{{ x + }}", "{{ ''.__class__ }}", [], {}, [1, "a"],
                {"a": 1}, {"{{ x }}": 1}, "a" * 5000]


@st.composite
def data_mutations(draw):
    """Parse a valid recipe, then delete, retype or template-ify some of its nodes, and write it again."""
    name = draw(st.sampled_from(sorted(VALID)))
    doc = _yaml_rt().load(VALID[name])
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _nodes(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(doc, path), path[-1]
        action = draw(st.sampled_from(["delete", "replace", "jinja", "rename", "wrap"]))
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = copy.deepcopy(draw(st.one_of(st.sampled_from(REPLACEMENTS), values)))   # later steps edit it
        elif action == "jinja":
            parent[last] = draw(jinja)
        elif action == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"x": parent[last]}]))
        elif isinstance(parent, dict):
            new_key = draw(st.one_of(st.sampled_from([*TOP_LEVEL, *MODULE_NAMES, *KEYWORDS, "{{ x }}", 1]), identifiers))
            value = parent.pop(last)
            parent[new_key] = value
    stream = io.StringIO()
    _yaml_rt().dump(doc, stream)
    return stream.getvalue()


@st.composite
def text_mutations(draw):
    """Edit the text of a valid recipe: lines removed, re-indented, tabbed, duplicated, truncated, spliced."""
    name = draw(st.sampled_from(sorted(VALID)))
    lines = VALID[name].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        action = draw(st.sampled_from(["delete", "indent", "dedent", "tab", "duplicate", "truncate", "insert",
                                       "jinja", "swap"]))
        if action == "delete":
            del lines[index]
        elif action == "indent":
            lines[index] = " " * draw(st.integers(1, 4)) + line
        elif action == "dedent":
            lines[index] = line.lstrip(" ")
        elif action == "tab":
            lines[index] = "\t" + line
        elif action == "duplicate":
            lines.insert(index, line)
        elif action == "truncate":
            cut = draw(st.integers(0, len(line)))
            lines[index:] = [line[:cut]]
        elif action == "insert":
            column = draw(st.integers(0, len(line)))
            lines[index] = line[:column] + draw(st.sampled_from(TOKENS)) + line[column:]
        elif action == "jinja":
            column = draw(st.integers(0, len(line)))
            lines[index] = line[:column] + draw(jinja) + line[column:]
        else:
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
    return "".join(lines)


@FUZZ
@given(data_mutations())
def test_mutated_recipes(workdir, text):
    validate(workdir, text)


@FUZZ
@given(text_mutations())
def test_edited_recipes(workdir, text):
    validate(workdir, text)


INCLUDED_FILES = [*(f"roles/local/{name}" for name in ("tasks/main.yml", "defaults/main.yml", "vars/main.yml",
                                                      "handlers/main.yml", "meta/argument_specs.yml")),
                  "common.yml"]


option_specs = st.one_of(values, st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["str", "int", "list", "dict", "bool", "raw", "nope"]), values),
    "required": values, "choices": values, "default": values}))
argument_specs = st.fixed_dictionaries({"argument_specs": st.one_of(values, st.fixed_dictionaries({
    "main": st.one_of(values, st.fixed_dictionaries({
        "options": st.one_of(values, st.dictionaries(st.sampled_from(["local_msg", "other"]), option_specs))}))}))})
role_file_texts = st.one_of(st.builds(dump, values), st.builds(dump, argument_specs),
                            st.builds(lambda task: dump([task]), tasks()), yamlish)


@FUZZ
@given(st.sampled_from(INCLUDED_FILES), role_file_texts)
@example("roles/local/meta/argument_specs.yml", "argument_specs: [1]\n")    # bug: AttributeError on a list
@example("roles/local/meta/argument_specs.yml",                             # bug: TypeError, 'in' an int
         "argument_specs:\n  main:\n    options:\n      local_msg: {choices: 1}\n")
@example("roles/local/meta/argument_specs.yml",                             # bug: TypeError, unhashable type
         "argument_specs:\n  main:\n    options:\n      local_msg: {type: [str]}\n")
@example("roles/local/tasks/main.yml", "false\n")                           # an error without a line:column
@example("roles/local/meta/argument_specs.yml",                             # bug: TypeError, joining 1 and 'a'
         "argument_specs:\n  main:\n    options:\n      1: {type: str}\n      a: {type: str}\n")
@example("common.yml", "{a: 1}\n")
def test_included_files(workdir, relative, text):
    """The files a recipe pulls in (a role's, an included task list) are recipe input too."""
    path = workdir / relative
    saved = path.read_text() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    try:
        validate(workdir, VALID["qemu-url.yml"])
    finally:
        if saved is None:
            path.unlink()
        else:
            path.write_text(saved)


@FUZZ
@given(role_file_texts, st.sampled_from(sorted(VALID)))
@example("- 1\n", "hello-ssh.yml")
def test_var_files(workdir, text, name):
    """--var-file: a YAML file of variables, over the recipe's."""
    var_file = workdir / "vars.yml"
    var_file.write_text(text)
    try:
        validate(workdir, VALID[name], "--var-file", str(var_file))
    finally:
        var_file.unlink()

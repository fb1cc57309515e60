"""The Jinja sandbox: a template that reaches for Python internals is refused, loudly and at its line.

Each escape is tried where templates are: a task's arguments and keywords, vars, a source's options, an
export's options. `validate` refuses it (exit 2, the attribute named, file:line:column); what can only be
known at run time (an attribute name held in a variable) fails the task with the same words. Never a
traceback, never a silent empty string, and never the secret's value.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from engine.build.executor import provision
from engine.build.runner import BuildState, RunOptions
from engine.cli.main import main
from engine.console.events import EventBus
from engine.errors import BuildError
from engine.recipe.compile import CompileOptions, compile_recipe
from engine.recipe.template import Scope, TemplateFailure, render
from engine.secrets import Redactor

SECRET = "hunter2-s3cr3t-value"
HEAD = f"""\
name: web
vars:
  api_token: {SECRET}
  greeting: hello
secrets: [api_token]
sources:
  box:
    platform: ssh
    ssh: {{host: h}}
"""

# (id, template, the access the error must name)
ESCAPES = [
    ("str-class", "{{ ''.__class__ }}", "'__class__'"),
    ("subclasses", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "'__class__'"),
    ("cycler-globals", "{{ cycler.__init__.__globals__ }}", "'__init__'"),
    ("lipsum-globals", "{{ lipsum.__globals__ }}", "'__globals__'"),
    ("template-reference", "{{ self._TemplateReference__context }}", "'_TemplateReference__context'"),
    ("flask-request", "{{ request }}", "'request'"),
    ("flask-config", "{{ config.items() }}", "'config'"),
    ("int-base", "{{ (1).__class__.__base__ }}", "'__class__'"),
    ("format-field", "{{ '{0.__class__}'.format(1) }}", "'__class__'"),
    ("format-map-field", "{{ '{x.__class__}'.format_map({'x': 1}) }}", "'__class__'"),
    ("attr-filter", "{{ 1 | attr('__class__') }}", "'__class__'"),
    ("getitem", "{{ build['__class__'] }}", "'__class__'"),
    ("secret-class", "{{ api_token.__class__ }}", "'__class__'"),
    ("secret-format", "{{ '{0.__class__.__init__}'.format(api_token) }}", "'__class__'"),
    ("hidden-by-default", "{{ ''.__class__ | default('x') }}", "'__class__'"),
    ("hidden-by-is-defined", "{{ 'x' if ''.__class__ is defined else 'y' }}", "'__class__'"),
    ("in-a-statement", "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}", "'__class__'"),
    ("namespace-init", "{{ namespace.__init__ }}", "'__init__'"),
]

PLACES = {
    "task-args": lambda t: f"tasks:\n  - debug: {{msg: {json.dumps(t)}}}\n",
    "task-free-form": lambda t: f"tasks:\n  - shell: {json.dumps('echo ' + t)}\n",
    "task-keyword": lambda t: f"tasks:\n  - shell: echo hi\n    when: {json.dumps(t)}\n",
    "handler": lambda t: f"handlers:\n  - name: h\n    debug: {{msg: {json.dumps(t)}}}\n",
    "vars": lambda t: "tasks:\n  - debug: {msg: '{{ evil }}'}\n",      # evil: the template, under vars
    "source": lambda t: None,
    "export": lambda t: f"exports:\n  - manifest: {{path: {json.dumps(t)}}}\n",
}


def _recipe(place: str, template: str) -> str:
    if place == "vars":
        return HEAD.replace("  greeting: hello\n", f"  greeting: hello\n  evil: {json.dumps(template)}\n") + \
            PLACES[place](template)
    if place == "source":
        return HEAD.replace("ssh: {host: h}", f"ssh: {{host: {json.dumps(template)}}}")
    return HEAD + PLACES[place](template)


def _line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("escape", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_validate_refuses_the_escape(escape, place, tmp_path, capsys):
    _id, template, access = escape
    text = _recipe(place, template)
    recipe = tmp_path / "web.yml"
    recipe.write_text(text)
    code = main(["validate", str(recipe)])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in err and "internal error" not in err, err
    assert SECRET not in out + err
    problems = err.splitlines()[1:]
    line = _line_of(text, json.dumps(template)[1:-1][:12] if place != "vars" else "evil:")
    named = [p for p in problems if f"{recipe}:{line}:" in p and access in p]
    assert named, err
    words = "undefined variable" if access in ("'request'", "'config'") else "refused by the template sandbox"
    assert any(words in p for p in named), err


# -- at run time: what validate cannot see -------------------------------------------------------

class NoConnection:
    """The tasks below fail before they would run a command."""

    async def run(self, *args, **kwargs):   # pragma: no cover - reached only if the sandbox let it through
        raise AssertionError("a refused task ran a command")


def _provision(tmp_path: Path, tasks: str, extra_vars: str = "") -> tuple[BuildError | None, list[dict]]:
    recipe_path = tmp_path / "web.yml"
    recipe_path.write_text(HEAD.replace("  greeting: hello\n", "  greeting: hello\n" + extra_vars) + tasks)
    redactor = Redactor()
    recipe = compile_recipe(recipe_path, CompileOptions(placeholder_ids=True), redactor)   # validate passes
    events: list[dict] = []
    bus = EventBus(redactor=redactor, sinks=[events.append])
    build = recipe.builds[0]
    state = BuildState(recipe, build, RunOptions(), bus.bind(build=build.info.name))
    state.connection = NoConnection()
    try:
        asyncio.run(provision(state, recipe.tasks, recipe.handlers))
    except BuildError as failure:
        return failure, events
    return None, events


RUNTIME = [
    ("attr-from-a-variable", "debug: {msg: \"{{ api_token | attr(name) }}\"}", "  name: __class__\n", "'__class__'"),
    ("getitem-from-a-variable", "debug: {msg: \"{{ build[name] }}\"}", "  name: __class__\n", "'__class__'"),
    ("format-string-from-a-variable", "debug: {msg: \"{{ fmt.format(api_token) }}\"}", "  fmt: '{0.__class__}'\n",
     "'__class__'"),
    ("built-format-string", "debug: {msg: \"{{ ('{0.' ~ name ~ '}').format(api_token) }}\"}", "  name: __class__\n",
     "'__class__'"),
    ("debug-var", "debug: {var: \"api_token.__class__\"}", "", "'__class__'"),
    ("huge-string", "debug: {msg: \"{{ api_token * n }}\"}", "  n: 10000000000\n", "larger than"),
    ("huge-power", "debug: {msg: \"{{ 7 ** n }}\"}", "  n: 10000000000\n", "too large"),
    ("huge-width", "debug: {msg: \"{{ '%0*d' % (n, 1) }}\"}", "  n: 10000000000\n", "'*' width"),
]


@pytest.mark.parametrize("case", RUNTIME, ids=[c[0] for c in RUNTIME])
def test_a_refusal_at_run_time_fails_the_task(case, tmp_path):
    _id, task, extra_vars, words = case
    failure, events = _provision(tmp_path, f"tasks:\n  - name: escape\n    {task}\n", extra_vars)
    assert failure is not None, events
    message = str(failure)
    assert "refused by the template sandbox" in message and words in message, message
    assert f"{tmp_path / 'web.yml'}:" in message        # where: the task's file:line:column
    assert SECRET not in message and SECRET not in json.dumps(events, default=str)
    assert not any(e.get("status") in ("ok", "changed") for e in events), events


def test_a_variable_holding_an_escape_is_refused_where_it_is_defined(tmp_path, capsys):
    recipe = tmp_path / "web.yml"
    recipe.write_text(HEAD.replace("  greeting: hello\n", "  greeting: hello\n  evil: \"{{ greeting.__class__ }}\"\n")
                      + "tasks:\n  - debug: {msg: \"{{ evil }}\"}\n")
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}:5:9: vars.evil: refused by the template sandbox: access to attribute '__class__'" in err, err


def test_cli_and_var_values_are_sandboxed_too(tmp_path, capsys):
    recipe = tmp_path / "web.yml"
    recipe.write_text(HEAD.replace("ssh: {host: h}", "ssh: {host: '{{ target }}'}"))
    assert main(["validate", str(recipe), "--var", "target={{ api_token.__class__ }}"]) == 2
    err = capsys.readouterr().err
    assert "refused by the template sandbox: access to attribute '__class__'" in err and SECRET not in err, err


# -- the sandbox itself --------------------------------------------------------------------------

def scope() -> Scope:
    return Scope([{"api_token": SECRET, "ports": [80, 443]}], {"build": {"source": "box", "id": "1"}, "facts": {}})


@pytest.mark.parametrize("escape", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_render_refuses_and_never_returns_something(escape):
    _id, template, access = escape
    with pytest.raises(TemplateFailure) as failure:
        render(template, scope())
    assert access in failure.value.message and SECRET not in failure.value.message


@pytest.mark.parametrize("template, words", [
    ("{{ 'x' * 10**10 }}", "larger than"), ("{{ [0] * 10**9 }}", "larger than"), ("{{ 9 ** (10**9) }}", "too large"),
    ("{{ '%0999999999d' % 1 }}", "larger than"), ("{{ '%0999999999d' | format(1) }}", "larger than"),
    ("{{ '{:999999999}'.format(1) }}", "larger than"), ("{{ 'x'.center(10**9) }}", "larger than"),
    ("{{ 'x' | center(10**9) }}", "larger than"), ("{{ 'x\ny' | indent(10**9) }}", "larger than"),
    ("{{ range(10**9) | list }}", "MAX_RANGE"),
])
def test_huge_values_are_refused_not_made(template, words):
    with pytest.raises(TemplateFailure) as failure:
        render(template, scope())
    assert words in failure.value.message


def test_ordinary_templates_still_work():
    s = scope()
    assert render("{{ '-' * 3 }}", s) == "---"
    assert render("{{ 2 ** 10 }}", s) == 1024
    assert render("{{ '%05d' % 42 }}", s) == "00042"
    assert render("{{ '{0}-{1:>4}'.format('a', 1) }}", s) == "a-   1"
    assert render("{{ range(3) | list }}", s) == [0, 1, 2]          # Jinja's globals are there when run
    assert render("{{ dict(a=1) }}", s) == {"a": 1}
    assert render("{% set ns = namespace(n=1) %}{{ ns.n }}", s) == "1"
    assert render("{{ {'_id': 7}._id }}", s) == 7                    # a mapping's "_id" key is data
    assert render("{{ 'x' | center(5) }}", s) == "  x  "
    assert render("{{ ports | join(',') }}", s) == "80,443"


def test_a_role_variable_holding_an_escape_is_refused(tmp_path, capsys):
    role = tmp_path / "roles/evil"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks/main.yml").write_text("- debug: {msg: '{{ evil_msg }}'}\n")
    (role / "defaults").mkdir()
    (role / "defaults/main.yml").write_text("evil_msg: \"{{ lipsum.__globals__ }}\"\n")
    recipe = tmp_path / "web.yml"
    recipe.write_text(HEAD + "roles:\n  - role: evil\n    vars: {other: \"{{ cycler.__init__ }}\"}\n")
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"{role}/defaults/main.yml:1:11: roles[evil].defaults.evil_msg: refused by the template sandbox: " \
           "access to attribute '__globals__'" in err, err
    assert f"{recipe}:12:19: roles[evil].vars.other: refused by the template sandbox: access to attribute '__init__'" \
           in err, err

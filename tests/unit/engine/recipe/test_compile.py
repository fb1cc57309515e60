"""compile_recipe end to end on files: precedence of variables, builds, the model."""
from pathlib import Path

import pytest

from engine.errors import RecipeError
from engine.recipe.compile import CompileOptions, compile_recipe
from engine.recipe.template import Scope
from engine.secrets import Redactor

RECIPE = """\
name: prec
vars:
  a: recipe
  b: recipe
  c: recipe
  d: recipe
  token: "{{ 'sec' ~ 'ret-value' }}"
secrets: [token]
roles: [r]
sources:
  one: {platform: ssh, ssh: {host: "host-{{ build.source }}", port: "{{ port }}"}}
  two: {platform: ssh, ssh: {host: h2}}
tasks:
  - shell: echo {{ a }}
    only: [one]
"""


@pytest.fixture
def recipe_dir(tmp_path: Path) -> Path:
    (tmp_path / "roles/r/defaults").mkdir(parents=True)
    (tmp_path / "roles/r/defaults/main.yml").write_text("a: role\nport: 2222\nonly_default: role\n")
    (tmp_path / "roles/r/tasks").mkdir()
    (tmp_path / "roles/r/tasks/main.yml").write_text("- shell: echo role task\n")
    (tmp_path / "vars.yml").write_text("b: file\nc: file\nd: file\n")
    (tmp_path / "r.yml").write_text(RECIPE)
    return tmp_path


def test_variable_precedence(recipe_dir):
    options = CompileOptions(var_files=(recipe_dir / "vars.yml",), var_assignments=("c=cli", "d=cli"),
                             environ={"RECIPE_VAR_d": "env"})
    recipe = compile_recipe(recipe_dir / "r.yml", options)
    scope = Scope(recipe.variables.layers())
    assert [scope[n] for n in ("only_default", "a", "b", "c", "d")] == ["role", "recipe", "file", "cli", "env"]


def test_builds_render_their_sources_and_tasks_keep_their_order(recipe_dir):
    recipe = compile_recipe(recipe_dir / "r.yml")
    one, two = recipe.builds
    assert one.source.ssh.host == "host-one" and one.source.ssh.port == 2222
    assert two.source.ssh.host == "h2" and two.source.ssh.port == 22
    assert one.info.id != two.info.id
    role, own = recipe.tasks            # a role's tasks run as one block, with the role's origin
    assert [t.args["cmd"] for t in (*role.block, own)] == ["echo role task", "echo {{ a }}"]
    assert own.runs_on("one") and not own.runs_on("two")
    assert role.origin.role == "r" and role.block[0].origin.role == "r"


def test_secret_values_reach_the_redactor_even_when_the_recipe_is_invalid(recipe_dir):
    (recipe_dir / "r.yml").write_text(RECIPE + "  - shell: echo {{ token }} {{ nope }}\n")
    redactor = Redactor()
    with pytest.raises(RecipeError):
        compile_recipe(recipe_dir / "r.yml", CompileOptions(), redactor)
    assert redactor.text("x secret-value y") == "x ******** y"


def test_a_top_level_role_block_is_headed_by_its_roles_name(tmp_path):
    (tmp_path / "roles" / "dep" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "dep" / "tasks" / "main.yml").write_text("- shell: echo dep\n")
    (tmp_path / "roles" / "web" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "web" / "tasks" / "main.yml").write_text("- block:\n    - shell: echo hi\n")
    (tmp_path / "roles" / "web" / "meta").mkdir()
    (tmp_path / "roles" / "web" / "meta" / "main.yml").write_text("dependencies: [dep]\n")
    (tmp_path / "r.yml").write_text("name: r\nsources:\n  box: {platform: ssh, ssh: {host: 127.0.0.1}}\n"
                                    "roles: [web]\ntasks:\n  - import_role: {name: web}\n  - block:\n"
                                    "      - shell: echo mine\n  - name: named\n    import_role: {name: web}\n")
    tasks = compile_recipe(tmp_path / "r.yml", CompileOptions()).tasks
    assert [task.heading for task in tasks] == ["role dep", "role web", "role web", "block", "named"]

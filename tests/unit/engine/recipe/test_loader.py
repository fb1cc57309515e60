from pathlib import Path

import pytest

from engine.errors import RecipeError
from engine.recipe.loader import load_recipe
from engine.recipe.yamlpos import YMap, locate, parse_yaml


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_positions_of_keys_values_and_items():
    data = parse_yaml("a:\n  b: [1, 2]\n  c:\n    - x: 1\n", "f.yml")
    assert isinstance(data, YMap)
    assert str(data["a"].value_pos["b"]) == "f.yml:2:6"
    assert str(locate(data, ["a", "c", 0, "x"])) == "f.yml:4:10"
    assert str(locate(data, ["a", "c", 0, "x"], at_key=True)) == "f.yml:4:7"
    assert str(locate(data, ["a", "nope", 3])) == "f.yml:2:3"


def test_syntax_error_has_line_and_column():
    with pytest.raises(RecipeError) as error:
        parse_yaml("a: 1\n b: 2\n", "bad.yml")
    assert str(error.value.problems[0].position) == "bad.yml:2:3"


def test_includes_become_blocks_with_positions_from_their_file(tmp_path):
    write(tmp_path, "common.yml", "- name: inner\n  shell: echo hi\n")
    recipe = write(tmp_path, "r.yml", "name: r\ntasks:\n  - import_tasks: common.yml\n    when: true\n")
    loaded = load_recipe(recipe)
    block = loaded.document["tasks"][0]
    assert block["when"] is True and "import_tasks" not in block
    assert block["block"][0]["name"] == "inner"
    assert str(block["block"].item_pos[0]).endswith("common.yml:1:3")
    assert tmp_path / "common.yml" in loaded.files_read


def test_include_loop_is_reported_where_it_closes(tmp_path):
    write(tmp_path, "a.yml", "- include_tasks: b.yml\n")
    write(tmp_path, "b.yml", "- include_tasks: a.yml\n")
    recipe = write(tmp_path, "r.yml", "name: r\ntasks:\n  - include_tasks: a.yml\n")
    with pytest.raises(RecipeError) as error:
        load_recipe(recipe)
    problem = error.value.problems[0]
    assert "include loop: a.yml -> b.yml -> a.yml" in problem.message
    assert str(problem.position).endswith("b.yml:1:18")


def test_roles_are_found_beside_the_recipe_then_on_the_roles_path(tmp_path):
    write(tmp_path, "roles/web/tasks/main.yml", "- shell: echo web\n")
    write(tmp_path, "roles/web/defaults/main.yml", "port: 80\n")
    write(tmp_path, "elsewhere/db/tasks/main.yml", "- shell: echo db\n")
    recipe = write(tmp_path, "r.yml", "name: r\nroles: [web, {role: db, vars: {x: 1}}]\n")
    loaded = load_recipe(recipe, roles_path=[tmp_path / "elsewhere"])
    assert [r.name for r in loaded.roles] == ["web", "db"]
    assert loaded.roles[0].defaults == {"port": 80}
    assert loaded.roles[1].params == {"x": 1}


def test_missing_role_names_the_reference_and_the_search_path(tmp_path):
    recipe = write(tmp_path, "r.yml", "name: r\nroles:\n  - nginx\n")
    with pytest.raises(RecipeError) as error:
        load_recipe(recipe)
    problem = error.value.problems[0]
    assert problem.message == "role 'nginx' not found"
    assert str(problem.position).endswith("r.yml:3:5")
    assert "roles" in problem.hint

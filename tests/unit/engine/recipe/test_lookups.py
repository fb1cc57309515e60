import logging

import pytest

from engine.recipe.lookups import LOOKUP_NAMES, LookupFailure, run_lookup
from engine.recipe.template import Scope, TemplateFailure, render


@pytest.fixture
def layout(tmp_path):
    """A playbook dir and a role in it, each with files/ and templates/."""
    play = tmp_path / "play"
    role = play / "roles" / "web"
    for base in (play, role):
        (base / "files").mkdir(parents=True)
        (base / "templates").mkdir()
    (play / "files" / "motd").write_text("from the playbook's files\n")
    (play / "only-in-play").write_text("playbook dir\n")
    (role / "files" / "motd").write_text("from the role's files\n")
    (role / "templates" / "site.j2").write_text("port={{ port }}\n")
    return play, role


def test_file_lookup_searches_the_role_before_the_playbook(layout):
    play, role = layout
    in_role = {"playbook_dir": str(play), "role_path": str(role)}
    assert run_lookup("file", "motd", in_role) == ["from the role's files"]
    assert run_lookup("file", "motd", {"playbook_dir": str(play)}) == ["from the playbook's files"]
    assert run_lookup("file", "only-in-play", in_role) == ["playbook dir"]


def test_a_failing_lookup_names_itself_and_its_term(layout):
    play, _ = layout
    with pytest.raises(LookupFailure, match=r"lookup 'file' failed on 'nope'.*files/nope"):
        run_lookup("file", "nope", {"playbook_dir": str(play)})
    with pytest.raises(TemplateFailure, match="lookup 'file' failed on 'nope'"):
        render("{{ lookup('file', 'nope') }}", Scope([{"playbook_dir": str(play)}]))


def test_template_lookup_renders_with_the_callers_variables(layout):
    play, role = layout
    scope = Scope([{"playbook_dir": str(play), "role_path": str(role), "port": 8080}])
    assert render("{{ lookup('template', 'site.j2') }}", scope) == "port=8080\n"
    assert run_lookup("template", "site.j2", {"playbook_dir": str(play), "role_path": str(role)},
                      renderer=lambda text, extra: text.upper()) == ["PORT={{ PORT }}\n"]


def test_with_items_flattens_one_level_and_with_list_does_not():
    assert run_lookup("items", [1, [2, [3]]], {}) == [1, 2, [3]]
    assert run_lookup("list", [1, [2, [3]]], {}) == [1, [2, [3]]]
    assert run_lookup("items", "single", {}) == ["single"]


def test_with_dict_nested_together_and_sequence():
    assert run_lookup("dict", {"a": 1}, {}) == [{"key": "a", "value": 1}]
    assert run_lookup("nested", [["a", "b"], [1, 2]], {}) == [["a", 1], ["a", 2], ["b", 1], ["b", 2]]
    assert run_lookup("together", [["a", "b"], [1]], {}) == [["a", 1], ["b", None]]
    assert run_lookup("sequence", "start=1 end=3 format=web%02d", {}) == ["web01", "web02", "web03"]
    assert run_lookup("sequence", [], {}, start=2, count=2) == ["2", "3"]


def test_with_subelements_pairs_without_changing_the_data():
    users = [{"name": "a", "keys": ["k1", "k2"]}, {"name": "b"}]
    pairs = run_lookup("subelements", [users, "keys", {"skip_missing": True}], {})
    assert pairs == [[{"name": "a"}, "k1"], [{"name": "a"}, "k2"]]     # lists, as Ansible 2.19 shows each item
    assert users[0]["keys"] == ["k1", "k2"]


def test_with_first_found_looks_in_the_actions_directory(layout):
    play, role = layout
    variables = {"playbook_dir": str(play), "role_path": str(role)}
    assert run_lookup("first_found", ["nope.j2", "site.j2"], variables, action="template") == \
        [str(role / "templates" / "site.j2")]
    assert run_lookup("first_found", [{"files": ["nope"], "skip": True}], variables) == []
    with pytest.raises(LookupFailure, match="No file was found"):
        run_lookup("first_found", ["nope"], variables)


def test_errors_option_and_wantlist(layout, caplog):
    play, _ = layout
    scope = Scope([{"playbook_dir": str(play)}])
    assert render("{{ lookup('file', 'nope', errors='ignore') }}", scope) is None
    assert render("{{ query('file', 'nope', errors='ignore') }}", scope) == []
    with caplog.at_level(logging.WARNING):
        assert render("{{ lookup('file', 'nope', errors='warn') }}", scope) is None
    assert "lookup 'file' failed on 'nope'" in caplog.text
    assert render("{{ lookup('items', ['a', 'b']) }}", scope) == "a,b"
    assert render("{{ lookup('items', ['a', 'b'], wantlist=true) }}", scope) == ["a", "b"]
    assert render("{{ q('items', 'a') }}", scope) == ["a"]


def test_vars_lookup_renders_the_variable_and_takes_a_default():
    scope = Scope([{"name": "web", "greeting": "hi {{ name }}"}])
    assert render("{{ lookup('vars', 'greeting') }}", scope) == "hi web"
    assert render("{{ lookup('vars', 'nope', default='d') }}", scope) == "d"
    with pytest.raises(TemplateFailure, match="No variable named 'nope'"):
        render("{{ lookup('vars', 'nope') }}", scope)


def test_pipe_runs_on_the_controller_and_reports_failure(tmp_path):
    scope = Scope([{"playbook_dir": str(tmp_path)}])
    assert render("{{ lookup('pipe', 'pwd') }}", scope) == str(tmp_path)
    with pytest.raises(TemplateFailure, match=r"lookup 'pipe' failed on 'exit 3': the command returned 3"):
        render("{{ lookup('pipe', 'exit 3') }}", scope)


def test_unknown_lookups_and_options_are_named():
    with pytest.raises(LookupFailure, match="lookup 'password' is not known"):
        run_lookup("password", "x", {})
    with pytest.raises(LookupFailure, match="does not take the option"):
        run_lookup("items", [1], {}, colour="red")
    assert {"items", "list", "first_found", "fileglob", "subelements"} <= LOOKUP_NAMES
    assert run_lookup("ansible.builtin.items", [1], {}) == [1]


def test_huge_sequences_and_nests_are_refused():
    with pytest.raises(Exception, match="larger than 1000000"):
        run_lookup("sequence", "count=2000000", {})
    with pytest.raises(Exception, match="larger than 1000000"):
        run_lookup("nested", [list(range(2000)), list(range(2000))], {})

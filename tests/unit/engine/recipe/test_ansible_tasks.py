"""Ansible's task structure compiled: what blocks, imports, includes, roles and the play pass down to a task.

Each test writes an Ansible-style recipe (and its task files and roles) in
tmp_path and compiles it. Where the expected behaviour is Ansible's, the
comment says so; the role dependency cases were checked with ansible-playbook
2.19.14 (a dependency runs before its role, once, and takes its role's
`when` and tags).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.errors import Position
from engine.recipe.compile import CompileOptions, compile_recipe
from engine.recipe.loader import include_spec, role_reference
from engine.recipe.model import Recipe, Task
from engine.recipe.tasks import Inherit
from engine.recipe.yamlpos import YMap, parse_yaml
from engine.registry import TASK_MODULES, load_plugins

HEAD = "name: t\nsources: {one: {platform: ssh, ssh: {host: h}}}\n"


def compiled(tmp_path: Path, recipe: str, **files: str) -> Recipe:
    """Write the recipe (after HEAD) and files (`roles/web/tasks/main.yml`...) and compile it."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (tmp_path / "r.yml").write_text(HEAD + textwrap.dedent(recipe))
    return compile_recipe(tmp_path / "r.yml")


def leaves(tasks: tuple[Task, ...]) -> list[Task]:
    return [leaf for t in tasks for leaf in (leaves(t.block + t.rescue + t.always) if t.module is None else [t])]


def by_name(recipe: Recipe) -> dict[str, Task]:
    return {t.name: t for t in leaves(recipe.tasks) if t.name}


# -- Inherit ---------------------------------------------------------------------------

def test_inherit_adds_conditions_tags_and_environments_and_lets_the_inner_keyword_win():
    outer = Inherit().around({"when": "a", "tags": ["x"], "environment": {"A": "1"}, "become": True,
                              "become_user": "bob"})
    inner = outer.around({"when": ["b", "c"], "tags": "y, z", "environment": {"B": "2"}, "become": False})
    assert inner.when == ("a", "b", "c")
    assert inner.tags == frozenset({"x", "y", "z"})
    assert inner.environment == ({"A": "1"}, {"B": "2"})
    assert (inner.become, inner.become_user) == (False, "bob")


def test_inherit_leaves_what_a_node_does_not_say():
    base = Inherit(ignore_errors=True, no_log=True, delegate_to="localhost")
    assert base.around({}) == base


# -- blocks ---------------------------------------------------------------------------------

def test_a_block_passes_its_keywords_to_each_task_and_checks_its_when_on_each(tmp_path):
    recipe = compiled(tmp_path, """\
        tasks:
          - block:
              - {name: inner, command: echo, become: false}
              - {name: other, command: echo, when: y is defined, tags: own, ignore_errors: false}
            rescue:
              - {name: saved, debug: {msg: r}}
            when: x is defined
            tags: [bt]
            become: true
            become_user: bob
            ignore_errors: true
            environment: {A: "1"}
        """)
    block = recipe.tasks[0]
    assert block.when == ()          # its condition is checked by each task, as Ansible's block does
    tasks = by_name(recipe)
    assert tasks["inner"].when == ("x is defined",) and tasks["inner"].tags == frozenset({"bt"})
    assert (tasks["inner"].become, tasks["inner"].become_user, tasks["inner"].ignore_errors) == (False, "bob", True)
    assert tasks["other"].when == ("x is defined", "y is defined") and tasks["other"].tags == {"bt", "own"}
    assert tasks["other"].ignore_errors is False and tasks["other"].environment == ({"A": "1"},)
    assert tasks["saved"].when == ("x is defined",) and tasks["saved"].become_user == "bob"


# -- imports and includes -------------------------------------------------------------------

INCLUDED = {"inc.yml": "- {name: included, debug: {msg: i}, tags: own}\n"}


def test_import_tasks_passes_its_keywords_on(tmp_path):
    recipe = compiled(tmp_path, """\
        tasks:
          - {name: imp, import_tasks: inc.yml, when: b is defined, tags: [imptag], become: true}
        """, **INCLUDED)
    imported = recipe.tasks[0]
    assert imported.include is None and imported.when == ()
    inner = imported.block[0]
    assert inner.when == ("b is defined",) and inner.tags == {"imptag", "own"} and inner.become is True


def test_include_tasks_keeps_its_keywords_and_apply_reaches_the_tasks(tmp_path):
    recipe = compiled(tmp_path, """\
        become: true
        tasks:
          - name: inc
            include_tasks: {file: inc.yml, apply: {tags: [applied], become: false}}
            when: a is defined
            tags: [inctag]
        """, **INCLUDED)
    include = recipe.tasks[0]
    assert include.include == "include_tasks"
    assert include.when == ("a is defined",) and include.tags == {"inctag"}    # checked once, by the include
    task = by_name(recipe)["included"]
    assert task.when == () and task.tags == {"applied", "own"}                  # not the include's
    assert task.become is False                                                 # apply's, over the play's


@pytest.mark.parametrize("written", [
    "include_tasks: inc.yml",
    "include_tasks: file=inc.yml",
    "include_tasks: {file: inc.yml}",
    "ansible.builtin.include_tasks: inc.yml",
    "ansible.builtin.import_tasks: inc.yml",
    "import_tasks: file=inc.yml",
])
def test_an_include_however_written_reads_the_file(tmp_path, written):
    recipe = compiled(tmp_path, f"tasks:\n  - {written}\n", **INCLUDED)
    assert [t.name for t in leaves(recipe.tasks)] == ["included"]


def test_include_spec_forms():
    assert include_spec("x.yml", None) == {"file": "x.yml"}
    assert include_spec("file=x.yml", None) == {"file": "x.yml"}
    assert include_spec({"_raw_params": "x.yml"}, None) == {"file": "x.yml"}
    assert include_spec(None, {"file": "x.yml", "apply": {"tags": "t"}}) == {"file": "x.yml", "apply": {"tags": "t"}}
    assert include_spec("{{ os }}.yml", None) == {"file": "{{ os }}.yml"}
    assert include_spec("name=web tasks_from=other", None) == {"name": "web", "tasks_from": "other"}


def test_a_templated_include_is_left_for_the_run(tmp_path):
    recipe = compiled(tmp_path, "tasks:\n  - include_tasks: \"{{ ansible_os_family }}.yml\"\n",
                      **{"Debian.yml": "- {name: deb, debug: {msg: d}}\n"})
    task = recipe.tasks[0]
    assert task.module == "include_tasks" and task.include is None and task.block == ()


def test_nested_includes_take_files_beside_the_including_file(tmp_path):
    recipe = compiled(tmp_path, "tasks:\n  - import_tasks: sub/a.yml\n",
                      **{"sub/a.yml": "- include_tasks: b.yml\n", "sub/b.yml": "- {name: deep, debug: {msg: b}}\n"})
    assert [t.name for t in leaves(recipe.tasks)] == ["deep"]


# -- roles ----------------------------------------------------------------------------------------

WEB = {"roles/web/tasks/main.yml": "- {name: webtask, debug: {msg: '{{ http_port }}'}}\n",
       "roles/web/tasks/other.yml": "- {name: othertask, debug: {msg: o}}\n",
       "roles/web/defaults/main.yml": "http_port: 80\n",
       "roles/web/handlers/main.yml": "- {name: reload web, include_tasks: reload.yml}\n",
       "roles/web/tasks/reload.yml": "- {name: reloading, debug: {msg: r}}\n"}


def test_role_entry_keywords_and_variables(tmp_path):
    recipe = compiled(tmp_path, """\
        roles:
          - {role: web, when: x is defined, tags: [w], become: true, http_port: 81, vars: {extra: 2}}
        """, **WEB)
    role = recipe.tasks[0]
    assert role.origin.role == "web" and dict(role.origin.role_vars) == {"http_port": 81, "extra": 2}
    task = by_name(recipe)["webtask"]
    assert task.when == ("x is defined",) and task.tags == {"w"} and task.become is True
    assert task.origin.role_dir == tmp_path / "roles/web"
    assert recipe.variables.role_defaults["http_port"] == 80


def test_role_reference_forms():
    where = Position("r.yml", 1, 1)
    assert role_reference("web", where).name == "web"
    entry = parse_yaml("{name: web, when: x, port: 1, vars: {v: 2}}", "r.yml")
    reference = role_reference(entry, where)
    assert (reference.name, dict(reference.params), dict(reference.keywords)) == ("web", {"port": 1, "v": 2},
                                                                                  {"when": "x"})
    assert role_reference(YMap({"when": "x"}), where) is None


def test_role_handlers_include_from_the_roles_tasks(tmp_path):
    recipe = compiled(tmp_path, "roles: [web]\n", **WEB)
    handler, = recipe.handlers
    assert handler.names == ("reload web",) and handler.task.origin.role == "web"
    assert [t.name for t in leaves(handler.task.block)] == ["reloading"]


def test_include_role_keeps_its_keywords_and_import_role_passes_them(tmp_path):
    recipe = compiled(tmp_path, """\
        tasks:
          - {include_role: {name: web, tasks_from: other}, tags: [ir], when: a is defined}
          - {ansible.builtin.import_role: {name: web}, tags: [im], when: b is defined}
        """, **WEB)
    included, imported = recipe.tasks
    assert included.include == "include_role" and included.tags == {"ir"} and included.when == ("a is defined",)
    other = leaves(included.block)[0]
    assert (other.name, other.tags, other.when, other.origin.role) == ("othertask", frozenset(), (), "web")
    web = leaves(imported.block)[0]
    assert (web.name, web.tags, web.when, web.origin.role) == ("webtask", {"im"}, ("b is defined",), "web")


DEPENDS = {"roles/web/tasks/main.yml": "- {name: webtask, debug: {msg: w}}\n",
           "roles/web/meta/main.yml": "dependencies: [base]\n",
           "roles/base/tasks/main.yml": "- {name: basetask, debug: {msg: '{{ base_var | default(0) }}'}}\n"}


def role_order(recipe: Recipe) -> list[tuple[str, dict]]:
    return [(t.origin.role, dict(t.origin.role_vars)) for t in recipe.tasks if t.origin.role]


def test_dependencies_run_first_and_once_with_the_same_variables(tmp_path):
    recipe = compiled(tmp_path, "roles: [web, {role: base, base_var: 1}]\n", **DEPENDS)
    # as ansible-playbook ran it: base, web, then base again (other variables)
    assert role_order(recipe) == [("base", {}), ("web", {}), ("base", {"base_var": 1})]


def test_a_dependency_already_run_is_not_run_again(tmp_path):
    recipe = compiled(tmp_path, "roles: [base, web]\n", **DEPENDS)
    assert role_order(recipe) == [("base", {}), ("web", {})]


def test_a_dependency_is_found_beside_the_role_that_names_it(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    for name, text in DEPENDS.items():
        path = tmp_path / "elsewhere" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "r.yml").write_text(HEAD + "roles: [web]\n")
    recipe = compile_recipe(tmp_path / "r.yml", CompileOptions(roles_path=(tmp_path / "elsewhere/roles",)))
    assert [role for role, _ in role_order(recipe)] == ["base", "web"]


def test_a_role_listed_twice_runs_once(tmp_path):
    recipe = compiled(tmp_path, "roles: [web, web]\n", **DEPENDS)
    assert role_order(recipe) == [("base", {}), ("web", {})]


def test_a_dependency_takes_its_roles_when_and_tags(tmp_path):
    recipe = compiled(tmp_path, "roles: [{role: web, tags: [w], when: false}]\n", **DEPENDS)
    base = by_name(recipe)["basetask"]
    assert base.tags == {"w"} and base.when == (False,)


# -- the play -------------------------------------------------------------------------------------

def test_sections_run_in_ansibles_order_with_handlers_flushed_between(tmp_path):
    recipe = compiled(tmp_path, """\
        become: true
        environment: {PROXY: p}
        pre_tasks: [{name: pre, debug: {msg: p}}]
        roles: [web]
        tasks: [{name: task, debug: {msg: t}}]
        post_tasks: [{name: post, debug: {msg: p}}]
        handlers: [{name: h, debug: {msg: h}}]
        """, **WEB)
    order = [t.name or (t.module, t.args) if t.module else f"role {t.origin.role}" for t in recipe.tasks]
    assert order == ["pre", ("meta", "flush_handlers"), "role web", "task", ("meta", "flush_handlers"), "post"]
    for task in leaves(recipe.tasks):
        if task.module != "meta":
            assert task.become is True and task.environment == ({"PROXY": "p"},), task.name
    assert {h.task.name: h.task.become for h in recipe.handlers} == {"reload web": True, "h": True}


def test_no_flush_without_pre_or_post_tasks(tmp_path):
    recipe = compiled(tmp_path, "tasks: [{name: task, debug: {msg: t}}]\n")
    assert [t.name for t in recipe.tasks] == ["task"]


def test_vars_files_are_a_layer_of_variables(tmp_path):
    recipe = compiled(tmp_path, "vars_files: [vars/common.yml, more.yml]\n"
                                "tasks:\n  - debug: {msg: '{{ a }} {{ b }}'}\n",
                      **{"vars/common.yml": "a: 1\nb: 1\n", "more.yml": "b: 2\n"})
    assert dict(recipe.variables.vars_files) == {"a": 1, "b": 2}


def test_fully_qualified_module_names_resolve_to_recipes_modules(tmp_path):
    recipe = compiled(tmp_path, """\
        tasks:
          - ansible.builtin.copy: {dest: /tmp/x, content: x}
          - ansible.legacy.command: echo
          - ansible.posix.sysctl: {name: vm.swappiness, value: "10", sysctl_file: /tmp/s}
          - community.general.pam_limits: {domain: "*", limit_type: soft, limit_item: nofile, value: 1}
        """)
    assert [t.module for t in recipe.tasks] == ["copy", "command", "sysctl", "pam_limits"]


def test_module_registry_canonical_names():
    load_plugins()
    assert TASK_MODULES.canonical("ansible.builtin.copy") == "copy"
    assert TASK_MODULES.canonical("copy") == "copy"
    assert TASK_MODULES.canonical("some.other.copy") is None
    assert TASK_MODULES.canonical("ansible.builtin.nothere") is None
    assert TASK_MODULES.canonical(3) is None
    assert "ansible.posix.sysctl" in TASK_MODULES
    assert TASK_MODULES.get("ansible.builtin.copy") is TASK_MODULES.get("copy")


def test_modules_recipe_does_not_run_are_notes_naming_the_task(tmp_path):
    recipe = compiled(tmp_path, """\
        tasks:
          - debug: {msg: hi}
          - {name: arch, community.general.pacman: {name: x}, when: ansible_os_family == 'Archlinux'}
          - {win_ping: {}, when: false}
        """)
    assert [(n.path, n.message.split(":")[0]) for n in recipe.notes] == \
        [("tasks[1]", "community.general.pacman"), ("tasks[2]", "win_ping")]
    assert recipe.tasks[1].module == "community.general.pacman"


def test_imported_handlers_and_handler_blocks_are_each_a_handler(tmp_path):
    """Ansible: each task of an imported handlers file, or of a block under handlers, is a handler notified by its
    own name; an include_tasks with a name is one handler."""
    (tmp_path / "more.yml").write_text("- name: one\n  debug: msg=one\n- name: two\n  listen: both\n  debug: msg=two\n")
    (tmp_path / "r.yml").write_text(
        "name: r\nsources:\n  box: {platform: ssh, ssh: {host: 127.0.0.1}}\n"
        "tasks:\n  - command: 'true'\n    notify: [one, both, three, whole]\n"
        "handlers:\n  - import_tasks: more.yml\n  - block:\n      - name: three\n        debug: msg=three\n"
        "  - name: whole\n    include_tasks: more.yml\n")
    handlers = compile_recipe(tmp_path / "r.yml").handlers
    assert [h.names for h in handlers] == [("one",), ("two", "both"), ("three",), ("whole",)]

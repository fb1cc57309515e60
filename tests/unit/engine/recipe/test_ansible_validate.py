"""What `recipe validate` accepts from Ansible content, and the real mistakes it still reports.

Each test writes what an Ansible user writes (a role, a task file, a play's
tasks) into tmp_path and compiles it as validate does. The accepted forms are
the idioms of published roles; the refused ones are mistakes Ansible itself
refuses (an unknown module, a missing role, a loop of includes or dependencies)
or fails on at run time (a name nothing defines, used unguarded).
"""
from __future__ import annotations

import datetime
import textwrap
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from engine.errors import RecipeError
from engine.recipe.compile import compile_recipe
from engine.recipe.model import Recipe
from engine.recipe.role_specs import _type_ok
from engine.recipe.template import Scope, evaluate, names_used, render

HEAD = "name: t\nsources: {one: {platform: ssh, ssh: {host: h}}}\n"


def write(tmp_path: Path, recipe: str, **files: str) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (tmp_path / "r.yml").write_text(HEAD + textwrap.dedent(recipe))
    return tmp_path / "r.yml"


def valid(tmp_path: Path, recipe: str, **files: str) -> Recipe:
    return compile_recipe(write(tmp_path, recipe, **files))


def problems(tmp_path: Path, recipe: str, **files: str) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        compile_recipe(write(tmp_path, recipe, **files))
    return [f"{p.message} (hint: {p.hint})" for p in caught.value.problems]


# -- a role as published -----------------------------------------------------------------------

NGINX_ROLE = {
    "roles/nginx/defaults/main.yml": """\
        nginx_port: 80
        nginx_enabled: false
        nginx_users: []
        nginx_packages: [nginx]
        """,
    "roles/nginx/meta/argument_specs.yml": """\
        argument_specs:
          main:
            options:
              nginx_port: {type: int}
              nginx_enabled: {type: bool}
              nginx_users: {type: list, elements: str}
              nginx_packages: {type: list}
        """,
    "roles/nginx/meta/main.yml": "galaxy_info: {author: someone}\ndependencies: []\n",
    "roles/nginx/vars/Debian.yml": "nginx_conf_dir: /etc/nginx\n",
    "roles/nginx/tasks/main.yml": """\
        - name: Include OS-specific variables
          include_vars: "{{ ansible_os_family }}.yml"
        - import_tasks: install.yml
        - name: Configure
          ansible.builtin.template:
            src: nginx.conf.j2
            dest: "{{ nginx_conf_dir }}/nginx.conf"
            mode: 0644
          notify: restart nginx
        - name: Arch only
          community.general.pacman: {name: nginx}
          when: ansible_os_family == 'Archlinux'
        """,
    "roles/nginx/tasks/install.yml": """\
        - name: Install
          ansible.builtin.apt: name={{ item }} state=present update_cache=yes
          loop: "{{ nginx_packages }}"
          become: yes
        """,
    "roles/nginx/templates/nginx.conf.j2": "listen {{ nginx_port }};\n",
    "roles/nginx/handlers/main.yml": """\
        - name: Restart nginx
          listen: restart nginx
          service: name=nginx state=restarted
        """,
}


def test_a_published_style_role_validates_with_ansibles_conversions(tmp_path):
    recipe = valid(tmp_path, """\
        roles:
          - role: nginx
            nginx_port: "8080"
            nginx_enabled: "yes"
            nginx_users: "a,b"
        """, **NGINX_ROLE)
    assert [n.message.split(":")[0] for n in recipe.notes] == ["community.general.pacman"]
    assert recipe.handlers[0].names == ("Restart nginx", "restart nginx")


def test_a_lookup_recipe_lacks_is_a_note_naming_its_task(tmp_path):
    recipe = valid(tmp_path, """\
        tasks:
          - debug: {msg: "{{ lookup('password', '/tmp/p length=8') }} {{ lookup('file', 'x') | default('') }}"}
          - command: "true"
            when: query('community.general.random_string') | length > 0
          - debug: {msg: "{{ lookup('ansible.builtin.varnames', '^a') }}"}
        """)
    assert [(n.path, n.message.split(":")[0]) for n in recipe.notes] == [
        ("tasks[0]", "recipe does not have the lookup 'password'"),
        ("tasks[1]", "recipe does not have the lookup 'community.general.random_string'")]


def test_a_task_failing_on_purpose_validates_with_a_note_and_the_same_mistake_elsewhere_is_an_error(tmp_path):
    # Ansible's own tests misuse a module under ignore_errors (or in a block with a rescue) to check its error
    recipe = valid(tmp_path, """\
        tasks:
          - file: {state: touch}
            ignore_errors: true
          - assert: {that: ["1 == 1", null]}
          - block:
              - copy: {src: not_there.txt, dest: /tmp/x}
            rescue:
              - debug: {msg: handled}
          - copy: {src: $HOME/.ssh/authorized_keys, dest: /tmp/keys, remote_src: true}
        """)
    assert [(n.path, n.message) for n in recipe.notes] == [
        ("tasks[0].file.path", "this task will fail: required key 'path' is missing; ignore_errors lets the build "
                               "go on"),
        ("tasks[1].assert", "an empty entry of that: fails the task when it runs (Task failed: Empty conditional "
                            "expressions are not allowed.)")]
    assert problems(tmp_path, """\
        tasks:
          - file: {state: touch}
          - copy: {src: not_there.txt, dest: /tmp/x}
        """) == ["required key 'path' is missing (hint: add it)",
                 f"file 'not_there.txt' not found (hint: looked in {tmp_path}/files, {tmp_path})"]


def test_a_local_file_a_task_on_this_machine_may_make_is_a_note(tmp_path):
    recipe = valid(tmp_path, """\
        tasks:
          - file: {path: made_here, state: directory}
            delegate_to: localhost
          - copy: {src: made_here, dest: /tmp/made}
        """)
    assert [(n.path, n.message) for n in recipe.notes] == [
        ("tasks[1].copy.src", "file 'made_here' not found now (a task delegated to localhost may make it first)")]


def test_a_roles_import_finds_a_task_file_beside_the_recipe_as_ansible(tmp_path):
    recipe = valid(tmp_path, "roles: [r]\n", **{
        "roles/r/tasks/main.yml": "- debug: {msg: hi}\n",
        "roles/r/handlers/main.yml": "- import_tasks: shared.yml\n",
        "shared.yml": "- name: restart it\n  debug: {msg: handled}\n"})
    assert "restart it" in repr(recipe.handlers)


# -- idioms that validate ---------------------------------------------------------------------

IDIOMS = {
    "a name using a variable set only when it runs": "- name: \"say {{ set_later }}\"\n  debug: {msg: hi}\n",
    "default filter": "- debug: {msg: \"{{ motd | default('hi') }} {{ cfg.sub.key | default('x') }}\"}\n",
    "is defined in the same template": "- debug: {msg: \"{{ x if x is defined else 1 }}\"}\n",
    "guarded in when": "- debug: {msg: hi}\n  when: opt is defined and opt | bool\n",
    "ignore_errors expects a failure": "- debug: {msg: '{{ nope.attr }}'}\n  ignore_errors: true\n",
    "when false never runs": "- debug: {msg: '{{ nope }}'}\n  when: false\n",
    "register then use": "- command: /bin/false\n  register: out\n  failed_when: out.rc not in [0, 1]\n"
                         "  changed_when: false\n- debug: {msg: '{{ out.stdout }}'}\n",
    "set_fact dict and key=value": "- set_fact: {a: 1}\n- set_fact: b=2 c={{ a }}\n- debug: {var: c}\n",
    "set_fact with templated names": "- set_fact: {\"{{ item.key }}\": \"{{ item.value }}\"}\n"
                                     "  loop: \"{{ {'dyn': 1} | dict2items }}\"\n- debug: {msg: '{{ dyn }}'}\n",
    "include_vars name": "- include_vars: {file: vars/extra.yml, name: extra}\n- debug: {msg: '{{ extra.a }}'}\n",
    "facts and magic variables": "- debug: {msg: \"{{ ansible_facts['os_family'] }} {{ ansible_distribution }} "
                                 "{{ hostvars[inventory_hostname]['x'] | default(1) }} {{ groups['all'] | length }} "
                                 "{{ play_hosts }} {{ ansible_env.HOME }} {{ playbook_dir }}\"}\n",
    "loop_control names": "- debug: {msg: '{{ pkg }} {{ idx }}'}\n  loop: [1, 2]\n"
                          "  loop_control: {loop_var: pkg, index_var: idx, label: '{{ pkg }}'}\n",
    "with_items and with_dict": "- debug: {msg: '{{ item }}'}\n  with_items: [1, 2]\n"
                                "- debug: {msg: '{{ item.key }}={{ item.value }}'}\n  with_dict: {a: 1}\n",
    "rescue sees the failure": "- block:\n    - command: /bin/false\n  rescue:\n"
                               "    - debug: {msg: '{{ ansible_failed_result.rc }} {{ ansible_failed_task.name }}'}\n",
    "until and retries": "- command: echo\n  register: r\n  until: r.rc == 0\n  retries: 3\n  delay: 1\n",
    "when as a list": "- debug: {msg: hi}\n  when:\n    - ansible_os_family == 'Debian'\n"
                      "    - ansible_distribution_major_version | int >= 11\n",
    "command with args and key=value": "- command: ls\n  args: {chdir: /tmp}\n"
                                       "- shell: echo a > /tmp/x creates=/tmp/x\n",
    "keywords of tasks": "- command: echo\n  become: true\n  become_user: postgres\n  become_flags: '-H'\n"
                         "  check_mode: no\n  diff: no\n  run_once: true\n  throttle: 1\n  any_errors_fatal: true\n"
                         "  delegate_to: localhost\n  tags: a,b\n"
                         "  environment: {http_proxy: \"{{ proxy | default('') }}\"}\n",
    "meta": "- meta: flush_handlers\n- meta: end_play\n",
    "a templated include picks its file at run time": "- include_tasks: \"{{ ansible_os_family }}.yml\"\n",
    "now and lookups": "- debug: {msg: \"{{ now(utc=true).year }} {{ lookup('env', 'HOME') }}\"}\n",
    "a task vars block": "- debug: {msg: '{{ local_v }}'}\n  vars: {local_v: 1}\n",
}


@pytest.mark.parametrize("name", list(IDIOMS))
def test_ansible_idioms_validate(tmp_path, name):
    valid(tmp_path, "tasks:\n" + textwrap.indent(IDIOMS[name], "  "),
          **{"vars/extra.yml": "a: 1\n", "Debian.yml": "[]\n"})


# Task keywords of Ansible's that recipe refuses: content using them does not validate.
@pytest.mark.parametrize("task", [
    "- command: sleep 1\n  async: 10\n  poll: 0\n",
    "- action: command echo hi\n",
    "- local_action: command echo hi\n",
    "- command: echo\n  connection: local\n",
    "- command: echo\n  module_defaults: {}\n",
])
def test_ansible_task_keywords_validate(tmp_path, task):
    valid(tmp_path, "tasks:\n" + textwrap.indent(task, "  "))


@pytest.mark.parametrize("task", [
    "- debug: msg=\"{{ opt_thing }}\"\n  when: opt_thing is defined\n",
    "- block:\n    - debug: {msg: '{{ opt_thing }}'}\n  when: opt_thing is defined\n",
])
def test_a_name_guarded_by_the_tasks_when_is_not_undefined(tmp_path, task):
    valid(tmp_path, "tasks:\n" + textwrap.indent(task, "  "))


# -- mistakes that are still errors --------------------------------------------------------------

def test_a_typo_in_a_module_name_says_what_was_meant(tmp_path):
    found = problems(tmp_path, "tasks:\n  - cpoy: {src: a, dest: /b}\n")
    assert found == ["unknown module or keyword 'cpoy' (hint: did you mean 'copy'?)"]


def test_a_typo_in_a_keyword_is_an_error_too(tmp_path):
    found = problems(tmp_path, "tasks:\n  - debug: {msg: x}\n    whne: true\n")
    assert len(found) == 1 and "'whne'" in found[0] and "when" in found[0]


@pytest.mark.parametrize("task", ["- debug: {msg: '{{ nope }}'}\n", "- debug: {msg: x}\n  when: nope == 1\n",
                                  "- debug: {msg: '{{ nope.attr }}'}\n"])
def test_an_undefined_name_used_unguarded_is_an_error(tmp_path, task):
    found = problems(tmp_path, "tasks:\n" + textwrap.indent(task, "  "))
    assert len(found) == 1 and found[0].startswith("undefined variable 'nope'")


def test_an_undefined_name_suggests_a_close_one(tmp_path):
    found = problems(tmp_path, "vars: {http_port: 80}\ntasks:\n  - debug: {msg: '{{ http_prot }}'}\n")
    assert found == ["undefined variable 'http_prot' (hint: did you mean 'http_port'?)"]


@pytest.mark.parametrize("recipe", ["roles: [nothere]\n", "tasks:\n  - include_role: {name: nothere}\n",
                                    "tasks:\n  - ansible.builtin.import_role: {name: nothere}\n"])
def test_a_missing_role_is_an_error_naming_where_it_was_looked_for(tmp_path, recipe):
    found = problems(tmp_path, recipe)
    assert len(found) == 1 and found[0].startswith("role 'nothere' not found (hint: looked in ")
    assert str(tmp_path / "roles") in found[0]


def test_a_dependency_loop_is_an_error(tmp_path):
    found = problems(tmp_path, "roles: [a]\n", **{"roles/a/meta/main.yml": "dependencies: [b]\n",
                                                   "roles/b/meta/main.yml": "dependencies: [{role: a}]\n"})
    assert found == ["role dependency loop: a -> b -> a (hint: a role may not depend on itself, directly or "
                     "through others)"]


def test_an_include_loop_is_an_error(tmp_path):
    found = problems(tmp_path, "tasks:\n  - import_tasks: x.yml\n",
                     **{"x.yml": "- include_tasks: y.yml\n", "y.yml": "- ansible.builtin.import_tasks: x.yml\n"})
    assert found == ["include loop: x.yml -> y.yml -> x.yml (hint: a file may not include itself, directly or "
                     "through others)"]


def test_a_missing_included_file_is_an_error(tmp_path):
    found = problems(tmp_path, "tasks:\n  - include_tasks: gone.yml\n")
    assert len(found) == 1 and found[0].startswith("included task file not found")


def test_a_missing_template_of_a_role_is_an_error(tmp_path):
    files = {**NGINX_ROLE}
    del files["roles/nginx/templates/nginx.conf.j2"]
    found = problems(tmp_path, "roles: [nginx]\n", **files)
    assert len(found) == 1 and found[0].startswith("template 'nginx.conf.j2' not found")


def test_a_wrong_role_argument_is_an_error(tmp_path):
    found = problems(tmp_path, "roles: [{role: nginx, nginx_port: eighty, nginx_prot: 1}]\n", **NGINX_ROLE)
    assert sorted(found) == sorted([
        "role 'nginx' argument 'nginx_port' must be of type int, got a string (hint: )",
        "role 'nginx' takes no argument 'nginx_prot' (hint: did you mean 'nginx_port'?)"])


# -- role argument specs: Ansible's own validator is the oracle ---------------------------------------

def ansible_accepts(value, kind: str) -> bool:
    return not ArgumentSpecValidator({"x": {"type": kind}}).validate({"x": value}).error_messages


TYPE_CASES = [
    ("8080", "int"), (8080.0, "int"), (1.5, "int"), ("0x10", "int"), (" 12 ", "int"), ("eighty", "int"),
    ("yes", "bool"), ("maybe", "bool"), ("1", "bool"), (0, "bool"),
    ("a,b", "list"), (1, "list"), ({"a": 1}, "list"),
    (5, "str"), (True, "str"), (1, "path"),
    ("1.5", "float"), ("x", "float"),
    ("a=1", "dict"), ('{"a": 1}', "dict"), ("x", "dict"), ([1], "dict"),
    ("anything", "raw"),
]


@pytest.mark.parametrize("value,kind", TYPE_CASES)
def test_role_argument_types_convert_as_ansibles(value, kind):
    assert _type_ok(value, kind) is ansible_accepts(value, kind)


@pytest.mark.parametrize("value,kind", [([1], "str"), (True, "int"), (1.0, "bool")])
def test_role_argument_types_ansible_converts_too(value, kind):
    assert _type_ok(value, kind) is ansible_accepts(value, kind) is True


# -- templates as Ansible renders them -------------------------------------------------------------

def test_one_expression_keeps_its_type_braces_inside_included():
    scope = Scope([{"n": 3}])
    assert render("{{ {'a': {'b': 1}} }}", scope) == {"a": {"b": 1}}
    assert render("{{ n + 1 }}", scope) == 4
    assert render("{{ [n] }}", scope) == [3]
    assert render("{{ n }}{{ n }}", scope) == "33"          # two expressions: text


def test_an_attribute_of_an_undefined_name_is_undefined_not_an_error():
    scope = Scope([{}])
    assert evaluate("x.y is defined", scope) is False
    assert evaluate("x['y'].z is undefined", scope) is True
    assert render("{{ x.y | default(1) }}", scope) == 1
    assert names_used("{{ x.y | default(1) }}") == set()
    assert names_used("{{ x.y }}") == {"x"}


def test_now_as_ansibles():
    scope = Scope([{}])
    assert isinstance(render("{{ now() }}", scope), datetime.datetime)
    assert render("{{ now(utc=True).tzinfo is not none }}", scope) is True
    assert render("{{ now(fmt='%Y') }}", scope) == str(datetime.datetime.now().year)


def test_a_templated_role_name_is_read_from_its_loops_items(tmp_path):
    roles = {"roles/a/tasks/main.yml": "- debug: msg=a\n", "roles/b/tasks/main.yml": "- debug: msg=b\n"}
    looped = "tasks:\n  - include_role: {name: \"{{ item }}\"}\n    loop: [a, b]\n"
    included = valid(tmp_path, looped, **roles).tasks[0]
    assert included.role_choice == "{{ item }}" and [c.role_choice for c in included.block] == ["a", "b"]
    missing = "tasks:\n  - include_role: {name: \"role-{{ r }}\"}\n    loop: [c]\n    loop_control: {loop_var: r}\n"
    assert problems(tmp_path, missing, **roles)[0].startswith("role 'role-c' not found")


@pytest.mark.parametrize("recipe", ["tasks:\n  - include_role: {name: \"{{ which }}\"}\n",
                                    "tasks:\n  - include_role: {name: \"{{ item }}\"}\n    loop: \"{{ names }}\"\n",
                                    "tasks:\n  - import_role: {name: \"{{ item }}\"}\n    loop: [a]\n"])
def test_a_role_name_known_only_at_run_time_is_an_error(tmp_path, recipe):
    found = problems(tmp_path, recipe + "vars: {which: a, names: [a]}\n", **{"roles/a/tasks/main.yml": "- ping:\n"})
    assert len(found) == 1 and "takes a fixed role name" in found[0] and "loop" in found[0]


COLLECTION_ROLE = {"tasks/main.yml": "- command: echo\n  notify: 'r : topic'\n",
                   "handlers/main.yml": "- name: h\n  debug: msg=h\n  listen: topic\n"}


def test_a_collections_role_is_found_beside_the_recipe_and_its_handlers_answer_to_both_role_names(tmp_path):
    files = {f"collections/ansible_collections/ns/col/roles/r/{k}": v for k, v in COLLECTION_ROLE.items()}
    recipe = valid(tmp_path, "roles: [ns.col.r]\ntasks:\n  - command: echo\n    notify: 'ns.col.r : h'\n", **files)
    origin = recipe.handlers[0].task.origin
    assert (origin.role, origin.collection, origin.role_fqcn) == ("r", "ns.col", "ns.col.r")
    assert origin.role_dir == tmp_path / "collections/ansible_collections/ns/col/roles/r"


def test_a_collections_role_is_found_on_ansible_collections_path(tmp_path, monkeypatch):
    installed = tmp_path / "elsewhere"
    for name, text in COLLECTION_ROLE.items():
        path = installed / "ansible_collections/ns/col/roles/r" / name
        path.parent.mkdir(parents=True)
        path.write_text(text)
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(installed / "ansible_collections"))
    (tmp_path / "r").mkdir()
    assert valid(tmp_path / "r", "roles: [ns.col.r]\n").handlers[0].task.origin.collection == "ns.col"
    monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATH")
    found = problems(tmp_path / "r", "roles: [ns.col.r]\n")
    assert found[0].startswith("role 'ns.col.r' not found") and "ansible_collections/ns/col/roles" in found[0]


def test_include_role_picks_the_role_files_its_from_options_name(tmp_path):
    role = {"roles/r/tasks/main.yml": "- debug: msg=main\n", "roles/r/tasks/other.yml": "- debug: msg=other\n",
            "roles/r/handlers/main.yml": "- name: h\n  debug: msg=main\n",
            "roles/r/handlers/alternate.yml": "- name: h\n  debug: msg=alternate\n",
            "roles/r/vars/more.yml": "picked: more\n", "roles/r/defaults/main.yml": "picked: default\n"}
    recipe = valid(tmp_path, "tasks:\n  - include_role: {name: r, tasks_from: other, handlers_from: alternate.yml,"
                             " vars_from: more}\n", **role)
    assert [h.task.args for h in recipe.handlers] == [{"msg": "alternate"}]
    assert recipe.handlers[0].task.origin.role_vars["picked"] == "more"
    role_block = recipe.tasks[0].block[0]
    assert [t.args for t in role_block.block] == [{"msg": "other"}]
    missing = problems(tmp_path, "tasks:\n  - include_role: {name: r, handlers_from: nothere}\n", **role)
    assert missing == ["role 'r' has no handlers/nothere.yml (hint: handlers_from names a file in the role's "
                       "handlers/ folder)"]
    templated = problems(tmp_path, "tasks:\n  - include_role: {name: r, tasks_from: '{{ x }}'}\nvars: {x: a}\n", **role)
    assert templated[0].startswith("tasks_from takes a fixed file name")

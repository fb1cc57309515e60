"""Layer keys of real compiled recipes: what changes a task's key, what does not, and what is never cached."""
from __future__ import annotations

from pathlib import Path

from engine.build.layer_keys import KeyInputs, task_keys
from engine.recipe.compile import CompileOptions, compile_recipe

TASKS = """\
  - name: one
    shell: echo one > /etc/one
  - name: two
    copy: {src: motd, dest: /etc/motd}
  - name: three
    shell: echo "{{ greeting }}" > /etc/greeting
  - name: four
    shell: echo "{{ token }}" > /root/token
  - name: five
    shell: echo five
"""

RECIPE = """\
name: web
vars:
  who: world
  greeting: "hello {{ who }}"
secrets: [token]
sources:
  box:
    platform: ssh
    ssh: {host: 127.0.0.1}
tasks:
"""


def keys(folder: Path, tasks: str = TASKS, token: str = "s3cret", head: str = RECIPE, hmac_key: bytes = b"k" * 32,
         first: str = "root", host: tuple[str, str] = ("web", "box")) -> list:
    (folder / "files").mkdir(exist_ok=True)
    if not (folder / "files" / "motd").exists():
        (folder / "files" / "motd").write_text("welcome\n")
    (folder / "web.yml").write_text(head + tasks)
    recipe = compile_recipe(folder / "web.yml", CompileOptions(var_assignments=(f"token={token}",)))
    build = recipe.builds[0].info.as_vars()
    return [each.key for each in task_keys(first, recipe.tasks, KeyInputs(recipe, build, hmac_key, host))]


def changed(before: list, after: list) -> list[int]:
    return [index + 1 for index, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]


def test_the_same_recipe_gives_the_same_keys_in_every_run(tmp_path):
    first = keys(tmp_path)
    assert all(first) and len(set(first)) == 5
    assert keys(tmp_path) == first


def test_an_edited_task_changes_its_key_and_every_one_after_it(tmp_path):
    before = keys(tmp_path)
    assert changed(before, keys(tmp_path, TASKS.replace("echo five", "echo 5"))) == [5]
    assert changed(before, keys(tmp_path, TASKS.replace("echo one", "echo 1"))) == [1, 2, 3, 4, 5]
    assert changed(before, keys(tmp_path, first="another base")) == [1, 2, 3, 4, 5]


def test_moving_a_task_down_its_file_changes_nothing(tmp_path):
    before = keys(tmp_path)
    assert keys(tmp_path, head=RECIPE.replace("tasks:\n", "# the tasks\n\ntasks:\n")) == before


def test_a_file_a_copy_reads_is_part_of_its_key(tmp_path):
    before = keys(tmp_path)
    (tmp_path / "files" / "motd").write_text("welcome back\n")
    assert changed(before, keys(tmp_path)) == [2, 3, 4, 5]


def test_a_variable_read_through_another_is_part_of_the_key(tmp_path):
    before = keys(tmp_path)
    assert changed(before, keys(tmp_path, head=RECIPE.replace("who: world", "who: you"))) == [3, 4, 5]


def test_a_secret_changes_the_key_only_through_this_caches_hmac(tmp_path):
    before = keys(tmp_path)
    assert changed(before, keys(tmp_path, token="other")) == [4, 5]
    assert changed(before, keys(tmp_path, hmac_key=b"x" * 32)) == [4, 5]


def test_what_differs_between_runs_is_not_cached_nor_anything_after_it(tmp_path):
    for text in ('echo "{{ build.id }}"', "echo {{ build['timestamp'] }}", "echo {{ now() }}",
                 "echo {{ lookup('env', 'HOME') }}", "echo {{ ansible_facts.date_time.epoch }}"):
        got = keys(tmp_path, TASKS.replace('echo "{{ greeting }}"', text))
        assert got[:2] == keys(tmp_path)[:2] and got[2:] == [None, None, None], text


def test_the_builds_recipe_and_source_names_are_stable(tmp_path):
    got = keys(tmp_path, TASKS.replace('echo "{{ greeting }}"', "echo {{ build.recipe }}-{{ build.source }}"))
    assert all(got)


def test_a_path_on_the_machine_is_not_read_on_the_host_and_an_absolute_src_is(tmp_path):
    outside = tmp_path / "elsewhere.conf"
    outside.write_text("a\n")
    tasks = TASKS.replace("src: motd", f"src: {outside}")
    before = keys(tmp_path, tasks)
    outside.write_text("b\n")
    assert changed(before, keys(tmp_path, tasks)) == [2, 3, 4, 5]
    host_file = tmp_path / "host-only"        # named as the machine's dest: never read here
    host_file.write_text("1")
    tasks = TASKS.replace("dest: /etc/motd", f"dest: {host_file}")
    before = keys(tmp_path, tasks)
    host_file.write_text("2")
    assert keys(tmp_path, tasks) == before


def test_cache_false_stops_the_layers_at_its_task(tmp_path):
    got = keys(tmp_path, TASKS.replace("  - name: three\n", "  - name: three\n    cache: false\n"))
    assert got[:2] == keys(tmp_path)[:2] and got[2:] == [None, None, None]
    inside = TASKS.replace("  - name: five\n    shell: echo five\n",
                           "  - block:\n      - shell: echo five\n        cache: false\n")
    assert keys(tmp_path, inside)[4] is None and keys(tmp_path, inside)[3] == keys(tmp_path)[3]


def test_the_machines_names_are_in_the_keys_of_the_tasks_that_read_them_only(tmp_path):
    tasks = TASKS.replace("echo five", "echo {{ ansible_hostname }}")
    before = keys(tmp_path, tasks)
    assert changed(before, keys(tmp_path, tasks, host=("api", "box"))) == [5]
    assert changed(before, keys(tmp_path, tasks, host=("web", "other"))) == [5]
    by_inventory = TASKS.replace("echo five", "echo {{ inventory_hostname }}")
    assert changed(keys(tmp_path, by_inventory), keys(tmp_path, by_inventory, host=("web", "other"))) == [5]
    assert keys(tmp_path, host=("api", "other")) == keys(tmp_path)


def test_facts_each_build_gets_afresh_are_not_cached(tmp_path):
    for fact in ("ansible_date_time.epoch", "ansible_machine_id", "ansible_ssh_host_key_ed25519_public", "ansible_facts.machine_id"):
        found = keys(tmp_path, TASKS.replace("echo five", "echo {{ %s }}" % fact))
        assert found[:4] == keys(tmp_path)[:4] and found[4] is None, fact

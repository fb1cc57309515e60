"""chef_solo against a stand-in chef-solo (tests/data/stand_ins/chef-solo, real Ruby: see its README), run
through the harness's local shell. Chef itself cannot be installed here, so no real Chef run is tested: these
tests check what the task uploads and writes (solo.rb is evaluated by Ruby, node.json parsed by Ruby's JSON),
how it reads Chef's answer, when it installs, and that it leaves nothing behind."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import voluptuous as vol

from engine.errors import BuildError
from engine.registry import TASK_MODULES

STAND_INS = Path(__file__).resolve().parents[4] / "tests" / "data" / "stand_ins"
SECRET = "s3cr3t-attribute"
RECIPE = """file node['path'] do
  content "#{node.chef_environment}|#{node['greeting']}|#{data_bag_item('keys', 'api')['token']}"
end
"""
ODD = "it's \"odd\" \\ #{not_interpolated}"      # quotes, a backslash and Ruby's interpolation


@pytest.fixture(autouse=True)
def ruby_installed():
    if shutil.which("ruby") is None:
        pytest.fail("ruby is not installed: make test installs Debian's puppet-agent, which brings it (TEST_DEBS)")
    if shutil.which("chef-solo") is not None:
        pytest.fail("a real chef-solo is on PATH: these tests expect only the stand-in")


@pytest.fixture
def guest_tmp(tmp_path, monkeypatch) -> Path:
    """The target's temporary directory, its name as awkward as names get: the work directory is made here."""
    path = tmp_path / f"guest {ODD}"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    return path


@pytest.fixture
def chef_on_path(monkeypatch) -> None:
    monkeypatch.setenv("PATH", f"{STAND_INS}:{os.environ['PATH']}")


@pytest.fixture
def repo(h, target) -> dict:
    """A cookbook reached through a role, with an environment's attribute and a data bag's item."""
    h.file("files", "cookbooks/web/recipes/default.rb", RECIPE)
    h.file("files", "roles/webserver.json", '{"name": "webserver", "run_list": ["recipe[web]"]}')
    h.file("files", "environments/staging.json", '{"default_attributes": {"greeting": "from the environment"}}')
    h.file("files", "data_bags/keys/api.json", f'{{"id": "api", "token": "{SECRET}"}}')
    return {"cookbooks": ["cookbooks"], "roles": "roles", "environments": "environments", "data_bags": "data_bags",
            "environment": "staging", "run_list": ["role[webserver]"], "json": {"path": str(target / "out")}}


def test_converges_then_finds_nothing_to_change(h, target, repo, guest_tmp, chef_on_path):
    first = h.run("chef_solo", repo)
    assert first.status == "changed" and first.msg == "1/1 resources updated", first.stderr
    assert (target / "out").read_text() == f"staging|from the environment|{SECRET}"
    assert ("stdout", "Chef Infra Client finished, 1/1 resources updated in 01 seconds") in h.output
    assert os.listdir(guest_tmp) == [] and first.data["installed"] is None
    second = h.run("chef_solo", repo)
    assert second.status == "ok" and second.msg == "0/1 resources updated"
    assert os.listdir(guest_tmp) == []       # the file_cache_path chef-solo made in it too


def test_node_attributes_never_reach_a_command_line(h, repo, chef_on_path):
    result = h.run("chef_solo", {**repo, "json": {**repo["json"], "greeting": SECRET}})
    assert result.changed and all(SECRET not in script for script in h.connection.scripts)


def test_check_mode_runs_why_run(h, target, repo, guest_tmp, chef_on_path):
    would = h.run("chef_solo", repo, check=True)
    assert would.status == "changed" and would.msg == "1/1 resources would be updated (why-run)"
    assert not (target / "out").exists() and os.listdir(guest_tmp) == []
    h.run("chef_solo", repo)
    assert h.run("chef_solo", repo, check=True).status == "ok"


def test_a_missing_recipe_fails_quoting_the_fatal_line(h, repo, guest_tmp, chef_on_path):
    result = h.run("chef_solo", {**repo, "run_list": ["recipe[web]", "recipe[web::nope]"]})
    assert result.failed and result.rc == 1
    assert "FATAL: Chef::Exceptions::RecipeNotFound: could not find recipe nope for cookbook web" in result.msg
    assert os.listdir(guest_tmp) == []


def test_quotes_and_backslashes_round_trip(h, target, repo, guest_tmp, chef_on_path):
    """An environment name in solo.rb, an attribute (a path) in node.json and the work directory's own name
    (see guest_tmp) with quotes, a backslash and #{...}: Ruby reads each as written."""
    odd_path = target / ODD
    h.file("files", f"environments/{ODD}.json", '{"default_attributes": {"greeting": "odd"}}')
    result = h.run("chef_solo", {**repo, "environment": ODD, "json": {"path": str(odd_path)}})
    assert result.changed, result.stderr
    assert odd_path.read_text() == f"{ODD}|odd|{SECRET}" and os.listdir(guest_tmp) == []


def test_chef_license_is_given_as_flag_and_environment(h, repo, chef_on_path):
    result = h.run("chef_solo", {**repo, "chef_license": "accept"})
    # the stand-in fails unless CHEF_LICENSE and --chef-license agree
    assert result.changed and "+ 1 product license accepted." in result.stdout


def test_install_command_does_not_run_when_chef_solo_is_there(h, repo, tmp_path, chef_on_path):
    marker = tmp_path / "installed"
    result = h.run("chef_solo", {**repo, "install_command": f"touch {marker}"})
    assert result.changed and result.data["installed"] is None and not marker.exists()


def test_install_command_runs_when_chef_solo_is_missing(h, target, repo, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    args = {**repo, "install_command": f"ln -s {STAND_INS / 'chef-solo'} {bin_dir}/chef-solo"}
    would = h.run("chef_solo", args, check=True)
    assert would.msg == "install_command would run, then chef-solo (check mode)" and not os.listdir(bin_dir)
    result = h.run("chef_solo", args)
    assert result.changed and result.msg == "ran install_command; 1/1 resources updated"
    assert result.data["installed"] == "install_command" and (target / "out").exists()


def test_a_failing_install_command_fails_the_task(h, repo):
    with pytest.raises(BuildError, match="install_command failed with rc 3"):
        h.run("chef_solo", {**repo, "install_command": "echo no network >&2; exit 3"})


def test_an_install_command_that_installs_no_chef_fails_the_task(h, repo):
    with pytest.raises(BuildError, match="install_command did not provide chef-solo or cinc-solo on the target"):
        h.run("chef_solo", {**repo, "install_command": "true"})


def test_no_chef_and_no_install_command_fails_with_a_hint(h, repo):
    with pytest.raises(BuildError) as failed:
        h.run("chef_solo", repo)
    assert failed.value.message == "neither chef-solo nor cinc-solo is installed on the target"
    assert "Chef is not packaged in Debian 12: give install_command" in failed.value.hint


def test_options_are_checked():
    params = TASK_MODULES.get("chef_solo").params
    with pytest.raises(vol.Invalid, match="the run list is given twice"):
        params({"run_list": ["recipe[a]"], "json": {"run_list": ["recipe[b]"]}})
    with pytest.raises(vol.Invalid):
        params({"chef_license": "yes"})
    with pytest.raises(vol.Invalid):
        params({"cookbooks": "cookbooks"})          # a list of directories

"""Variables, locals, variable files and -var: values as Packer takes them, secrets never written, environment
reads kept as reads of the same environment variable."""
from __future__ import annotations

import pytest

from engine.cli.main import main
from engine.recipe.template import Scope

from .conftest import valid

FOLDER = {
    "web/variables.pkr.hcl": """\
        variable "region" {
          type    = string
          default = "eu-west-1"
        }
        variable "cpus" {
          type    = number
          default = 1
        }
        variable "image-name" { default = "web" }
        variable "token" {
          type      = string
          sensitive = true
          default   = "s3cr3t-default"
        }
        variable "home" { default = env("HOME_FOR_TEST") }
        locals {
          label = "${var.image-name}-${var.region}"
        }
        """,
    "web/build.pkr.hcl": """\
        source "qemu" "vm" {
          iso_url      = "/srv/images/base.qcow2"
          disk_image   = true
          cpus         = var.cpus
          ssh_username = "debian"
        }
        build {
          sources = ["source.qemu.vm"]
          provisioner "shell" {
            inline           = ["echo ${local.label} ${var.home}"]
            environment_vars = ["TOKEN=${var.token}"]
          }
        }
        """,
    "web/b.auto.pkrvars.hcl": 'region = "us-east-1"\n',
    "web/a.auto.pkrvars.hcl": 'region = "ap-south-1"\ncpus = 2\n',
    "prod.pkrvars.hcl": 'cpus = 3\n',
}


def test_a_folder_with_its_auto_variable_files_then_var_file_then_var(packer):
    imported = packer(FOLDER, "web", "-var-file", "prod.pkrvars.hcl", "-var", "cpus=4")
    assert imported.code == 0, imported.err
    variables = imported.document["vars"]
    # a.auto then b.auto (alphabetical), then -var-file, then -var: Packer's order, the last one wins
    assert variables["region"] == "us-east-1" and variables["cpus"] == 4
    assert "note: the value given in web/b.auto.pkrvars.hcl:1" in imported.comments
    assert variables["image_name"] == "web" and "note: Packer's var.image-name" in imported.comments
    assert variables["label"] == "{{ image_name }}-{{ region }}"
    recipe = valid(imported)
    assert recipe.builds[0].source.config.cpus == 4
    assert imported.document["name"] == "web"


def test_a_sensitive_default_is_never_written_nor_shown(packer, monkeypatch):
    imported = packer(FOLDER, "web")
    assert "s3cr3t-default" not in imported.text + imported.err
    assert imported.document["secrets"] == ["token"] and "token" not in imported.document["vars"]
    assert "give it with --var token=... or the environment variable RECIPE_VAR_token" in imported.comments
    assert "secrets (token): give their values to `recipe run` with --var NAME=..." in imported.err
    recipe = valid(imported)                        # the task that uses it validates: a secret is a known name
    assert "token" in recipe.secrets
    monkeypatch.setenv("RECIPE_VAR_token", "from-the-environment")
    assert imported.recipe().variables.env["token"] == "from-the-environment"


def test_a_sensitive_value_given_with_var_is_not_written_either(packer):
    imported = packer(FOLDER, "web", "-var", "token=given-on-the-command-line")
    assert imported.code == 0, imported.err
    assert "given-on-the-command-line" not in imported.text + imported.err
    assert "the template's value, from -var, is left out" in imported.comments


def test_env_reads_the_same_environment_variable(packer, monkeypatch):
    imported = packer(FOLDER, "web")
    assert imported.document["vars"]["home"] == "{{ lookup('env', 'HOME_FOR_TEST') }}"
    assert "read from the environment variable HOME_FOR_TEST when the recipe is rendered" in imported.comments
    assert "RECIPE_VAR_home overrides it" in imported.comments
    monkeypatch.setenv("HOME_FOR_TEST", "/home/tester")
    recipe = valid(imported)
    assert Scope(recipe.variables.layers(), {})["home"] == "/home/tester"


def test_json_env_and_user_variables(packer, monkeypatch):
    template = """\
        {
          "variables": {"user": "{{env `BUILD_USER`}}", "motd": "built by {{user `user`}}"},
          "builders": [{"type": "qemu", "iso_url": "/srv/images/base.qcow2", "disk_image": true,
                        "ssh_username": "{{user `user`}}"}],
          "provisioners": [{"type": "shell", "inline": ["echo '{{user `motd`}}' > /etc/motd"]}]
        }
        """
    monkeypatch.setenv("BUILD_USER", "debian")
    imported = packer({"web.json": template}, "web.json")
    assert imported.code == 0, imported.err
    assert imported.document["vars"] == {"user": "{{ lookup('env', 'BUILD_USER') }}", "motd": "built by {{ user }}"}
    recipe = valid(imported)
    assert recipe.builds[0].source.ssh.user == "debian"


def test_a_required_variable_without_a_value_says_how_to_give_it(packer):
    template = """\
        variable "region" { type = string }
        source "amazon-ebs" "aws" {
          region       = var.region
          source_ami   = "ami-0123456789abcdef0"
          ssh_username = "admin"
        }
        build { sources = ["source.amazon-ebs.aws"] }
        """
    imported = packer({"aws.pkr.hcl": template}, "aws.pkr.hcl")
    # the recipe is written, but cannot validate until region is given: the command says so, and why
    assert imported.code == 3
    assert "region has no default in the template: give it with --var region=..." in imported.comments
    assert "recipes/web.yml does not validate yet" in imported.err
    assert "\n  recipes/web.yml:11:13: sources.aws.region: undefined variable 'region'" in imported.err
    assert main(["validate", str(imported.path), "--var", "region=eu-west-1"]) == 0


def test_var_for_an_undeclared_variable_is_an_invalid_template(packer):
    imported = packer(FOLDER, "web", "-var", "regoin=eu-west-1")
    assert imported.code == 2
    assert "-var regoin=...: no variable 'regoin' is declared in the template" in imported.err
    assert not imported.path.exists()


@pytest.mark.parametrize("value, expected", [("5", 5), ("[1, 2]", [1, 2])])
def test_var_values_are_typed_by_the_variable(packer, value, expected):
    text = FOLDER["web/variables.pkr.hcl"].replace('type    = number\n          default = 1',
                                                    'type    = any\n          default = 1')
    imported = packer({**FOLDER, "web/variables.pkr.hcl": text}, "web", "-var", f"cpus={value}")
    assert imported.document["vars"]["cpus"] == expected
    assert packer(FOLDER, "web", "-var", "region=5").document["vars"]["region"] == "5"   # a string stays text

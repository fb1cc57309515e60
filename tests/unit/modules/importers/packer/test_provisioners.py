"""Provisioners as tasks, in HCL2 and JSON templates: imported, validated by the real `recipe validate`, and the
compiled tasks hold the module, options and keywords the provisioner asked for."""
from __future__ import annotations

import json

import pytest

from .conftest import valid

FILES = {"scripts/setup.sh": "#!/bin/sh\necho setup\n", "scripts/more.sh": "#!/bin/sh\necho more\n",
         "files/motd": "hello\n", "files/site/index.html": "<p>hi</p>\n"}
HCL_SOURCES = """\
variable "greeting" { default = "hello" }
source "qemu" "vm" {
  iso_url      = "/srv/images/base.qcow2"
  disk_image   = true
  ssh_username = "debian"
}
source "qemu" "other" {
  iso_url      = "/srv/images/base.qcow2"
  disk_image   = true
  ssh_username = "debian"
}
"""


def hcl(provisioners: str) -> str:
    return HCL_SOURCES + 'build {\n  sources = ["source.qemu.vm", "source.qemu.other"]\n' + provisioners + "\n}\n"


def legacy(*provisioners: dict) -> str:
    base = {"type": "qemu", "iso_url": "/srv/images/base.qcow2", "disk_image": True, "ssh_username": "debian"}
    return json.dumps({"variables": {"greeting": "hello"},
                       "builders": [{**base, "name": "vm"}, {**base, "name": "other"}],
                       "provisioners": list(provisioners)}, indent=2)


SHELL_HCL = hcl("""\
  provisioner "shell" {
    inline           = ["echo ${var.greeting} > /tmp/greeting", "echo $${HOME} $${#FOO} done"]
    environment_vars = ["FOO=bar", "GREETING=${var.greeting}"]
    execute_command  = "echo 'packer' | sudo -S -E sh -c '{{ .Vars }} {{ .Path }}'"
  }
  provisioner "shell" {
    scripts           = ["scripts/setup.sh", "scripts/more.sh"]
    expect_disconnect = true
    only              = ["qemu.vm"]
  }
""")
SHELL_JSON = legacy(
    {"type": "shell", "inline": ["echo {{user `greeting`}} > /tmp/greeting", "echo ${HOME} ${#FOO} done"],
     "environment_vars": ["FOO=bar", "GREETING={{user `greeting`}}"],
     "execute_command": "echo 'packer' | sudo -S -E sh -c '{{ .Vars }} {{ .Path }}'"},
    {"type": "shell", "scripts": ["scripts/setup.sh", "scripts/more.sh"], "expect_disconnect": True,
     "only": ["vm"]})


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", SHELL_HCL), ("web.json", SHELL_JSON)])
def test_shell_inline_and_scripts(packer, name, text):
    imported = packer({**FILES, name: text}, name)
    assert imported.code == 0, imported.err
    tasks = valid(imported).tasks
    inline, first, second = tasks
    assert inline.module == "shell"
    # Packer runs inline lines under /bin/sh -e; the shell's own ${...} stays the shell's (Jinja delimiters escaped)
    assert inline.args == {"cmd": "set -e\necho {{ greeting }} > /tmp/greeting\necho ${HOME} ${{ '{#' }}FOO} done\n"}
    assert inline.become is True                             # execute_command ran it through sudo
    assert dict(inline.environment[0]) == {"FOO": "bar", "GREETING": "{{ greeting }}"}
    assert "note: execute_command: recipe runs the script with its #! interpreter" in imported.comments
    assert [t.module for t in (first, second)] == ["script", "script"]
    assert [t.args for t in (first, second)] == [{"src": "../scripts/setup.sh"}, {"src": "../scripts/more.sh"}]
    assert first.only == ("vm",) and inline.only == ()
    assert "'lost while the command ran' not in (result.msg | default(''))" in first.failed_when


def test_an_unusual_execute_command_is_a_leftover(packer):
    text = hcl('  provisioner "shell" {\n    inline = ["true"]\n'
               '    execute_command = "cd /opt && {{ .Vars }} bash -l {{ .Path }}"\n  }')
    imported = packer({"web.pkr.hcl": text}, "web.pkr.hcl")
    assert imported.code == 3
    assert "web.pkr.hcl:16:5: execute_command: recipe runs a script itself" in imported.err
    assert valid(imported).tasks[0].module == "shell"


FILE_HCL = hcl("""\
  provisioner "file" {
    source      = "files/motd"
    destination = "/tmp/motd"
  }
  provisioner "file" {
    source      = "${path.root}/files/site/"
    destination = "/var/www"
  }
  provisioner "file" {
    content     = "built by ${var.greeting}"
    destination = "/etc/built-by"
  }
""")
FILE_JSON = legacy({"type": "file", "source": "files/motd", "destination": "/tmp/motd"},
                   {"type": "file", "source": "{{template_dir}}/files/site/", "destination": "/var/www"},
                   {"type": "file", "content": "built by {{user `greeting`}}", "destination": "/etc/built-by"})


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", FILE_HCL), ("web.json", FILE_JSON)])
def test_file_uploads_are_copies_named_from_the_recipe(packer, name, text):
    imported = packer({**FILES, name: text}, name)
    assert imported.code == 0, imported.err
    tasks = valid(imported).tasks
    assert [t.module for t in tasks] == ["copy", "copy", "copy"]
    assert tasks[0].args == {"src": "../files/motd", "dest": "/tmp/motd"}
    assert tasks[1].args == {"src": "../files/site/", "dest": "/var/www"}     # the trailing slash kept: contents
    assert tasks[2].args == {"content": "built by {{ greeting }}", "dest": "/etc/built-by"}
    assert "not found" not in imported.validate()[1]                          # validate found the files


LOCAL_HCL = hcl("""\
  provisioner "shell-local" {
    inline = ["echo ${var.greeting} > local.txt"]
  }
""")
LOCAL_JSON = legacy({"type": "shell-local", "inline": ["echo {{user `greeting`}} > local.txt"]})


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", LOCAL_HCL), ("web.json", LOCAL_JSON)])
def test_shell_local_runs_on_the_build_host(packer, name, text):
    imported = packer({name: text}, name)
    assert imported.code == 0, imported.err
    (task,) = valid(imported).tasks
    assert task.module == "shell" and task.delegate_to == "localhost"
    assert task.args == {"cmd": "set -e\necho {{ greeting }} > local.txt\n"}


KEYWORDS_HCL = hcl("""\
  provisioner "shell" {
    inline       = ["apt-get update"]
    pause_before = "30s"
    max_retries  = 3
    timeout      = "5m"
    except       = ["qemu.other"]
  }
""")
KEYWORDS_JSON = legacy({"type": "shell", "inline": ["apt-get update"], "pause_before": "30s", "max_retries": 3,
                        "timeout": "5m", "except": ["other"]})


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", KEYWORDS_HCL), ("web.json", KEYWORDS_JSON)])
def test_pause_before_retries_timeout_and_except(packer, name, text):
    imported = packer({name: text}, name)
    assert imported.code == 0, imported.err
    pause, task = valid(imported).tasks
    assert pause.module == "pause" and pause.args == {"seconds": 30} and pause.except_ == ("other",)
    assert task.module == "shell" and task.except_ == ("other",) and task.only == ()
    assert (task.retries, task.until, task.timeout) == (3, "result is succeeded", 300)


ANSIBLE_HCL = hcl("""\
  provisioner "ansible" {
    playbook_file    = "ansible/site.yml"
    roles_path       = "ansible/roles"
    galaxy_file      = "ansible/requirements.yml"
    groups           = ["web"]
    extra_arguments  = ["--extra-vars", "greeting=${var.greeting} port=80", "--tags", "nginx,tls",
                        "--skip-tags=slow", "-b", "-vv"]
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False"]
    user             = "debian"
    use_proxy        = false
  }
""")
ANSIBLE_JSON = legacy({"type": "ansible", "playbook_file": "ansible/site.yml", "roles_path": "ansible/roles",
                       "galaxy_file": "ansible/requirements.yml", "groups": ["web"],
                       "extra_arguments": ["--extra-vars", "greeting={{user `greeting`}} port=80", "--tags",
                                           "nginx,tls", "--skip-tags=slow", "-b", "-vv"],
                       "ansible_env_vars": ["ANSIBLE_HOST_KEY_CHECKING=False"], "user": "debian",
                       "use_proxy": False})
ANSIBLE_FILES = {"ansible/site.yml": "- hosts: all\n  tasks: []\n", "ansible/requirements.yml": "roles: []\n",
                 "ansible/roles/web/tasks/main.yml": "[]\n"}


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", ANSIBLE_HCL), ("web.json", ANSIBLE_JSON)])
def test_ansible_becomes_ansible_playbook(packer, name, text):
    imported = packer({**ANSIBLE_FILES, name: text}, name)
    assert imported.code == 0, imported.err
    (task,) = valid(imported).tasks
    assert task.module == "ansible_playbook"
    assert task.args == {
        "playbook": "../ansible/site.yml", "roles_path": ["../ansible/roles"],
        "requirements": "../ansible/requirements.yml", "groups": ["web"],
        "extra_vars": {"greeting": "{{ greeting }}", "port": "80"}, "tags": ["nginx", "tls"],
        "skip_tags": ["slow"], "become": True, "extra_args": ["-vv"],
        "env": {"ANSIBLE_HOST_KEY_CHECKING": "False"}}
    assert "note: user: ansible-playbook logs in as the source's ssh user" in imported.comments
    assert "note: use_proxy:" in imported.comments


PUPPET_HCL = hcl("""\
  provisioner "puppet-masterless" {
    manifest_file     = "puppet/manifests/site.pp"
    module_paths      = ["puppet/modules"]
    hiera_config_path = "puppet/hiera.yaml"
    facter            = { role = "web", greeting = var.greeting }
    extra_arguments   = ["--verbose"]
    puppet_bin_dir    = "/opt/puppetlabs/bin"
    ignore_exit_codes = true
  }
""")
PUPPET_JSON = legacy({"type": "puppet-masterless", "manifest_file": "puppet/manifests/site.pp",
                      "module_paths": ["puppet/modules"], "hiera_config_path": "puppet/hiera.yaml",
                      "facter": {"role": "web", "greeting": "{{user `greeting`}}"}, "extra_arguments": ["--verbose"],
                      "puppet_bin_dir": "/opt/puppetlabs/bin", "ignore_exit_codes": True})
PUPPET_FILES = {"puppet/manifests/site.pp": "notice('hi')\n", "puppet/modules/web/manifests/init.pp": "class web {}\n",
                "puppet/hiera.yaml": "version: 5\n"}


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", PUPPET_HCL), ("web.json", PUPPET_JSON)])
def test_puppet_masterless_becomes_puppet_apply(packer, name, text):
    imported = packer({**PUPPET_FILES, name: text}, name)
    assert imported.code == 0, imported.err
    (task,) = valid(imported).tasks
    assert task.module == "puppet_apply"
    assert task.args == {"manifest": "../puppet/manifests/site.pp", "modules": ["../puppet/modules"],
                         "hiera_config": "../puppet/hiera.yaml", "facts": {"role": "web", "greeting": "{{ greeting }}"},
                         "extra_args": ["--verbose"]}
    assert task.ignore_errors is True                                       # ignore_exit_codes
    assert "note: puppet_bin_dir:" in imported.comments


CHEF_HCL = hcl("""\
  provisioner "chef-solo" {
    cookbook_paths    = ["chef/cookbooks"]
    roles_path        = "chef/roles"
    data_bags_path    = "chef/data_bags"
    environments_path = "chef/environments"
    chef_environment  = "production"
    run_list          = ["recipe[web]", "role[base]"]
    json              = { web = { port = 80 } }
    install_command   = "curl -L https://omnitruck.chef.io/install.sh | sudo bash"
    chef_license      = "accept-silent"
    skip_install      = false
  }
""")
CHEF_JSON = legacy({"type": "chef-solo", "cookbook_paths": ["chef/cookbooks"], "roles_path": "chef/roles",
                    "data_bags_path": "chef/data_bags", "environments_path": "chef/environments",
                    "chef_environment": "production", "run_list": ["recipe[web]", "role[base]"],
                    "json": {"web": {"port": 80}},
                    "install_command": "curl -L https://omnitruck.chef.io/install.sh | sudo bash",
                    "chef_license": "accept-silent", "skip_install": False})
CHEF_FILES = {"chef/cookbooks/web/recipes/default.rb": "log 'hi'\n", "chef/roles/base.json": "{}\n",
              "chef/data_bags/users/a.json": "{}\n", "chef/environments/production.json": "{}\n"}


@pytest.mark.parametrize("name, text", [("web.pkr.hcl", CHEF_HCL), ("web.json", CHEF_JSON)])
def test_chef_solo_becomes_chef_solo(packer, name, text):
    imported = packer({**CHEF_FILES, name: text}, name)
    assert imported.code == 0, imported.err
    (task,) = valid(imported).tasks
    assert task.module == "chef_solo"
    assert task.args == {"cookbooks": ["../chef/cookbooks"], "roles": "../chef/roles", "data_bags": "../chef/data_bags",
                         "environments": "../chef/environments", "environment": "production",
                         "run_list": ["recipe[web]", "role[base]"], "json": {"web": {"port": 80}},
                         "install_command": "curl -L https://omnitruck.chef.io/install.sh | sudo bash",
                         "chef_license": "accept-silent"}


def test_an_unknown_provisioner_and_a_download_are_leftovers(packer):
    text = hcl("""\
  provisioner "powershell" {
    inline = ["Write-Host hi"]
  }
  provisioner "file" {
    source      = "/var/log/syslog"
    destination = "syslog"
    direction   = "download"
  }
  provisioner "shell" {
    inline = ["echo kept"]
  }
""")
    imported = packer({"web.pkr.hcl": text}, "web.pkr.hcl")
    assert imported.code == 3
    assert "web.pkr.hcl:14:3: provisioner 'powershell': recipe has no task for it" in imported.err
    assert "web.pkr.hcl:20:5: direction: recipe has no fetch task" in imported.err
    (task,) = valid(imported).tasks
    assert task.args == {"cmd": "set -e\necho kept\n"}


def test_two_builds_tasks_run_only_on_their_own_sources(packer):
    text = HCL_SOURCES + """\
build {
  name    = "web"
  sources = ["source.qemu.vm"]
  provisioner "shell" { inline = ["echo web"] }
}
build {
  name    = "db"
  sources = ["source.qemu.other", "source.qemu.vm"]
  provisioner "shell" {
    inline = ["echo db"]
    only   = ["qemu.other"]
  }
  provisioner "shell" { inline = ["echo both"] }
}
"""
    imported = packer({"web.pkr.hcl": text}, "web.pkr.hcl")
    assert imported.code == 0, imported.err
    recipe = valid(imported)
    # vm is built by both builds, with different provisioners: one recipe source per build
    assert sorted(b.source.name for b in recipe.builds) == ["db-vm", "other", "web-vm"]
    assert [(t.args["cmd"].splitlines()[1], t.only) for t in recipe.tasks] == [
        ("echo web", ("web-vm",)), ("echo db", ("other",)), ("echo both", ("other", "db-vm"))]


def test_ansible_local_runs_the_same_playbook_from_the_build_host(packer):
    text = legacy({"type": "ansible-local", "playbook_file": "ansible/site.yml", "playbook_dir": "ansible",
                   "inventory_groups": "web,db", "role_paths": ["ansible/roles"]})
    text = text.replace('"variables"', '"description": "web servers",\n  "variables"', 1)
    imported = packer({**ANSIBLE_FILES, "web.json": text}, "web.json")
    assert imported.code == 0, imported.err
    recipe = valid(imported)
    (task,) = recipe.tasks
    assert task.module == "ansible_playbook"
    assert task.args == {"playbook": "../ansible/site.yml", "groups": ["web", "db"], "roles_path": ["../ansible/roles"]}
    assert "note: ansible-local ran ansible-playbook inside the guest" in imported.comments
    assert imported.document["description"] == "web servers"

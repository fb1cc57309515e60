"""The tools users bring, in one real TCG guest build of the cached Debian base (one boot for all of it):

- puppet_apply with `install: true` installs Debian's puppet-agent with the guest's apt, then applies a manifest
  with package, file (from a module's ERB template, with a value from hiera data and a fact passed by `facts`)
  and service resources: changed; the same apply again: ok. (A broken manifest's Error line, and the other
  failures, are tested with Debian's real puppet on this machine: tests/unit/modules/tasks/test_puppet_apply.py;
  each apply costs about a minute under TCG.)
- ansible_playbook runs the real ansible-playbook against the guest (its host key pinned, Python on the guest)
  with a role that uses a module recipe has no native version of (ansible.builtin.known_hosts), `become`, and a
  secret in extra_vars; a second playbook's failing task fails its recipe task (ignored here) naming the Ansible
  task and its line. (Gathering facts and apt cost a minute each under TCG: the playbooks skip them.)
- chef_solo against the stand-in chef-solo (tests/data/stand_ins: Chef cannot be installed here; it runs on the
  Ruby puppet-agent brought): changed, then ok.
The post_tasks read the guest's real state; the test reads every task's status from `--json`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import RECIPE

STAND_INS = Path(__file__).resolve().parents[1] / "data" / "stand_ins"
SECRET = "gu3st-S3cret/pass"
pytestmark = pytest.mark.timeout(2700)     # one TCG boot and puppet-agent installed from the mirror

BUILD = """\
name: tools
vars:
  db_password: "{secret}"
secrets: [db_password]
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    ssh: {{user: debian, connect_timeout: 600}}    # a loaded 2-core machine boots slowly under TCG
tasks:
  - name: Puppet, installed and applied
    puppet_apply: &puppet
      manifest: puppet/site.pp
      modules: [puppet/modules]
      hiera_config: puppet/hiera.yaml
      facts: {{site_owner: ops-team}}
      install: true
  - name: Puppet again
    puppet_apply: *puppet
  - name: The site playbook
    ansible_playbook:
      playbook: site.yml
      roles_path: [ansible-roles]
      become: true
      extra_vars: {{db_password: "{{{{ db_password }}}}"}}
  - name: A playbook that fails
    ansible_playbook: fails.yml
    ignore_errors: true
  - name: The chef-solo stand-in
    copy: {{src: chef-solo, dest: /usr/local/bin/chef-solo, mode: "0755"}}
    become: true
  - name: Chef
    chef_solo: &chef
      cookbooks: [cookbooks]
      run_list: ["recipe[motd]"]
      json: {{motd: {{text: "from chef"}}}}
  - name: Chef again
    chef_solo: *chef
post_tasks:
  - name: CHECK puppet's package, file and service
    shell: >
      dpkg-query -W -f='${{Status}}' tree | grep -qx 'install ok installed' &&
      test "$(cat /etc/site.conf)" = "greeting=hello from hiera, owner=ops-team" &&
      systemctl is-active recipe-hello && systemctl is-enabled recipe-hello
    changed_when: false
  - name: CHECK ansible's known_hosts and the secret it was given
    shell: >
      grep -q '^example.org ssh-ed25519 ' /etc/ssh/ssh_known_hosts &&
      test "$(sudo cat /root/db_password)" = "{{{{ db_password }}}}"
    changed_when: false
  - name: CHECK chef's file
    shell: test "$(cat /etc/motd-chef)" = "from chef"
    changed_when: false
"""

FILES = {
    "puppet/site.pp": "include site\n",
    "puppet/hiera.yaml": "version: 5\nhierarchy:\n  - name: common\n    path: common.yaml\n",
    "puppet/data/common.yaml": "site::greeting: hello from hiera\n",
    "puppet/modules/site/manifests/init.pp": """\
class site (String $greeting) {
  package { 'tree': ensure => installed }
  file { '/etc/site.conf': content => template('site/site.conf.erb') }
  file { '/etc/systemd/system/recipe-hello.service':
    content => "[Unit]\\nDescription=hello\\n[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n",
  }
  service { 'recipe-hello':
    ensure  => running,
    enable  => true,
    require => File['/etc/systemd/system/recipe-hello.service'],
  }
}
""",
    "puppet/modules/site/templates/site.conf.erb": "greeting=<%= @greeting %>, owner=<%= @facts['site_owner'] %>",
    "site.yml": "- hosts: all\n  gather_facts: false\n  roles: [site_keys]\n",
    "ansible-roles/site_keys/tasks/main.yml": """\
- name: A known host, by a module recipe has no native version of
  ansible.builtin.known_hosts:
    path: /etc/ssh/ssh_known_hosts
    name: example.org
    key: "example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGD4S+VRzP1OYHG00FjYHZejr44AX1yl/ALuRCFGtr4x"
- name: Keep the password it was given
  ansible.builtin.copy: {content: "{{ db_password }}", dest: /root/db_password, mode: "0600"}
""",
    "fails.yml": "- hosts: all\n  gather_facts: false\n  tasks:\n"
                 "    - name: Refuses\n      ansible.builtin.fail: {msg: not today}\n",
    "cookbooks/motd/recipes/default.rb": "file '/etc/motd-chef' do\n  content node['motd']['text']\nend\n",
}


@pytest.fixture(scope="module")
def build(bootstrap_base, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("tools")
    for name, text in FILES.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    (work / "files").mkdir()
    shutil.copy(STAND_INS / "chef-solo", work / "files" / "chef-solo")
    recipe = work / "tools.yml"
    recipe.write_text(BUILD.format(base=bootstrap_base.path, secret=SECRET))
    events = work / "events.jsonl"
    done = subprocess.run([RECIPE, "run", str(recipe), "-v", "--json", str(events), "--output-dir",
                           str(work / "output")], capture_output=True, text=True, timeout=2600)
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    return {"done": done, "ends": [e for e in lines if e["event"] == "task.end"],
            "log": (work / "output" / "tools-vm" / "build.log").read_text(), "events": events.read_text()}


def status(build: dict, task: str) -> dict:
    found = [e for e in build["ends"] if e["task"] == task]
    assert len(found) == 1, [e["task"] for e in build["ends"]]
    return found[0]


def test_the_build_succeeds_and_the_guest_has_what_each_tool_made(build):
    done = build["done"]
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    for check in ("CHECK puppet's package, file and service", "CHECK ansible's known_hosts and the secret it was "
                  "given", "CHECK chef's file"):
        assert status(build, check)["status"] == "ok"


def test_puppet_installs_applies_then_is_idempotent(build):
    first = status(build, "Puppet, installed and applied")
    assert first["status"] == "changed" and "puppet-agent" in first["msg"], first
    assert status(build, "Puppet again")["status"] == "ok"


def test_ansible_tasks_are_recipe_tasks_and_a_failure_names_the_ansible_task(build):
    played = [(e["task"], e["status"]) for e in build["ends"] if e.get("parent") == "The site playbook"]
    assert played == [("The site playbook > site_keys : A known host, by a module recipe has no native version of",
                       "changed"), ("The site playbook > site_keys : Keep the password it was given", "changed")]
    assert status(build, "The site playbook")["status"] == "changed"
    failed = status(build, "A playbook that fails")
    assert failed["status"] == "failed"
    assert failed["msg"] == "Ansible task 'Refuses' failed (fails.yml:4): not today"
    for text in (build["done"].stdout, build["done"].stderr, build["log"], build["events"]):
        assert SECRET not in text


def test_chef_solo_changes_then_is_idempotent(build):
    assert status(build, "Chef")["status"] == "changed"
    assert status(build, "Chef again")["status"] == "ok"

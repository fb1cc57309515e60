"""What users bring, in one real TCG guest build of the cached Debian base (one boot for all of it: each boot
costs one to two minutes of the suite):

- A role written as a Galaxy author writes one (tests/integration/data/roles/webserver, which depends on www_base
  through its meta/main.yml), applied unchanged by `roles: [webserver]`: include_vars and include_tasks named from
  ansible_os_family, apt with update_cache and cache_valid_time, templates, lineinfile, stat + when,
  with_items/with_dict, a block with rescue, assert, service/systemd, handlers reached through `listen`, tags, FQCN
  names, key=value arguments, `yes` and `0644`. The post_tasks check the guest's real state (the package, the
  running service, a page served by nginx, the handler's trace); the templated file's content travels back in a
  debug task's JSON event, so the test compares it here, byte for byte, with what Ansible renders.
- systemd, sysctl, mount, authorized_key, hostname and apt_repository (a block in the post_tasks): what the unit
  tests cannot do on the build machine without changing it. Each module runs twice, changed then ok, and a shell
  check reads the guest's real state (systemctl, /proc/sys, findmnt, the key file, hostname, the sources file).
  (package_facts and service_facts change nothing: the unit tests compare them with Ansible on this machine.)
- The provisioners (tasks:, after the roles):
  - puppet_apply with `install: true` installs Debian's puppet-agent with the guest's apt, then applies a manifest
    with package, file (from a module's ERB template, with a value from hiera data and a fact passed by `facts`)
    and service resources: changed; the same apply again: ok. (A broken manifest's Error line and the other
    failures are tested with Debian's real puppet on this machine, tests/unit/modules/tasks/test_puppet_apply.py:
    each apply costs about a minute under TCG.)
  - ansible_playbook runs the real ansible-playbook against the guest (its host key pinned, Python on the guest)
    with a role that uses a module recipe has no native version of (ansible.builtin.known_hosts), `become`, and a
    secret in extra_vars; a second playbook's failing task fails its recipe task (ignored here) naming the Ansible
    task and its line. (Gathering facts costs a minute under TCG: the playbooks skip it.)
  - chef_solo against the stand-in chef-solo (tests/data/stand_ins: Chef cannot be installed here; it runs on the
    Ruby puppet-agent brought): changed, then ok.
  The VERIFY post_tasks read what each tool made on the guest.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import DATA, RECIPE

ROLES = DATA / "roles"
STAND_INS = Path(__file__).resolve().parents[1] / "data" / "stand_ins"
SECRET = "gu3st-S3cret/pass"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRecipeTestKeyOnly recipe@test"
pytestmark = pytest.mark.timeout(3300)     # one TCG boot, nginx and puppet-agent installed from the mirror

BUILD = """\
name: galaxy
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    cpus: 2
    memory: 1024
    ssh: {{user: debian, connect_timeout: 600}}    # a loaded 2-core machine boots slowly under TCG
vars:
  db_password: "{secret}"
secrets: [db_password]
roles: [webserver]
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
post_tasks:                     # the role's handlers have run at the end of tasks, as in Ansible
  - name: VERIFY puppet's package, file and service
    shell: >
      dpkg-query -W -f='${{Status}}' tree | grep -qx 'install ok installed' &&
      test "$(cat /etc/site.conf)" = "greeting=hello from hiera, owner=ops-team" &&
      systemctl is-active recipe-hello && systemctl is-enabled recipe-hello
    changed_when: false
  - name: VERIFY ansible's known_hosts and the secret it was given
    shell: >
      grep -q '^example.org ssh-ed25519 ' /etc/ssh/ssh_known_hosts &&
      test "$(sudo cat /root/db_password)" = "{{{{ db_password }}}}"
    changed_when: false
  - name: VERIFY chef's file
    shell: test "$(cat /etc/motd-chef)" = "from chef"
    changed_when: false
  - name: CHECK the package is installed
    command: dpkg-query -W -f=${{Status}} nginx-light
    register: pkg
    changed_when: false
    failed_when: pkg.stdout != "install ok installed"
  - name: CHECK nginx is active and enabled
    shell: systemctl is-active nginx && systemctl is-enabled nginx
    changed_when: false
  - name: CHECK the page is served by nginx on the role's port
    command: curl -fsS -D - http://127.0.0.1:8080/
    register: page
    retries: 10
    delay: 2
    until: page.rc == 0
    changed_when: false
    failed_when: >-
      page.rc != 0 or 'Served by the webserver role' not in page.stdout
      or 'X-Served-By: webserver-role' not in page.stdout or 'Server: nginx/' in page.stdout
  - name: CHECK the default site is gone and ours is linked
    shell: >
      test ! -e /etc/nginx/sites-enabled/default &&
      test "$(readlink /etc/nginx/sites-enabled/site.conf)" = /etc/nginx/sites-available/site.conf
    changed_when: false
  - name: CHECK the site config's mode and owner
    stat: {{path: /etc/nginx/sites-available/site.conf}}
    register: conf
    failed_when: conf.stat.mode != "0644" or conf.stat.pw_name != "root"
  - name: CHECK lineinfile edited nginx.conf and the rescue left its trace
    shell: >
      grep -qx '	worker_connections 512;' /etc/nginx/nginx.conf &&
      grep -qx '	server_tokens off;' /etc/nginx/nginx.conf &&
      grep -qx '	rotate 14' /etc/logrotate.d/nginx &&
      test "$(cat /var/lib/webserver-role/optional-module)" = unavailable &&
      test "$(stat -c %a /etc/sudoers.d/webadmins)" = 440 && getent group webadmins
    become: true
    changed_when: false
  - name: CHECK the reload handler ran once, notified by several tasks through its listen name
    command: cat /var/lib/webserver-role/handler-runs
    register: runs
    changed_when: false
    failed_when: runs.stdout_lines != ["reloaded"]
  - name: CHECK read the site config
    slurp: {{src: /etc/nginx/sites-available/site.conf}}
    register: site_conf
  - name: SITE CONF
    debug: {{msg: "{{{{ site_conf.content | b64decode }}}}"}}
  - name: The system modules, each twice, and the guest's state after each
    become: true
    block:
      - name: A oneshot unit
        copy:
          dest: /usr/lib/systemd/system/recipe-test.service    # systemd cannot mask a unit file in /etc
          content: "[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n"
      - name: Started and enabled
        systemd: {{name: recipe-test.service, state: started, enabled: true, daemon_reload: true}}
        register: sd1
      - name: Again
        ansible.builtin.systemd_service: {{name: recipe-test, state: started, enabled: true}}
        register: sd2
      - name: systemd really runs it, and the status was returned
        shell: >
          systemctl is-active recipe-test && systemctl is-enabled recipe-test &&
          test "{{{{ sd1.changed }}}}/{{{{ sd2.changed }}}}/{{{{ sd2.status.ActiveState }}}}/{{{{ sd2.enabled }}}}" = True/False/active/True
        changed_when: false
      - name: Stopped and masked
        systemd: {{name: recipe-test.service, state: stopped, masked: true}}
        register: sd3
      - name: Masked for real
        shell: test "$(systemctl is-enabled recipe-test || :)" = masked && test "{{{{ sd3.changed }}}}" = True
        changed_when: false
      - name: sysctl, set now
        ansible.posix.sysctl: {{name: vm.swappiness, value: "13", sysctl_file: /etc/sysctl.d/90-recipe.conf, sysctl_set: true}}
        register: sc1
      - name: sysctl again
        sysctl: {{name: vm.swappiness, value: 13, sysctl_file: /etc/sysctl.d/90-recipe.conf, sysctl_set: true}}
        register: sc2
      - name: The kernel has it
        shell: >
          test "$(cat /proc/sys/vm/swappiness)" = 13 && grep -qx vm.swappiness=13 /etc/sysctl.d/90-recipe.conf &&
          test "{{{{ sc1.changed }}}}/{{{{ sc2.changed }}}}" = True/False
        changed_when: false
      - name: A tmpfs, mounted
        ansible.posix.mount: {{path: /mnt/recipe tmp, src: tmpfs, fstype: tmpfs, opts: size=8m, state: mounted}}
        register: mt1
      - name: Mounted again
        mount: {{path: /mnt/recipe tmp, src: tmpfs, fstype: tmpfs, opts: size=8m, state: mounted}}
        register: mt2
      - name: Mounted for real, and in fstab
        shell: >
          findmnt "/mnt/recipe tmp" && grep -q '^tmpfs /mnt/recipe\\\\040tmp tmpfs size=8m 0 0$' /etc/fstab &&
          test "{{{{ mt1.changed }}}}/{{{{ mt2.changed }}}}" = True/False
        changed_when: false
      - name: Gone
        mount: {{path: /mnt/recipe tmp, state: absent}}
        register: mt3
      - name: Unmounted, out of fstab, directory removed
        shell: >
          ! findmnt "/mnt/recipe tmp" && ! grep -q recipe /etc/fstab && test ! -e "/mnt/recipe tmp" &&
          test "{{{{ mt3.changed }}}}" = True
        changed_when: false
      - name: A key for debian
        authorized_key: {{user: debian, key: "{key}"}}
        register: ak1
      - name: The key again
        ansible.posix.authorized_key: {{user: debian, key: "{key}"}}
        register: ak2
      - name: In debian's file, which stays debian's
        shell: >
          grep -qx "{key}" /home/debian/.ssh/authorized_keys &&
          test "$(stat -c %U /home/debian/.ssh/authorized_keys)" = debian &&
          test "{{{{ ak1.changed }}}}/{{{{ ak2.changed }}}}" = True/False
        changed_when: false
      - name: A hostname
        hostname: {{name: recipe-guest}}
        register: hn1
      - name: The hostname again
        ansible.builtin.hostname: {{name: recipe-guest}}
        register: hn2
      - name: hostnamectl has it, now and across boots
        shell: >
          test "$(hostname)" = recipe-guest && test "$(cat /etc/hostname)" = recipe-guest &&
          test "{{{{ hn2.ansible_facts.ansible_hostname }}}}" = recipe-guest &&
          test "{{{{ hn1.changed }}}}/{{{{ hn2.changed }}}}" = True/False
        changed_when: false
      - name: An apt repository
        apt_repository: {{repo: "deb http://deb.debian.org/debian bookworm-backports main", filename: recipe-bp,
                         update_cache: false}}
        register: ar1
      - name: The apt repository again
        ansible.builtin.apt_repository: {{repo: "deb  http://deb.debian.org/debian bookworm-backports main",
                                         filename: recipe-bp, update_cache: false}}
        register: ar2
      - name: In its own file, 0644
        shell: >
          grep -qx "deb http://deb.debian.org/debian bookworm-backports main" /etc/apt/sources.list.d/recipe-bp.list &&
          test "$(wc -l < /etc/apt/sources.list.d/recipe-bp.list)" = 1 &&
          test "$(stat -c %a /etc/apt/sources.list.d/recipe-bp.list)" = 644 &&
          test "{{{{ ar1.changed }}}}/{{{{ ar2.changed }}}}/{{{{ ar1.sources_added | length }}}}" = True/False/1
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


# What ansible-playbook writes from templates/site.conf.j2 with the role's defaults.
SITE_CONF = """\
# Ansible managed
server {
    listen 8080;
    server_name webserver.test;
    root /srv/www/site;
    index index.html;

    include /etc/nginx/snippets/headers.conf;

    location = /healthz {
        access_log off;
    }

    location / {
        try_files $uri $uri/ =404;
    }
}
"""


def run_build(recipe: Path, work: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    events_file = work / "events.jsonl"
    result = subprocess.run([RECIPE, "run", str(recipe), "--roles-path", str(ROLES), "--output-dir", str(work / "out"),
                             "--json", str(events_file)], capture_output=True, text=True, timeout=3200)
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    return result, events


def ends(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("event") == "task.end"]


def statuses(events: list[dict], name: str) -> list[str]:
    """The status of each run of the task called name (each item of its loop)."""
    return [e["status"] for e in ends(events) if e["task"] == name or e["task"].startswith(name + " (")]


@pytest.fixture(scope="module")
def guest_work(tmp_path_factory) -> Path:
    """The recipe's folder: the provisioners' files beside it, and the build's output."""
    work = tmp_path_factory.mktemp("guest")
    for name, text in FILES.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    (work / "files").mkdir()
    shutil.copy(STAND_INS / "chef-solo", work / "files" / "chef-solo")
    return work


@pytest.fixture(scope="module")
def guest_build(bootstrap_base, guest_work) -> tuple[subprocess.CompletedProcess, list[dict]]:
    recipe = guest_work / "galaxy.yml"
    recipe.write_text(BUILD.format(base=bootstrap_base.path, key=KEY, secret=SECRET))
    return run_build(recipe, guest_work)


def test_galaxy_role_in_a_guest(guest_build):
    result, events = guest_build
    # the role's one failure is the block's, which its rescue handles (the provisioners' is theirs, ignored)
    failed = [e for e in ends(events) if e["status"] == "failed" and not e["task"].startswith("A playbook that fails")]
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert [e["task"] for e in failed] == ["Run the status module's helper, which this platform does not ship"]

    checks = [e for e in ends(events) if e["task"].startswith("CHECK")]
    assert len(checks) == 8 and all(e["status"] == "ok" for e in checks), checks
    site_conf = next(e for e in ends(events) if e["task"] == "SITE CONF")
    assert site_conf["msg"] == SITE_CONF

    # the meta dependency ran first, with the vars its entry gives it
    names = [e["task"] for e in ends(events)]
    assert names[0] == "Create the web administrators' group"
    assert names.index("Say what this host is at login") < names.index("Include OS-specific variables")
    # tagged always, packages, config, content, service, motd: every one ran on a run without --tags
    assert statuses(events, "Include OS-specific variables") == ["ok"]
    # apt-get update ran (the base's lists are old): changed (cache_updated), as Ansible reports it
    assert statuses(events, "Update the apt cache if it is older than an hour") == ["changed"]
    assert statuses(events, "Install the web server") == ["changed"]
    assert statuses(events, "Install the extra packages") == ["changed"]
    assert statuses(events, "Write the site configurations") == ["changed"]
    assert statuses(events, "Add the response headers") == ["changed", "changed"]
    assert statuses(events, "Write the index page") == ["changed"]
    assert statuses(events, "Enable and start the web server") in (["ok"], ["changed"])
    assert statuses(events, "Say what this host is at login") == ["changed"]
    assert statuses(events, "Disable the distribution's default site") == ["changed"]
    assert statuses(events, "Record that the optional module is unavailable") == ["changed"]
    assert statuses(events, "Never reached on Debian") == []
    # tagged never (and debug): not run without --tags debug
    assert statuses(events, "Dump every variable of this host (for debugging the role only)") == []

    handlers = [e["task"] for e in ends(events) if e.get("handler")]
    assert handlers == ["reload systemd", "Restart nginx", "Reload nginx", "Count the reloads"], handlers


def test_system_modules_in_a_guest(guest_build):
    result, events = guest_build
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    names = re.findall(r"^      - name: (.*)$", BUILD, re.MULTILINE)
    assert len(names) == 23
    for name in names:
        assert statuses(events, name) in (["ok"], ["changed"]), (name, statuses(events, name))


def status(events: list[dict], task: str) -> dict:
    found = [e for e in ends(events) if e["task"] == task]
    assert len(found) == 1, [e["task"] for e in ends(events)]
    return found[0]


def test_what_each_provisioner_made_is_on_the_guest(guest_build):
    result, events = guest_build
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    verified = [e for e in ends(events) if e["task"].startswith("VERIFY")]
    assert len(verified) == 3 and all(e["status"] == "ok" for e in verified), verified


def test_puppet_installs_applies_then_is_idempotent(guest_build):
    _, events = guest_build
    first = status(events, "Puppet, installed and applied")
    assert first["status"] == "changed" and "puppet-agent" in first["msg"], first
    assert status(events, "Puppet again")["status"] == "ok"


def test_ansible_tasks_are_recipe_tasks_and_a_failure_names_the_ansible_task(guest_build, guest_work):
    result, events = guest_build
    played = [(e["task"], e["status"]) for e in ends(events) if e.get("parent") == "The site playbook"]
    assert played == [("The site playbook > site_keys : A known host, by a module recipe has no native version of",
                       "changed"), ("The site playbook > site_keys : Keep the password it was given", "changed")]
    assert status(events, "The site playbook")["status"] == "changed"
    failed = status(events, "A playbook that fails")
    assert failed["status"] == "failed"
    assert failed["msg"] == "Ansible task 'Refuses' failed (fails.yml:4): not today"
    log = (guest_work / "out" / "galaxy-vm" / "build.log").read_text()
    for text in (result.stdout, result.stderr, log, json.dumps(events)):
        assert SECRET not in text


def test_chef_solo_changes_then_is_idempotent(guest_build):
    _, events = guest_build
    assert status(events, "Chef")["status"] == "changed"
    assert status(events, "Chef again")["status"] == "ok"

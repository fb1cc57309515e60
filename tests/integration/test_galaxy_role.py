"""A role written as a Galaxy author writes one (tests/integration/data/roles/webserver, which depends on www_base
through its meta/main.yml), applied unchanged by `roles: [webserver]` in one real TCG guest build of the cached
Debian base: include_vars and include_tasks named from ansible_os_family, apt with update_cache and
cache_valid_time, templates, lineinfile, stat + when, with_items/with_dict, a block with rescue, assert,
service/systemd, handlers reached through `listen`, tags, FQCN names, key=value arguments, `yes` and `0644`.

One boot for everything. The post_tasks check the guest's real state (the package, the running service, a page
served by nginx, the handler's trace); the templated file's content travels back in a debug task's JSON event,
so the test compares it here, byte for byte, with what Ansible renders.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import DATA, RECIPE

ROLES = DATA / "roles"
pytestmark = pytest.mark.timeout(2700)     # one TCG boot and an nginx install from the mirror, on a loaded machine

BUILD = """\
name: galaxy
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    cpus: 2
    memory: 1024
    ssh: {{user: debian, connect_timeout: 600}}    # a loaded 2-core machine boots slowly under TCG
roles: [webserver]
post_tasks:                     # the role's handlers have run at the end of tasks, as in Ansible
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
"""

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
                             "--json", str(events_file)], capture_output=True, text=True, timeout=2400)
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    return result, events


def ends(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("event") == "task.end"]


def statuses(events: list[dict], name: str) -> list[str]:
    """The status of each run of the task called name (each item of its loop)."""
    return [e["status"] for e in ends(events) if e["task"] == name or e["task"].startswith(name + " (")]


def test_galaxy_role_in_a_guest(bootstrap_base, tmp_path):
    recipe = tmp_path / "galaxy.yml"
    recipe.write_text(BUILD.format(base=bootstrap_base.path))
    result, events = run_build(recipe, tmp_path)
    failed = [e for e in ends(events) if e["status"] == "failed"]
    # the one failure is the block's, which its rescue handles
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

"""systemd, sysctl, mount, authorized_key, hostname, apt_repository, package_facts and service_facts in a real guest
(TCG Debian, one boot for all of them): what the unit tests cannot do on the build machine without changing it.
Each module runs twice: changed, then ok (the facts modules: ok both times), and a shell check reads the guest's
real state (systemctl, /proc/sys, findmnt, the key file, hostname, the sources file, dpkg-query)."""
from __future__ import annotations

from tests.integration.conftest import boot_and_check

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRecipeTestKeyOnly recipe@test"

RECIPE = """\
name: sysmods
sources:
  vm:
    platform: qemu
    base: {{path: "{base}"}}
    ssh: {{user: debian, connect_timeout: 600}}    # a loaded 2-core machine boots slowly under TCG
become: true
tasks:
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
  - name: The packages
    package_facts: {{manager: auto}}
    register: pf1
  - name: The packages again
    ansible.builtin.package_facts:
    register: pf2
  - name: dpkg's own version, as dpkg-query says
    shell: >
      test "{{{{ pf2.ansible_facts.packages['dpkg'][0].version }}}}" = "$(dpkg-query -W -f='${{Version}}' dpkg)" &&
      test "{{{{ pf2.ansible_facts.packages['dpkg'][0].source }}}}" = apt &&
      test "{{{{ pf1.changed }}}}/{{{{ pf2.changed }}}}" = False/False
    changed_when: false
  - name: The services
    service_facts:
    register: sf1
  - name: The services again
    ansible.builtin.service_facts:
    register: sf2
  - name: ssh runs, as systemctl says
    shell: >
      test "$(systemctl is-active ssh.service)" = active &&
      test "{{{{ sf2.ansible_facts.services['ssh.service'].state }}}}" = running &&
      test "{{{{ sf2.ansible_facts.services['ssh.service'].source }}}}" = systemd &&
      test "{{{{ sf1.changed }}}}/{{{{ sf2.changed }}}}" = False/False
    changed_when: false
"""


def test_system_modules_in_a_guest(bootstrap_base, tmp_path):
    recipe = tmp_path / "sysmods.yml"
    recipe.write_text(RECIPE.format(base=bootstrap_base.path, key=KEY))
    boot_and_check(recipe, tmp_path, tasks=29)

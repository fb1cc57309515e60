"""virt-v2v converts the OVA and the VMware VM folder (.vmx, `-i vmx`) of a real build on the bootstrap base,
and each converted disk boots.

virt-v2v, like the import services of clouds, inspects the guest and converts it only if it finds a
bootloader it understands (GRUB): the bootstrap base boots with GRUB 2 for that. The converted disk is
then booted under QEMU through a build of its own (an overlay, grown to a 6G disk_size) and reached
over SSH. libguestfs runs its appliance with KVM when /dev/kvm exists, which aborts on machines whose
KVM is broken: LIBGUESTFS_BACKEND_SETTINGS=force_tcg keeps it on TCG (the conversion then takes about 5
minutes, most of it rebuilding the initramfs in the appliance), so the exported_image fixture starts
it as soon as the OVA exists and the tests between run beside it. `-o local` copies through nbdkit and
nbdcopy (libnbd-bin), packages of their own that `make test` installs.

virt-v2v warns "could not determine a way to update the configuration of Grub2" on every Debian and
Ubuntu guest (it changes the default kernel only through grubby or Perl's Bootloader::Tools, which they
do not have: see virt-v2v(1), "Debian and Ubuntu"); the guest keeps booting its one kernel.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import boot_and_check

pytestmark = pytest.mark.timeout(2700)

BOOT_THE_CONVERTED_DISK = """\
name: fromv2v
sources:
  vm:
    platform: qemu
    base: {{path: "{disk}"}}
    disk_size: 6G
    ssh: {{user: debian}}
become: true
tasks:
  - name: The build's mark is in the image
    shell: grep -qx exported-by-recipe /etc/recipe-test-marker
    changed_when: false
  - name: GRUB booted it, from the grub.cfg on the root filesystem
    shell: grep -q "root=UUID=$(findmnt -no UUID /)" /boot/grub/grub.cfg && grep -q BOOT_IMAGE= /proc/cmdline
    changed_when: false
  - name: growpart grew the root filesystem to the 6G disk
    shell: test "$(findmnt -bno SIZE /)" -gt {more_than}
    changed_when: false
exports: []
"""


@pytest.mark.parametrize("mode", ["ova", "vmx"])
def test_virt_v2v_converts_the_export_and_the_converted_disk_boots(exported_image, tmp_path, mode):
    conversion = exported_image.conversions[mode]
    code, log, took = conversion.wait(timeout=1800)
    assert code == 0, f"virt-v2v -i {mode} failed after {took:.0f} s:\n{log[-6000:]}"
    out = conversion.output
    assert "no bootloader detected" not in log
    assert "Converting " in log          # inspection found the guest and its GRUB
    (disk,) = [p for p in out.iterdir() if p.name.endswith("-sda")]
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(disk)], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["format"] == "qcow2"
    assert list(out.glob("*.xml")), "virt-v2v wrote no libvirt description"

    recipe = tmp_path / "fromv2v.yml"
    recipe.write_text(BOOT_THE_CONVERTED_DISK.format(disk=disk, more_than=5 << 30))
    boot_and_check(recipe, tmp_path, tasks=3)

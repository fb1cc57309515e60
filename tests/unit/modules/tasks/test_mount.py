"""mount: fstab in tmp_path only (present, absent, absent_from_fstab); mounted and unmounted in check mode or
on paths that are not mounted, so nothing on this machine is mounted or unmounted."""
import pytest
import voluptuous as vol

from modules.tasks.mount import Entry, set_entry

FSTAB = ("# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n"
         "/dev/sdb1 /data ext4 defaults\n/swapfile none swap sw 0 0\n")


@pytest.fixture
def fstab(target):
    path = target / "fstab"
    path.write_text(FSTAB)
    return path


def test_present_appends_then_is_idempotent(h, fstab, target):
    args = {"path": "/srv/nfs", "src": "server:/export", "fstype": "nfs", "opts": "ro,noatime",
            "state": "present", "fstab": str(fstab)}
    result = h.run("mount", args)
    assert result.changed and fstab.read_text() == FSTAB + "server:/export /srv/nfs nfs ro,noatime 0 0\n"
    assert result.data["opts"] == "ro,noatime" and result.data["fstab"] == str(fstab)
    assert result.data["boot"] == "yes" and result.data["name"] == "/srv/nfs"
    assert h.run("mount", args).status == "ok"
    assert not (target / "srv").exists()    # present does not make the directory


def test_a_changed_entry_is_rewritten_in_place(h, fstab):
    args = {"path": "/data", "src": "/dev/sdb1", "fstype": "ext4", "state": "present", "fstab": str(fstab),
            "boot": False}
    result = h.run("mount", args)
    assert result.changed and result.data["opts"] == "defaults,noauto"
    lines = fstab.read_text().splitlines()
    assert lines[2] == "/dev/sdb1 /data ext4 defaults,noauto 0 0" and len(lines) == 4
    assert h.run("mount", args).status == "ok"


def test_four_fields_count_as_different_like_in_ansible(h, fstab):
    args = {"path": "/data", "src": "/dev/sdb1", "fstype": "ext4", "state": "present", "fstab": str(fstab)}
    assert h.run("mount", args).changed    # dump and passno were missing: written out
    assert "/dev/sdb1 /data ext4 defaults 0 0\n" in fstab.read_text()


def test_spaces_are_escaped(h, fstab):
    h.run("mount", {"path": "/mnt/my disk", "src": "LABEL=a b", "fstype": "ext4", "state": "present",
                    "fstab": str(fstab)})
    assert fstab.read_text().endswith("LABEL=a\\040b /mnt/my\\040disk ext4 defaults 0 0\n")


def test_absent_from_fstab_and_swap_matched_by_source(h, fstab):
    other_swap = h.run("mount", {"path": "none", "src": "/other", "state": "absent_from_fstab",
                                 "fstab": str(fstab)})
    assert other_swap.status == "ok" and "/swapfile" in fstab.read_text()
    gone = h.run("mount", {"path": "none", "src": "/swapfile", "state": "absent_from_fstab", "fstab": str(fstab)})
    assert gone.changed and "/swapfile" not in fstab.read_text()


def test_absent_removes_the_line_of_a_path_that_is_not_mounted(h, fstab, target):
    point = target / "mnt"
    point.mkdir()
    fstab.write_text(FSTAB + f"tmpfs {point} tmpfs defaults 0 0\n")
    result = h.run("mount", {"path": str(point), "state": "absent", "fstab": str(fstab)})
    assert result.changed and fstab.read_text() == FSTAB and not point.exists()   # rmdir, as Ansible
    assert h.run("mount", {"path": str(point), "state": "absent", "fstab": str(fstab)}).status == "ok"


def test_mounted_in_check_mode_touches_nothing(h, fstab, target):
    point = target / "new" / "mnt"
    result = h.run("mount", {"path": str(point), "src": "tmpfs", "fstype": "tmpfs", "state": "mounted",
                             "fstab": str(fstab)}, check=True)
    assert result.changed and fstab.read_text() == FSTAB and not (target / "new").exists()
    assert "+tmpfs" in result.diff


def test_unmounted_on_a_plain_directory_is_ok(h, target):
    assert h.run("mount", {"path": str(target), "state": "unmounted"}).status == "ok"


def test_options_checked(h):
    with pytest.raises(vol.Invalid, match="needs src and fstype"):
        h.params("mount", {"path": "/mnt", "state": "mounted", "src": "/dev/sdb"})
    with pytest.raises(vol.Invalid):
        h.params("mount", {"path": "/mnt", "state": "mountd"})
    assert h.params("mount", {"name": "/mnt", "state": "unmounted"}).path == "/mnt"


def test_remount_command():
    p = Entry("a", "b", "c", "d", "0", "0")
    assert set_entry("", p, None) == ("a b c d 0 0\n", True)

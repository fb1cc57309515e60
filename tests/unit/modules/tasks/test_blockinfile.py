import os

import pytest
import voluptuous as vol

from tests.unit.modules.tasks.conftest import mode_of

BEGIN, END = "# BEGIN ANSIBLE MANAGED BLOCK\n", "# END ANSIBLE MANAGED BLOCK\n"


@pytest.fixture
def hosts(target):
    path = target / "hosts"
    path.write_text("127.0.0.1 localhost\n::1 localhost\n")
    os.chmod(path, 0o644)
    return path


def test_insert_update_remove(h, hosts):
    args = {"path": str(hosts), "block": "10.0.0.1 db\n10.0.0.2 web"}
    inserted = h.run("blockinfile", args)
    assert inserted.changed and "+10.0.0.1 db" in inserted.diff
    assert hosts.read_text() == f"127.0.0.1 localhost\n::1 localhost\n{BEGIN}10.0.0.1 db\n10.0.0.2 web\n{END}"
    assert h.run("blockinfile", args).status == "ok"
    updated = h.run("blockinfile", {**args, "block": "10.0.0.3 cache"})
    assert updated.changed and hosts.read_text().count("ANSIBLE MANAGED BLOCK") == 2
    assert "10.0.0.3 cache\n" in hosts.read_text() and "db" not in hosts.read_text()
    removed = h.run("blockinfile", {"path": str(hosts), "state": "absent"})
    assert removed.changed and hosts.read_text() == "127.0.0.1 localhost\n::1 localhost\n"
    assert h.run("blockinfile", {"path": str(hosts), "state": "absent"}).status == "ok"


def test_insertbefore_and_custom_markers(h, hosts):
    args = {"path": str(hosts), "block": "first", "insertbefore": "BOF", "marker": "## {mark} extra",
            "marker_begin": "start", "marker_end": "stop"}
    assert h.run("blockinfile", args).changed
    assert hosts.read_text().startswith("## start extra\nfirst\n## stop extra\n127.0.0.1")
    assert h.run("blockinfile", args).status == "ok"
    after = {"path": str(hosts), "block": "mid", "insertafter": "^127"}
    assert h.run("blockinfile", after).changed
    assert hosts.read_text().splitlines()[4:7] == [BEGIN.strip(), "mid", END.strip()]


def test_check_mode(h, hosts):
    before = hosts.read_text()
    result = h.run("blockinfile", {"path": str(hosts), "block": "x"}, check=True)
    assert result.changed and "+x" in result.diff and hosts.read_text() == before


def test_missing_file(h, target):
    missing = h.run("blockinfile", {"path": str(target / "nope"), "block": "x"})
    assert missing.failed and str(target / "nope") in missing.msg
    created = h.run("blockinfile", {"path": str(target / "nope"), "block": "x", "create": True, "mode": "0600"})
    assert created.changed and (target / "nope").read_text() == f"{BEGIN}x\n{END}"
    assert mode_of(target / "nope") == 0o600


@pytest.mark.parametrize("args", [{"block": "x"}, {"path": "/x", "marker": "no mark"},
                                  {"path": "/x", "insertafter": "a", "insertbefore": "b"},
                                  {"path": "/x", "state": "gone"}])
def test_blockinfile_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("blockinfile", args)



# Ansible's defaults, options and messages (checked against ansible-core 2.19's blockinfile).

def test_a_block_ansible_wrote_is_updated_not_doubled(h, target):
    path = target / "hosts"
    path.write_text("a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\nz\n")
    result = h.run("blockinfile", {"dest": str(path), "content": "new"})   # Ansible's aliases
    assert result.msg == "Block inserted"
    assert path.read_text() == "a\n# BEGIN ANSIBLE MANAGED BLOCK\nnew\n# END ANSIBLE MANAGED BLOCK\nz\n"
    again = h.run("blockinfile", {"name": str(path), "block": "new"})
    assert again.status == "ok" and again.msg == ""
    removed = h.run("blockinfile", {"destfile": str(path), "state": "absent"})
    assert removed.msg == "Block removed" and path.read_text() == "a\nz\n"


def test_multiline_insertafter_matches_the_whole_text(h, target):
    path = target / "f"
    path.write_text("a\nb\na\nc\n")
    h.run("blockinfile", {"path": str(path), "block": "X", "insertafter": "(?m)^a\\nb"})
    assert path.read_text() == "a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nX\n# END ANSIBLE MANAGED BLOCK\na\nc\n"
    path.write_text("a\nb\na\nc\n")
    h.run("blockinfile", {"path": str(path), "block": "X", "insertbefore": "^a"})   # the last match, per line
    assert path.read_text() == "a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nX\n# END ANSIBLE MANAGED BLOCK\na\nc\n"


def test_prepend_and_append_newline(h, target):
    path = target / "f"
    path.write_text("a\nb\n")
    h.run("blockinfile", {"path": str(path), "block": "X", "insertafter": "^a", "prepend_newline": "yes",
                          "append_newline": True, "marker": "## {mark}", "marker_begin": "start",
                          "marker_end": "stop"})
    assert path.read_text() == "a\n\n## start\nX\n## stop\n\nb\n"


def test_create_backup_validate_and_messages(h, target):
    path = target / "new"
    created = h.run("blockinfile", {"path": str(path), "block": "Q", "create": "yes"})
    assert created.msg == "File created" and path.read_text().startswith("# BEGIN ANSIBLE MANAGED BLOCK\n")
    missing = h.run("blockinfile", {"path": str(target / "none"), "block": "Q"})
    assert missing.failed and missing.msg == f"Path {target / 'none'} does not exist !"
    backup = h.run("blockinfile", {"path": str(path), "block": "R", "backup": 1})
    assert open(backup.data["backup_file"]).read().count("Q") == 1 and "R\n" in path.read_text()
    refused = h.run("blockinfile", {"path": str(path), "block": "S", "validate": "grep -q T %s"})
    assert refused.failed and "S\n" not in path.read_text()
    absent = h.run("blockinfile", {"path": str(target / "none"), "state": "absent"})
    assert absent.status == "ok" and absent.msg == f"File {target / 'none'} not present"


def test_numeric_mode_from_yaml(h, target):
    path = target / "f"
    h.run("blockinfile", {"path": str(path), "block": "x", "create": True, "mode": 0o600})   # YAML's 384
    assert mode_of(path) == 0o600

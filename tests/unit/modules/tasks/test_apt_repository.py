"""apt_repository against source files in tmp_path (the module's sources_list/sources_dir moved there); Ansible,
pointed at a copy of the same files through APT_CONFIG, is the oracle for what is left behind."""
import shutil
from pathlib import Path

import pytest
import voluptuous as vol

from modules.tasks.apt_repository import AptRepository, expand_ppa, parse_line, suggest_filename
from tests.unit.modules.tasks.conftest import ansible_module, mode_of

SOURCES = ("deb http://deb.debian.org/debian bookworm main\n"
           "#deb   http://example.com/x  stable main # old\n\n#\n")
DOCKER = "deb [arch=amd64] https://user:pw@download.docker.com/linux/debian bookworm stable"


def tree(root: Path) -> Path:
    (root / "sources.list.d").mkdir(parents=True)
    (root / "sources.list").write_text(SOURCES)
    return root


@pytest.fixture
def etc(target, monkeypatch):
    root = tree(target / "etc")
    monkeypatch.setattr(AptRepository, "sources_list", str(root / "sources.list"))
    monkeypatch.setattr(AptRepository, "sources_dir", str(root / "sources.list.d"))
    return root


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (p.read_text(), mode_of(p)) for p in sorted(root.rglob("*")) if p.is_file()}


def ansible_on(root: Path, monkeypatch, args: dict) -> dict:
    conf = root.parent / f"{root.name}.conf"
    conf.write_text(f'Dir::Etc "{root}";\nDir::Etc::sourcelist "sources.list";\n'
                    'Dir::Etc::sourceparts "sources.list.d";\n')
    monkeypatch.setenv("APT_CONFIG", str(conf))
    return ansible_module("apt_repository", {**args, "update_cache": False})


@pytest.mark.skipif(not shutil.which("apt-get"), reason="Ansible's apt_repository needs a Debian machine")
@pytest.mark.parametrize("steps", [
    [{"repo": DOCKER}],
    [{"repo": "deb http://example.com/x stable main"}],                     # the disabled copy is enabled
    [{"repo": "deb http://deb.debian.org/debian bookworm main", "state": "absent"}],
    [{"repo": DOCKER, "filename": "docker", "mode": "0600"}, {"repo": DOCKER, "state": "absent"}],
    [{"repo": "deb-src  http://deb.debian.org/debian   bookworm main"}],
])
def test_the_files_left_behind_are_ansibles(h, etc, tmp_path, monkeypatch, steps):
    theirs = tree(tmp_path / "ansible")
    for step in steps:
        ours = h.run("apt_repository", {**step, "update_cache": False})
        oracle = ansible_on(theirs, monkeypatch, step)
        assert ours.changed == oracle["changed"]
        for key in ("sources_added", "sources_removed"):
            assert [Path(p).name for p in ours.data[key]] == sorted(Path(p).name for p in oracle[key])
    assert snapshot(etc) == snapshot(theirs)


def test_second_run_is_ok_and_check_mode_writes_nothing(h, etc):
    before = snapshot(etc)
    checked = h.run("apt_repository", {"repo": DOCKER, "update_cache": False}, check=True)
    assert checked.changed and snapshot(etc) == before
    assert "+" + DOCKER in checked.diff
    first = h.run("apt_repository", {"repo": DOCKER, "update_cache": "no"})
    added = etc / "sources.list.d/download_docker_com_linux_debian.list"
    assert first.changed and first.data["sources_added"] == [str(added)]
    assert added.read_text() == DOCKER + "\n" and mode_of(added) == 0o644
    again = h.run("apt_repository", {"repo": DOCKER + "  ", "update_cache": False})
    assert again.status == "ok" and again.data["sources_added"] == []


def test_a_symlinked_file_is_written_through(h, etc, target):
    real = target / "real.list"
    real.write_text("# deb http://example.org/y sid main\n")
    (etc / "sources.list.d/y.list").symlink_to(real)
    assert h.run("apt_repository", {"repo": "deb http://example.org/y sid main", "update_cache": False}).changed
    assert (etc / "sources.list.d/y.list").is_symlink() and real.read_text() == "deb http://example.org/y sid main\n"


def test_a_failed_cache_update_puts_the_files_back(h, etc, monkeypatch):
    """update_cache_retries: 0 fails at once, as in Ansible (no attempt): the new file goes again."""
    result = h.run("apt_repository", {"repo": DOCKER, "update_cache_retries": 0})
    assert result.failed and "Failed to update apt cache after 0 retries" in result.msg
    assert snapshot(etc) == {"sources.list": (SOURCES, 0o644)}


def test_invalid_repositories(h, etc):
    bad = h.run("apt_repository", {"repo": "http://example.com stable main", "update_cache": False})
    assert bad.failed and bad.msg == "Invalid repository string: http://example.com stable main"
    assert h.run("apt_repository", {"repo": "# deb http://a b c", "update_cache": False}).failed
    with pytest.raises(vol.Invalid):
        h.params("apt_repository", {"repo": DOCKER, "state": "gone"})


def test_ppa_lines_and_names():
    assert expand_ppa("ppa:deadsnakes/ppa", "jammy") == (
        "deb https://ppa.launchpadcontent.net/deadsnakes/ppa/ubuntu jammy main", "deadsnakes", "ppa")
    assert expand_ppa("ppa:git-core", "noble")[2] == "ppa"
    assert suggest_filename("ppa:deadsnakes/ppa_jammy", None) == "ppa_deadsnakes_ppa_jammy.list"
    assert suggest_filename("deb http://a.b/c d", "mine") == "mine.list"
    assert parse_line("  #deb  http://x  y # z ").render() == "# deb http://x y # z\n"
    assert parse_line("#").render() == "# \n"

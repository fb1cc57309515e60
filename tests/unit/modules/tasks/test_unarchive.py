"""unarchive with real tar and zip archives, extracted by this machine's tar and unzip."""
import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import voluptuous as vol

from modules.tasks.unarchive import Entry, differing, parse_listing, select
from tests.unit.modules.tasks.conftest import leftovers, mode_of

TREE = {"app/bin/run": b"#!/bin/sh\necho run\n", "app/README": b"read me\n", "app/etc/with space.conf": b"a=1\n"}


def make_tar(path: Path, mode: str = "w:gz", files: dict[str, bytes] = TREE) -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if "bin/" in name else 0o644
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("app/link")
        link.type, link.linkname = tarfile.SYMTYPE, "README"
        archive.addfile(link)
    return path


def make_zip(path: Path, files: dict[str, bytes] = TREE) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("name,mode", [("app.tar.gz", "w:gz"), ("app.tgz", "w:gz"), ("app.tar", "w"),
                                       ("app.tar.bz2", "w:bz2"), ("app.tar.xz", "w:xz"), ("app.bin", "w:xz")])
def test_local_tar_extracts_then_is_ok(h, target, name, mode):
    make_tar(h.root / "files" / name, mode)
    args = {"src": name, "dest": str(target)}
    result = h.run("unarchive", args)
    assert result.changed and result.data["extracted"] and leftovers(h) == []
    assert (target / "app" / "etc" / "with space.conf").read_bytes() == b"a=1\n"
    assert os.readlink(target / "app" / "link") == "README" and mode_of(target / "app" / "bin" / "run") == 0o755
    again = h.run("unarchive", args)
    assert again.status == "ok" and h.connection.uploads == [] and len(h.connection.scripts) == 1


def test_local_zip(h, target):
    make_zip(h.root / "files" / "app.zip")
    args = {"src": "app.zip", "dest": str(target)}
    assert h.run("unarchive", args).changed and (target / "app" / "README").read_bytes() == b"read me\n"
    assert h.run("unarchive", args).status == "ok"


def test_a_changed_or_missing_file_extracts_again(h, target):
    make_tar(h.root / "files" / "app.tgz")
    h.run("unarchive", {"src": "app.tgz", "dest": str(target)})
    (target / "app" / "README").write_bytes(b"edited, longer than before\n")
    result = h.run("unarchive", {"src": "app.tgz", "dest": str(target)})
    assert result.changed and "1 of 4" in result.msg and (target / "app" / "README").read_bytes() == b"read me\n"
    (target / "app" / "bin" / "run").unlink()
    check = h.run("unarchive", {"src": "app.tgz", "dest": str(target)}, check=True)
    assert check.changed and not (target / "app" / "bin" / "run").exists() and h.connection.uploads == []


def test_remote_src_on_the_target(h, target, tmp_path):
    archive = make_tar(tmp_path / "remote.tar.xz", "w:xz")
    args = {"src": str(archive), "dest": str(target), "remote_src": True}
    assert h.run("unarchive", args).changed and (target / "app" / "README").exists()
    assert h.run("unarchive", args).status == "ok" and h.connection.uploads == []
    zipped = make_zip(tmp_path / "remote.zip")
    assert h.run("unarchive", {**args, "src": str(zipped)}).status == "ok"   # the same files, by then
    (target / "app" / "README").unlink()
    assert h.run("unarchive", {**args, "src": str(zipped)}).changed and (target / "app" / "README").exists()


def test_creates_skips_everything(h, target):
    make_tar(h.root / "files" / "app.tgz")
    (target / "marker").write_text("")
    result = h.run("unarchive", {"src": "app.tgz", "dest": str(target), "creates": str(target / "marker")})
    assert result.status == "ok" and "marker exists" in result.msg and not (target / "app").exists()


def test_include_and_strip_components(h, target):
    make_tar(h.root / "files" / "app.tgz")
    args = {"src": "app.tgz", "dest": str(target), "include": ["app/bin"], "extra_opts": ["--strip-components=1"]}
    assert h.run("unarchive", args).changed
    assert sorted(os.listdir(target)) == ["bin"] and (target / "bin" / "run").exists()
    assert h.run("unarchive", args).status == "ok"


def test_dest_attributes(h, target):
    make_tar(h.root / "files" / "app.tgz")
    dest = target / "d"
    dest.mkdir(mode=0o700)
    os.chmod(dest, 0o700)
    args = {"src": "app.tgz", "dest": str(dest), "mode": "0755", "owner": "nobody"}
    assert h.run("unarchive", args).changed and mode_of(dest) == 0o755 and dest.stat().st_uid == 65534
    assert h.run("unarchive", args).status == "ok"


def test_failures(h, target, tmp_path):
    h.file("files", "not-an-archive.txt", "hello")
    bad = h.run("unarchive", {"src": "not-an-archive.txt", "dest": str(target)})
    assert bad.failed and "neither a tar nor a zip" in bad.msg
    make_tar(h.root / "files" / "app.tgz")
    nodir = h.run("unarchive", {"src": "app.tgz", "dest": str(target / "nowhere")})
    assert nodir.failed and "existing directory" in nodir.msg
    assert h.run("unarchive", {"src": "app.tgz", "dest": str(target / "nowhere")}, check=True).changed
    gone = h.run("unarchive", {"src": str(tmp_path / "gone.tgz"), "dest": str(target), "remote_src": True})
    assert gone.failed and "gone.tgz is not a file on the target" in gone.msg
    (tmp_path / "corrupt.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    corrupt = h.run("unarchive", {"src": str(tmp_path / "corrupt.tar.gz"), "dest": str(target), "remote_src": True})
    assert corrupt.failed and os.listdir(target) == []


def test_listing_parsers_read_what_the_real_tools_print(tmp_path):
    tree = tmp_path / "t"
    (tree / "d" / "sub").mkdir(parents=True)
    (tree / "d" / "a b.txt").write_text("12345")
    (tree / "d" / "link").symlink_to("a b.txt")
    os.link(tree / "d" / "a b.txt", tree / "d" / "hard")
    subprocess.run(["tar", "-czf", str(tmp_path / "t.tgz"), "-C", str(tree), "d"], check=True)
    listing = subprocess.run(["tar", "--quoting-style=literal", "-tzvf", str(tmp_path / "t.tgz")],
                             capture_output=True, text=True, env={"LC_ALL": "C", "PATH": os.environ["PATH"]}).stdout
    entries = {e.name: e for e in parse_listing(listing, "z")}
    assert entries["d/a b.txt"] == Entry("file", 5, "d/a b.txt") or entries["d/hard"].kind == "file"
    assert entries["d/link"].kind == "other" and entries["d/sub/"].kind == "directory"
    if shutil.which("zip"):
        subprocess.run(["zip", "-qry", str(tmp_path / "t.zip"), "d"], cwd=tree, check=True)
        listing = subprocess.run(["unzip", "-l", str(tmp_path / "t.zip")], capture_output=True, text=True).stdout
        entries = {e.name: e for e in parse_listing(listing, "zip")}
        assert entries["d/a b.txt"].size == 5 and entries["d/sub/"].kind == "directory" and len(entries) == 5


def test_select_and_compare():
    entries = [Entry("directory", 0, "./app/"), Entry("file", 3, "./app/a"), Entry("file", 1, "app/x/b"),
               Entry("file", 1, "../evil"), Entry("file", 1, "app/skip.log")]
    chosen = select(entries, [], ["*.log"], 1)
    assert [e.name for e in chosen] == ["a", "x/b"]
    assert differing(chosen, ["81a4 3 a", "81a4 2 x/b"]) == ["x/b"]
    assert differing([Entry("directory", 0, "d")], ["81a4 0 d"]) == ["d"]


@pytest.mark.parametrize("args", [{"src": "a.tgz"}, {"dest": "/x"},
                                  {"src": "a", "dest": "/x", "extra_opts": ["--strip-components=x"]}])
def test_unarchive_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("unarchive", args)


def test_ansible_forms(h, target):
    params = h.params("unarchive", f"src=app.tgz dest={target} remote_src=no mode=0750 unsafe_writes=yes")
    assert (params.mode, params.remote_src) == ("0750", False)
    assert h.params("unarchive", {"src": "a.tgz", "dest": str(target), "mode": 0o750}).mode == "0750"
    with pytest.raises(vol.Invalid, match="unknown option 'attributes'"):   # not done: refused
        h.params("unarchive", {"src": "a.tgz", "dest": str(target), "attributes": "+i"})

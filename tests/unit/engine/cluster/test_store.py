"""Artifact stores on a real filesystem and against moto's S3 over real HTTP: delivery lists and moves a build's
files, fetching puts them in place only whole and checked, and paths from the wire stay inside their folder."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import boto3
import pytest

from engine.cluster import store as store_module
from engine.cluster.store import (SHARE_HINT, FolderStore, Location, S3Store, StoredFile, fetch, open_store,
                                  parse_s3_url)
from engine.errors import BuildError
from tests.moto_server import reset

BIG = 9 * 1024 * 1024 + 17     # above boto3's 8 MiB multipart threshold: the upload goes in parts


def make_build(folder: Path, big: bool = False) -> dict[str, bytes]:
    """A build's output folder as an export chain leaves it; what each relative path holds."""
    contents = {
        "SHA256SUMS": b"abc  web-local.qcow2\n",
        "console-boot.log": b"login:\n",
        "web-local.ovf/disk-1.vmdk": os.urandom(4096),
        "web-local.ovf/web-local.ovf": b"<Envelope/>",
        "web-local.qcow2": os.urandom(BIG if big else 65536),
    }
    for relative, data in contents.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    return contents


def listed(contents: dict[str, bytes]) -> list[StoredFile]:
    return [StoredFile(path, len(data), hashlib.sha256(data).hexdigest()) for path, data in sorted(contents.items())]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*fetch-*"))


@pytest.fixture
def delivered(tmp_path):
    """A build delivered to a folder store: (store, build folder, contents, location, files)."""
    store = FolderStore(tmp_path / "out")
    build = store.spool("run-1") / "web"
    contents = make_build(build)
    location, files = store.deliver(build, "worker-a")
    return store, build, contents, location, files


# --- the folder store -------------------------------------------------------------------------------------------

def test_folder_spool_is_the_run_folder_under_the_root(tmp_path):
    store = FolderStore(tmp_path / "out")
    spool = store.spool("run-1")
    assert spool == (tmp_path / "out" / "run-1").resolve() and spool.is_dir()
    with pytest.raises(BuildError, match="run id"):
        store.spool("../escape")


def test_folder_deliver_lists_every_file_with_its_digest(delivered):
    _, build, contents, location, files = delivered
    assert files == listed(contents)                      # sorted, subfolder included, digests right
    assert location == Location("folder", str(build.resolve()), "worker-a")
    assert build.is_dir()                                 # a folder store keeps the artifacts where they are


def test_deliver_leaves_out_what_is_not_a_regular_file(tmp_path):
    store = FolderStore(tmp_path / "out")
    build = store.spool("run-1") / "web"
    build.mkdir()
    (build / "disk.raw").write_bytes(b"disk")
    (build / "link").symlink_to("/etc/hostname")
    (build / "empty").mkdir()
    assert [f.path for f in store.deliver(build, "w")[1]] == ["disk.raw"]


def test_deliver_of_a_build_that_made_no_folder_lists_nothing(tmp_path):
    store = FolderStore(tmp_path / "out")
    location, files = store.deliver(store.spool("run-1") / "never-made", "worker-a")
    assert files == [] and location.kind == "folder"


def test_fetch_from_a_folder_copies_and_verifies(delivered, tmp_path):
    """A copy, not a hard link: booting the fetched image must not change the one the worker keeps."""
    _, build, contents, location, files = delivered
    dest = tmp_path / "mine" / "web"
    paths = fetch(location, files, dest)
    assert paths == [dest / f.path for f in files]
    for stored in files:
        assert (dest / stored.path).stat().st_ino != (build / stored.path).stat().st_ino
        assert (dest / stored.path).read_bytes() == contents[stored.path]
    (dest / "web-local.qcow2").write_bytes(b"booted")
    assert (build / "web-local.qcow2").read_bytes() == contents["web-local.qcow2"]
    assert leftovers(dest) == []


def test_fetch_replaces_a_file_of_an_earlier_build_and_skips_what_it_is_told(delivered, tmp_path):
    _, build, contents, location, files = delivered
    dest = tmp_path / "mine" / "web"
    dest.mkdir(parents=True)
    (dest / "SHA256SUMS").write_bytes(b"from the build before\n")
    (dest / "console-boot.log").write_bytes(b"the submitter's own\n")
    paths = fetch(location, files, dest, skip={"console-boot.log"})
    assert dest / "console-boot.log" not in paths
    assert (dest / "console-boot.log").read_bytes() == b"the submitter's own\n"
    assert (dest / "SHA256SUMS").read_bytes() == contents["SHA256SUMS"]


def test_fetch_of_a_folder_into_itself_leaves_it_as_it_was(delivered):
    _, build, contents, location, files = delivered
    fetch(location, files, build)
    assert {p.relative_to(build).as_posix(): p.read_bytes() for p in build.rglob("*") if p.is_file()} == contents


def test_a_source_changed_after_delivery_is_refused(delivered, tmp_path):
    _, build, contents, location, files = delivered
    (build / "web-local.qcow2").write_bytes(os.urandom(len(contents["web-local.qcow2"])))     # same size
    dest = tmp_path / "mine" / "web"
    with pytest.raises(BuildError, match="web-local.qcow2.*worker-a.*SHA-256") as caught:
        fetch(location, files, dest)
    assert str(build.resolve()) in str(caught.value)
    assert not (dest / "web-local.qcow2").exists() and leftovers(dest) == []


def test_a_source_grown_after_delivery_is_refused(delivered, tmp_path):
    _, build, _, location, files = delivered
    with (build / "web-local.qcow2").open("ab") as grown:
        grown.write(b"more")
    dest = tmp_path / "mine" / "web"
    with pytest.raises(BuildError, match="web-local.qcow2.*bytes arrived"):
        fetch(location, files, dest)
    assert not (dest / "web-local.qcow2").exists() and leftovers(dest) == []


def test_a_folder_this_machine_cannot_read_says_where_the_artifacts_are(tmp_path):
    location = Location("folder", str(tmp_path / "elsewhere" / "run-1" / "web"), "worker-b")
    with pytest.raises(BuildError) as caught:
        fetch(location, [StoredFile("web.qcow2", 4, "0" * 64)], tmp_path / "mine")
    assert "worker-b" in caught.value.message and location.where in caught.value.message
    assert caught.value.hint == SHARE_HINT


def test_a_file_missing_from_the_folder_is_named(delivered, tmp_path):
    _, build, _, location, files = delivered
    (build / "SHA256SUMS").unlink()
    with pytest.raises(BuildError, match="could not fetch SHA256SUMS from .*worker-a"):
        fetch(location, files, tmp_path / "mine")


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "", ".", "a\\..\\x"])
def test_a_path_leaving_its_folder_is_refused(delivered, tmp_path, path):
    _, _, _, location, _ = delivered
    dest = tmp_path / "mine" / "web"
    with pytest.raises(BuildError, match="refusing the artifact path"):
        fetch(location, [StoredFile("SHA256SUMS", 21, "0" * 64), StoredFile(path, 1, "0" * 64)], dest)
    assert not (tmp_path / "mine" / "x").exists()
    assert not dest.exists() or list(dest.iterdir()) == []        # refused before anything was written


# --- what goes over the wire ------------------------------------------------------------------------------------

def test_a_location_and_a_file_list_survive_json(delivered):
    _, _, _, location, files = delivered
    assert Location.from_json(location.as_json()) == location
    assert [StoredFile.from_json(f.as_json()) for f in files] == files


@pytest.mark.parametrize("data, message", [
    ({"kind": "ftp", "where": "/x", "worker": "w"}, "unknown kind"),
    ({"kind": "folder", "where": "relative/x", "worker": "w"}, "relative"),
    ({"kind": "s3", "where": "s3:///nobucket", "worker": "w"}, "bad artifact location"),
    ({"kind": "folder", "worker": "w"}, "malformed"),
])
def test_a_bad_location_from_the_wire_is_refused(data, message):
    with pytest.raises(BuildError, match=message):
        Location.from_json(data)


def test_a_file_entry_leaving_its_folder_is_refused_from_the_wire():
    with pytest.raises(BuildError, match="refusing"):
        StoredFile.from_json({"path": "../../.ssh/authorized_keys", "size": 1, "sha256": "0" * 64})


@pytest.mark.parametrize("url, parsed", [
    ("s3://bucket", ("bucket", "")),
    ("s3://bucket/", ("bucket", "")),
    ("s3://my.bucket/team//builds/", ("my.bucket", "team/builds")),
])
def test_s3_urls_parse(url, parsed):
    assert parse_s3_url(url) == parsed


@pytest.mark.parametrize("url", ["bucket/prefix", "https://bucket/x", "s3://", "s3:///prefix", "s3://bucket/../x",
                                 "s3://bucket/a?versionId=1", "s3://bad bucket/x"])
def test_a_bad_s3_url_is_a_clear_value_error(url):
    with pytest.raises(ValueError, match="expected s3://bucket or s3://bucket/prefix"):
        S3Store(url)


def test_open_store_prefers_s3_and_defaults_to_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    chosen = open_store(tmp_path / "out", "s3://bucket/prefix")
    assert isinstance(chosen, S3Store) and (chosen.bucket, chosen.prefix) == ("bucket", "prefix")
    default = open_store(None, None)
    assert isinstance(default, FolderStore) and default.root == (tmp_path / "output").resolve()
    assert open_store(Path("elsewhere"), None).root == (tmp_path / "elsewhere").resolve()


# --- S3, against moto over HTTP ---------------------------------------------------------------------------------

@pytest.fixture
def s3(moto_endpoint, monkeypatch, tmp_path):
    """A fresh moto with the bucket `artifacts`, boto3 pointed at it, and the recipe cache in tmp_path."""
    reset(moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("RECIPE_CACHE_DIR", str(tmp_path / "cache"))
    client = boto3.client("s3", region_name="eu-west-1")
    client.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return client


@pytest.fixture
def uploaded(s3, tmp_path):
    """A build delivered to S3: (client, local build folder, contents, location, files)."""
    store = S3Store("s3://artifacts/team/builds/")
    spool = store.spool("run-1")
    assert spool == tmp_path / "cache" / store_module.SPOOL / "run-1" and spool.is_dir()
    contents = make_build(spool / "web", big=True)
    location, files = store.deliver(spool / "web", "worker-a")
    return s3, spool / "web", contents, location, files


def test_s3_deliver_uploads_every_file_and_removes_the_local_copy(uploaded):
    client, build, contents, location, files = uploaded
    assert files == listed(contents)
    assert location == Location("s3", "s3://artifacts/team/builds/run-1/web", "worker-a")
    objects = client.list_objects_v2(Bucket="artifacts")["Contents"]
    assert sorted(o["Key"] for o in objects) == [f"team/builds/run-1/web/{path}" for path in sorted(contents)]
    for path, data in contents.items():
        body = client.get_object(Bucket="artifacts", Key=f"team/builds/run-1/web/{path}")["Body"].read()
        assert body == data
    assert not build.exists()


def test_s3_deliver_of_a_build_that_made_no_folder_uploads_nothing(s3):
    store = S3Store("s3://artifacts")
    location, files = store.deliver(store.spool("run-2") / "web", "worker-a")
    assert files == [] and location.where == "s3://artifacts/run-2/web"
    assert s3.list_objects_v2(Bucket="artifacts")["KeyCount"] == 0


def test_s3_fetch_downloads_and_verifies(uploaded, tmp_path):
    _, _, contents, location, files = uploaded
    dest = tmp_path / "mine" / "web"
    paths = fetch(location, files, dest, skip={"console-boot.log"})
    assert paths == [dest / f.path for f in files if f.path != "console-boot.log"]
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == \
        {path: data for path, data in contents.items() if path != "console-boot.log"}


def test_a_tampered_s3_object_is_refused(uploaded, tmp_path):
    client, _, contents, location, files = uploaded
    client.put_object(Bucket="artifacts", Key="team/builds/run-1/web/SHA256SUMS",
                      Body=b"X" * len(contents["SHA256SUMS"]))
    dest = tmp_path / "mine" / "web"
    with pytest.raises(BuildError, match="SHA256SUMS from s3://artifacts/team/builds/run-1/web.*SHA-256"):
        fetch(location, files, dest)
    assert not (dest / "SHA256SUMS").exists() and leftovers(dest) == []


def test_a_missing_s3_object_is_named(uploaded, tmp_path):
    client, _, _, location, files = uploaded
    client.delete_object(Bucket="artifacts", Key="team/builds/run-1/web/web-local.qcow2")
    dest = tmp_path / "mine" / "web"
    with pytest.raises(BuildError, match="could not fetch web-local.qcow2 from s3://"):
        fetch(location, files, dest)
    assert not (dest / "web-local.qcow2").exists() and leftovers(dest) == []

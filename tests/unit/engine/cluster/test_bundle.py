"""Bundles: a recipe's files collected, sent to a real redis-server, and materialized elsewhere, checked."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
import redis

from engine.cluster import bundle_transfer
from engine.cluster import keys
from engine.cluster.bundle import COMPLETE, Bundle, BundleFile, collect
from engine.cluster.bundle_transfer import materialize, upload
from engine.errors import BuildError
from engine.recipe.compile import CompileOptions, compile_recipe
from engine.recipe.loader import LIBRARY_ROLES

RECIPE = """\
name: bundled
roles: [web, shared]
sources:
  box: {platform: ssh, ssh: {host: 127.0.0.1}}
tasks:
  - import_tasks: ../common/tasks.yml
  - template: {src: templates/motd.j2, dest: /etc/motd}
"""


def write(path: Path, text: str | bytes, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    if mode is not None:
        path.chmod(mode)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp_path/src: project/ (the recipe, a role, a template, a big image, output/, .git/), common/ (an included
    task file), shared-roles/ (a roles path folder: one role used, one not)."""
    src = tmp_path / "src"
    project = src / "project"
    write(project / "r.yml", RECIPE)
    write(project / "roles/web/tasks/main.yml", "- shell: echo web\n")
    write(project / "roles/web/files/run.sh", "#!/bin/sh\necho run\n", mode=0o750)
    write(project / "templates/motd.j2", "hello {{ build.source }}\n")
    (project / "images").mkdir()
    with open(project / "images/base.qcow2", "wb") as image:
        image.truncate(3 << 20)                 # sparse: 3 MiB on paper, nothing on disk
    write(project / "output/junk.img", b"old output")
    write(project / ".git/config", "[core]\n")
    write(project / "roles/web/node_modules/x.js", "x\n")
    write(src / "common/tasks.yml", "- shell: echo common\n")
    write(src / "shared-roles/shared/tasks/main.yml", "- shell: echo shared\n")
    write(src / "shared-roles/unused/tasks/main.yml", "- shell: echo unused\n")
    return src


def compiled(src: Path):
    return compile_recipe(src / "project/r.yml", CompileOptions(roles_path=(src / "shared-roles",)))


def collected(src: Path, **limits) -> Bundle:
    limits.setdefault("max_file", 1 << 20)
    return collect(compiled(src), exclude=(src / "project/output",), **limits)


def client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def tree_of(folder: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under folder: its content and whether it is executable."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), os.access(p, os.X_OK))
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != COMPLETE}


def store_manifest(client: redis.Redis, rows: list) -> str:
    """A manifest stored under its own digest, as upload stores one: for forged manifests."""
    data = json.dumps({"files": rows}, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    client.set(keys.bundle(digest), data)
    return digest


def store_blob(client: redis.Redis, content: bytes) -> str:
    sha = hashlib.sha256(content).hexdigest()
    client.set(keys.blob(sha), content)
    return sha


# -- collect ---------------------------------------------------------------------------------------


def test_collect_takes_the_recipe_folder_its_includes_and_its_roles_wherever_they_are(tree):
    found = collected(tree)
    assert found.root == tree                       # the deepest folder holding project/, common/, shared-roles/
    assert [f.path for f in found.files] == [
        "common/tasks.yml",
        "project/r.yml",
        "project/roles/web/files/run.sh",
        "project/roles/web/tasks/main.yml",
        "project/templates/motd.j2",
        "shared-roles/shared/tasks/main.yml",
    ]                                               # no output/, .git/, node_modules/, unused role, big image
    assert found.skipped == (("project/images/base.qcow2", 3 << 20),)
    modes = {f.path: f.mode for f in found.files}
    assert modes["project/roles/web/files/run.sh"] == 0o755 and modes["project/r.yml"] == 0o644
    motd = next(f for f in found.files if f.path.endswith("motd.j2"))
    assert motd.sha256 == hashlib.sha256(b"hello {{ build.source }}\n").hexdigest() and motd.size == 25


def test_relative_maps_local_paths_into_the_bundle_and_refuses_others(tree, tmp_path):
    found = collected(tree)
    assert found.relative(tree / "project/r.yml") == "project/r.yml"
    assert found.relative(tree / "shared-roles") == "shared-roles"
    assert found.relative(tree) == "."
    (tmp_path / "link").symlink_to(tree / "common")
    assert found.relative(tmp_path / "link/tasks.yml") == "common/tasks.yml"     # through a link: its target
    with pytest.raises(ValueError, match="outside"):
        found.relative(tmp_path / "elsewhere.yml")


def test_extra_var_files_outside_the_recipe_folder_move_the_root_up(tree, tmp_path):
    var_file = write(tmp_path / "vars/site.yml", "a: 1\n")
    found = collect(compiled(tree), extra=(var_file,), exclude=(tree / "project/output",), max_file=1 << 20)
    assert found.root == tmp_path
    assert found.relative(var_file) == "vars/site.yml"
    assert {"vars/site.yml", "src/project/r.yml", "src/common/tasks.yml"} <= {f.path for f in found.files}


def test_the_manifest_is_canonical_and_names_the_bundle(tree):
    first, second = collected(tree), collected(tree)
    assert first.digest == second.digest == hashlib.sha256(first.manifest()).hexdigest()
    rows = json.loads(first.manifest())["files"]
    assert rows[0] == ["common/tasks.yml", hashlib.sha256(b"- shell: echo common\n").hexdigest(), 21, 0o644]
    assert b" " not in first.manifest()
    write(tree / "project/templates/motd.j2", "changed\n")
    assert collected(tree).digest != first.digest


def test_library_roles_stay_with_the_worker(tmp_path):
    library_role = next(p.name for p in sorted(LIBRARY_ROLES.iterdir()) if (p / "tasks/main.yml").is_file())
    write(tmp_path / "r.yml", f"name: lib\nroles: [{library_role}]\n"
                              "sources:\n  box: {platform: ssh, ssh: {host: 127.0.0.1}}\ntasks: []\n")
    recipe = compile_recipe(tmp_path / "r.yml", CompileOptions())
    assert any(LIBRARY_ROLES in d.parents or d == LIBRARY_ROLES for d in recipe.role_dirs)   # the test's premise
    found = collect(recipe)
    assert found.root == tmp_path and [f.path for f in found.files] == ["r.yml"]


def test_links_are_followed_loops_cut_and_special_files_left_out(tmp_path):
    write(tmp_path / "r.yml", "name: l\nsources:\n  box: {platform: ssh, ssh: {host: 127.0.0.1}}\ntasks: []\n")
    write(tmp_path / "a/x", "x\n")
    write(tmp_path / "b/y", "y\n")
    (tmp_path / "a/to_b").symlink_to("../b")
    (tmp_path / "b/to_a").symlink_to("../a")        # a loop through two folders
    (tmp_path / "a/up").symlink_to("..")            # a link to an ancestor
    (tmp_path / "self").symlink_to(".")
    (tmp_path / "x-link").symlink_to("a/x")         # a link to a file: stored as a file
    (tmp_path / "dangling").symlink_to("nowhere")
    os.mkfifo(tmp_path / "fifo")
    recipe = compile_recipe(tmp_path / "r.yml", CompileOptions())
    result: list[Bundle | Exception] = []

    def run() -> None:
        try:
            result.append(collect(recipe))
        except Exception as exc:        # reported below, not lost in the thread
            result.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "collect did not finish: a link loop was walked forever"
    assert isinstance(result[0], Bundle), result[0]
    files = {f.path: f for f in result[0].files}
    assert sorted(files) == ["a/to_b/y", "a/x", "b/to_a/x", "b/y", "r.yml", "x-link"]
    assert files["x-link"].sha256 == files["a/x"].sha256


def test_the_total_limit_names_the_biggest_files(tree):
    write(tree / "project/files/big.bin", b"z" * 600_000)
    write(tree / "project/files/bigger.bin", b"z" * 900_000)
    with pytest.raises(BuildError, match=r"bigger\.bin \(878\.9 KiB\), project/files/big\.bin") as raised:
        collected(tree, max_total=1 << 20)
    assert "over the 1.0 MiB" in raised.value.message and raised.value.hint


def test_a_missing_extra_path_is_an_error(tree):
    with pytest.raises(BuildError, match="neither a file nor a folder"):
        collect(compiled(tree), extra=(tree / "nope.yml",))


# -- upload and materialize ------------------------------------------------------------------------


def test_upload_then_materialize_gives_the_same_tree(tree, tmp_path, redis_url):
    big = os.urandom(2 * (1 << 20) + 12345)         # over a chunk: sent with APPEND, fetched with GETRANGE
    write(tree / "project/files/blob.bin", big, mode=0o700)
    write(tree / "project/files/copy.txt", "- shell: echo web\n")    # same content as the role's tasks
    found = collected(tree, max_file=8 << 20)
    client = client_for(redis_url)
    upload(found, client)
    assert client.ttl(keys.bundle(found.digest)) > keys.BUNDLE_TTL - 60
    assert len(client.keys(keys.blob("*"))) == len({f.sha256 for f in found.files}) == len(found.files) - 1
    assert not client.keys("*:upload:*")            # the big file's partial key was renamed

    folder = materialize(found.digest, client, tmp_path / "cache")
    assert folder == tmp_path / "cache" / found.digest
    expected = {f.path: ((found.root / f.path).read_bytes(), f.mode == 0o755) for f in found.files}
    assert tree_of(folder) == expected
    assert tree_of(folder)["project/files/blob.bin"] == (big, True)
    assert tree_of(folder)["project/roles/web/files/run.sh"][1] is True
    assert tree_of(folder)["project/r.yml"][1] is False
    assert not (folder / "project/output").exists() and not (folder / "project/.git").exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [found.digest]    # no temporary left


def test_a_materialized_bundle_is_used_again_without_the_broker(tree, tmp_path, redis_url):
    found = collected(tree)
    client = client_for(redis_url)
    upload(found, client)
    folder = materialize(found.digest, client, tmp_path / "cache")
    client.flushall()                               # the broker forgot it: the cache still has it
    assert materialize(found.digest, client, tmp_path / "cache") == folder
    with pytest.raises(BuildError, match="is not in the broker"):
        materialize(found.digest, client, tmp_path / "other-cache")


def test_a_second_upload_sends_no_blob_and_refreshes_expiries(tree, redis_url):
    write(tree / "project/files/blob.bin", os.urandom(3 << 20))
    found = collected(tree, max_file=8 << 20)
    client = client_for(redis_url)
    upload(found, client)
    some_blob = keys.blob(found.files[0].sha256)
    client.expire(some_blob, 100)
    client.config_resetstat()
    upload(found, client)
    stats = client.info("commandstats")
    writes = {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("set", "append", "rename")}
    assert writes == {"set": 1, "append": 0, "rename": 0}       # the manifest's SET only
    assert client.ttl(some_blob) > keys.BUNDLE_TTL - 60


def test_a_blob_gone_from_the_broker_is_sent_again(tree, tmp_path, redis_url):
    found = collected(tree)
    client = client_for(redis_url)
    upload(found, client)
    client.delete(keys.blob(found.files[0].sha256))
    upload(found, client)
    assert client.exists(keys.blob(found.files[0].sha256))
    assert tree_of(materialize(found.digest, client, tmp_path / "cache"))["common/tasks.yml"][0] == \
        b"- shell: echo common\n"


def test_upload_notices_a_file_changed_since_collect(tree, redis_url):
    found = collected(tree)
    write(tree / "project/templates/motd.j2", "changed behind our back\n")
    client = client_for(redis_url)
    with pytest.raises(BuildError, match="motd.j2 changed"):
        upload(found, client)
    assert not client.exists(keys.bundle(found.digest))


@pytest.mark.parametrize("size", [100, 3 << 20], ids=["small", "big"])
def test_materialize_refuses_a_tampered_blob(tree, tmp_path, redis_url, size):
    write(tree / "project/files/data.bin", os.urandom(size))
    found = collected(tree, max_file=8 << 20)
    client = client_for(redis_url)
    upload(found, client)
    data = next(f for f in found.files if f.path.endswith("data.bin"))
    client.set(keys.blob(data.sha256), os.urandom(size))         # same size, other bytes
    with pytest.raises(BuildError, match="data.bin in the broker does not match"):
        materialize(found.digest, client, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []            # nothing half written stays


def test_materialize_refuses_a_blob_of_another_size(tree, tmp_path, redis_url):
    found = collected(tree)
    client = client_for(redis_url)
    upload(found, client)
    client.append(keys.blob(found.files[0].sha256), b"more")
    with pytest.raises(BuildError, match="does not match"):
        materialize(found.digest, client, tmp_path / "cache")


def test_materialize_refuses_a_manifest_under_another_digest(tree, tmp_path, redis_url):
    found = collected(tree)
    client = client_for(redis_url)
    upload(found, client)
    forged = "0" * 64
    client.set(keys.bundle(forged), found.manifest())
    with pytest.raises(BuildError, match="does not match its digest"):
        materialize(forged, client, tmp_path / "cache")


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/tmp/x", "a//x", "./x", "a/./x", "", "a\0x", "x/", COMPLETE])
def test_materialize_refuses_unsafe_paths(tmp_path, redis_url, path):
    client = client_for(redis_url)
    sha = store_blob(client, b"escaped\n")
    digest = store_manifest(client, [["ok", sha, 8, 0o644], [path, sha, 8, 0o644]])
    with pytest.raises(BuildError, match="unsafe path"):
        materialize(digest, client, tmp_path / "deep/cache")
    assert not (tmp_path / "deep/x").exists() and not (tmp_path / "x").exists()
    assert list((tmp_path / "deep/cache").glob("*")) == []


@pytest.mark.parametrize("rows, message", [
    ([["a", "SHA", 8, 0o644], ["a/b", "SHA", 8, 0o644]], "both as a file and as a folder"),
    ([["a", "SHA", 8, 0o644], ["a", "SHA", 8, 0o644]], "twice"),
    ([["a", "SHA", 8, 0o4755]], "bad size or mode"),
    ([["a", "SHA", -1, 0o644]], "bad size or mode"),
    ([["a", "not-a-sha", 8, 0o644]], "is not a SHA-256"),
    ([["a", "SHA", 8]], r"not \[path, sha256, size, mode\]"),
])
def test_materialize_refuses_malformed_manifests(tmp_path, redis_url, rows, message):
    client = client_for(redis_url)
    sha = store_blob(client, b"content\n")
    digest = store_manifest(client, [[sha if cell == "SHA" else cell for cell in row] for row in rows])
    with pytest.raises(BuildError, match=message):
        materialize(digest, client, tmp_path / "cache")


def test_materialize_refuses_what_is_not_a_digest(tmp_path, redis_url):
    with pytest.raises(BuildError, match="not a bundle's digest"):
        materialize("../../etc", client_for(redis_url), tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_the_loser_of_a_race_uses_the_winners_copy(tree, tmp_path, redis_url, monkeypatch):
    found = collected(tree)
    client = client_for(redis_url)
    upload(found, client)
    cache = tmp_path / "cache"
    winner = materialize(found.digest, client, cache)
    marker = (winner / COMPLETE).stat()
    # a process that looked before the winner's rename, and fetched a copy of its own meanwhile
    checks = iter([False])
    monkeypatch.setattr(bundle_transfer, "_complete", lambda folder: next(checks, True))
    assert materialize(found.digest, client, cache) == winner
    assert (winner / COMPLETE).stat().st_ino == marker.st_ino    # the winner's copy stayed
    assert sorted(p.name for p in cache.iterdir()) == [found.digest]


def test_processes_materializing_at_once_agree(tree, tmp_path, redis_url):
    found = collected(tree)
    upload(found, client_for(redis_url))
    cache = tmp_path / "cache"
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(materialize(found.digest, client_for(redis_url), cache)))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [cache / found.digest] * 6
    assert sorted(p.name for p in cache.iterdir()) == [found.digest]
    assert set(tree_of(cache / found.digest)) == {f.path for f in found.files}


def test_an_incomplete_copy_is_replaced(tree, tmp_path, redis_url):
    found = collected(tree)
    client = client_for(redis_url)
    upload(found, client)
    stale = write(tmp_path / "cache" / found.digest / "project/r.yml", "half written")
    assert materialize(found.digest, client, tmp_path / "cache") == stale.parents[1]
    assert stale.read_bytes() == (tree / "project/r.yml").read_bytes()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [found.digest]


def test_bundle_files_are_plain_values():
    one = BundleFile(path="a", sha256="0" * 64, size=1, mode=0o644)
    assert Bundle(root=Path("/r"), files=(one,)).manifest() == \
        b'{"files":[["a","' + b"0" * 64 + b'",1,420]]}'

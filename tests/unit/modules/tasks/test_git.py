"""git against real repositories made here (file paths: no network), compared with Ansible's git module."""
import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import voluptuous as vol

from modules.tasks.git import Checkout, Git, gpg_fingerprint, head_splitter, ssh_options, submodule_versions
from tests.unit.modules.tasks.conftest import ansible_module, mode_of

# fixed authors and dates: the same commits have the same SHAs in every repository made here
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z"}


def git(cwd: Path, *args: str) -> str:
    assert shutil.which("git"), "git is needed on this machine for the git module's tests"
    done = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **IDENTITY}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit(repo: Path, name: str, text: str, message: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """main: one (tagged v1, annotated v1a), two; dev: one more commit."""
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "a.txt", "one\n", "one")
    git(repo, "tag", "v1")
    git(repo, "tag", "-a", "v1a", "-m", "annotated")
    commit(repo, "a.txt", "two\n", "two")
    git(repo, "checkout", "-qb", "dev")
    commit(repo, "b.txt", "dev\n", "dev")
    git(repo, "checkout", "-q", "main")
    return repo


def sha(repo: Path, ref: str = "HEAD") -> str:
    return git(repo, "rev-parse", ref)


def same_as_ansible(h, tmp_path: Path, args: dict, check_files: bool = True) -> dict:
    """Run args with recipe on tmp_path/ours and with Ansible on tmp_path/theirs; both registered the same."""
    ours = {k: (v.replace("{dest}", str(tmp_path / "ours")) if isinstance(v, str) else v) for k, v in args.items()}
    theirs = {k: (v.replace("{dest}", str(tmp_path / "theirs")) if isinstance(v, str) else v) for k, v in args.items()}
    expected = ansible_module("git", theirs)
    registered = h.run("git", ours).as_register()
    expected = {k: (v.replace(str(tmp_path / "theirs"), "DEST") if isinstance(v, str) else v)
                for k, v in expected.items()}
    got = {k: (registered[k].replace(str(tmp_path / "ours"), "DEST") if isinstance(registered.get(k), str)
               else registered.get(k)) for k in expected}
    assert got == expected
    if check_files and (tmp_path / "theirs").exists():
        assert sorted(os.listdir(tmp_path / "ours")) == sorted(os.listdir(tmp_path / "theirs"))
    return registered


def test_clone_is_a_change_then_ok_then_pulls_new_commits(h, tmp_path, origin):
    dest = tmp_path / "work"
    args = {"repo": str(origin), "dest": str(dest)}
    first = h.run("git", args)
    assert first.changed and first.data["before"] is None and first.data["after"] == sha(origin)
    assert (dest / "a.txt").read_text() == "two\n" and git(dest, "remote", "get-url", "origin") == f"file://{origin}"
    again = h.run("git", args)
    assert again.status == "ok" and again.data == {"before": sha(origin), "after": sha(origin),
                                                   "remote_url_changed": False}
    new = commit(origin, "a.txt", "three\n", "three")
    would = h.run("git", args, check=True)
    assert would.changed and would.data["after"] == new and (dest / "a.txt").read_text() == "two\n"
    pulled = h.run("git", args)
    assert pulled.changed and pulled.data["after"] == new and (dest / "a.txt").read_text() == "three\n"


def test_check_mode_reports_the_commit_a_clone_would_check_out(h, tmp_path, origin):
    dest = tmp_path / "work"
    for version, expected in (("HEAD", sha(origin)), ("dev", sha(origin, "dev")), ("v1a", sha(origin, "v1")),
                              ("abc123", "abc123")):   # an annotated tag: its commit; a SHA: as given
        result = h.run("git", {"repo": str(origin), "dest": str(dest), "version": version}, check=True)
        assert result.changed and result.data == {"before": None, "after": expected}
    assert not dest.exists()


@pytest.mark.parametrize("version", ["dev", "v1a", "v1", "HEAD"])
def test_versions_as_ansible_checks_them_out(h, tmp_path, origin, version):
    base = {"repo": str(origin), "dest": "{dest}"}
    same_as_ansible(h, tmp_path, {**base, "version": "dev" if version == "HEAD" else "main"})
    registered = same_as_ansible(h, tmp_path, {**base, "version": version})
    assert registered["after"] == sha(tmp_path / "theirs") == sha(tmp_path / "ours")
    assert git(tmp_path / "ours", "branch", "-a") == git(tmp_path / "theirs", "branch", "-a")


def test_a_commit_sha_and_a_shallow_clone(h, tmp_path, origin):
    one = sha(origin, "v1")
    registered = same_as_ansible(h, tmp_path, {"repo": str(origin), "dest": "{dest}", "depth": 1, "version": one})
    assert registered["warnings"] == ["Ignoring depth argument. Shallow clones are only available for HEAD, "
                                      "branches, tags or in combination with refspec."]
    shallow = {"repo": str(origin), "dest": str(tmp_path / "shallow"), "depth": 1, "version": "dev"}
    assert h.run("git", shallow).changed and git(tmp_path / "shallow", "rev-list", "--count", "HEAD") == "1"
    assert h.run("git", shallow).status == "ok"
    to_main = h.run("git", {**shallow, "version": "main"})
    assert to_main.changed and to_main.data["after"] == sha(origin, "main")


def test_bare_single_branch_and_another_remote_name(h, tmp_path, origin):
    same_as_ansible(h, tmp_path / "bare", {"repo": str(origin), "dest": "{dest}", "bare": True, "remote": "up"})
    assert git(tmp_path / "bare" / "ours", "rev-parse", "--is-bare-repository") == "true"
    single = {"repo": str(origin), "dest": str(tmp_path / "single"), "single_branch": True, "version": "dev"}
    assert h.run("git", single).changed
    assert git(tmp_path / "single", "branch", "-a").split() == ["*", "dev", "remotes/origin/dev"]
    named = {"repo": str(origin), "dest": str(tmp_path / "named"), "remote": "up"}
    assert h.run("git", named).changed and h.run("git", named).status == "ok"
    assert git(tmp_path / "named", "remote") == "up"


def test_local_modifications_fail_unless_force(h, tmp_path, origin):
    dest = tmp_path / "work"
    args = {"repo": str(origin), "dest": str(dest)}
    h.run("git", args)
    (dest / "a.txt").write_text("mine\n")
    (dest / "untracked.txt").write_text("not counted\n")
    refused = h.run("git", args)
    assert refused.failed and refused.msg == f"Local modifications exist in the destination: {dest} (force=no)."
    assert refused.data == {"before": sha(origin)} and (dest / "a.txt").read_text() == "mine\n"
    assert h.run("git", args, check=True).failed   # in check mode too, as in Ansible
    forced = h.run("git", {**args, "force": True})
    assert forced.changed and forced.msg == f"Local modifications exist in the destination: {dest}"
    assert (dest / "a.txt").read_text() == "two\n" and (dest / "untracked.txt").exists()


def test_failures_are_ansibles(h, tmp_path, origin):
    h.run("git", {"repo": str(origin), "dest": str(tmp_path / "ours")})
    shutil.copytree(tmp_path / "ours", tmp_path / "theirs", symlinks=True)
    same_as_ansible(h, tmp_path, {"repo": str(origin), "dest": "{dest}", "version": "nope"})
    same_as_ansible(h, tmp_path, {"repo": str(tmp_path / "missing"), "dest": "{dest}"})   # fetch fails
    new = same_as_ansible(h, tmp_path, {"repo": str(tmp_path / "missing"), "dest": "{dest}/new"})
    assert new["cmd"].endswith("-h refs/heads/HEAD") and new["rc"] == 128


def test_remote_url_follows_repo(h, tmp_path, origin):
    dest = tmp_path / "work"
    h.run("git", {"repo": str(origin), "dest": str(dest)})
    moved = tmp_path / "moved"
    shutil.copytree(origin, moved)
    commit(moved, "c.txt", "moved\n", "moved")
    would = h.run("git", {"repo": str(moved), "dest": str(dest)}, check=True)
    assert would.changed and would.data["remote_url_changed"] is True
    assert git(dest, "remote", "get-url", "origin") == f"file://{origin}"
    done = h.run("git", {"repo": f"file://{moved}/", "dest": str(dest)})
    assert done.changed and done.data["remote_url_changed"] and (dest / "c.txt").exists()
    assert h.run("git", {"repo": str(moved), "dest": str(dest)}).data["remote_url_changed"] is False


def test_clone_no_and_update_no(h, tmp_path, origin):
    info = h.run("git", {"repo": str(origin), "clone": False})
    assert info.changed and info.data == {"before": None, "after": sha(origin)}
    dest = tmp_path / "work"
    assert h.run("git", {"repo": str(origin), "dest": str(dest), "clone": False}).changed and not dest.exists()
    h.run("git", {"repo": str(origin), "dest": str(dest)})
    kept = h.run("git", {"repo": str(origin), "dest": str(dest), "update": False, "version": "dev"})
    assert kept.status == "ok" and kept.data == {"before": sha(origin), "after": sha(origin)}
    assert h.run("git", {"repo": str(origin)}).msg == "the destination directory must be specified unless clone=no"


def test_diff_mode_registers_what_changed(h, tmp_path, origin):
    dest = tmp_path / "work"
    context = h.context()
    context.diff = True   # --diff

    def with_diff(args: dict):
        return asyncio.run(Git().run(Git.params(args), context))

    new = with_diff({"repo": str(origin), "dest": str(dest)})
    assert new.data["diff"] == {"prepared": f">> Newly checked out {sha(origin)}"} and new.diff
    switched = with_diff({"repo": str(origin), "dest": str(dest), "version": "dev"})
    assert switched.data["diff"]["prepared"].startswith("diff --git a/b.txt b/b.txt\nnew file mode 100644")
    assert "diff" not in h.run("git", {"repo": str(origin), "dest": str(dest), "version": "main"}).data


def test_submodules_are_cloned_and_then_ok(h, tmp_path, origin, monkeypatch):
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")   # git refuses file:// submodules unless told
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.file.allow")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "always")
    sub = tmp_path / "sub"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "master")
    commit(sub, "s.txt", "s1\n", "s1")
    git(origin, "submodule", "add", "-q", "../sub", "mods/sub")
    git(origin, "commit", "-qm", "add sub")
    args = {"repo": str(origin), "dest": str(tmp_path / "ours")}
    first = h.run("git", args)
    assert first.changed and first.data["submodules_changed"] and (tmp_path / "ours/mods/sub/s.txt").exists()
    assert h.run("git", args).status == "ok"
    commit(sub, "s.txt", "s2\n", "s2")
    tracked = h.run("git", {**args, "track_submodules": True})
    assert tracked.changed and (tmp_path / "ours/mods/sub/s.txt").read_text() == "s2\n"
    assert h.run("git", {"repo": str(origin), "dest": str(tmp_path / "flat"), "recursive": False}).changed
    assert not (tmp_path / "flat/mods/sub/s.txt").exists()


def test_archive_of_the_checkout(h, tmp_path, origin):
    dest, archive = tmp_path / "work", tmp_path / "out.tar"
    args = {"repo": str(origin), "dest": str(dest), "archive": str(archive), "archive_prefix": "p/"}
    assert h.run("git", args).changed and "p/a.txt" in subprocess.run(
        ["tar", "-tf", str(archive)], capture_output=True, text=True).stdout
    assert h.run("git", args).status == "ok"
    bad = h.run("git", {**args, "archive": str(tmp_path / "out.rar")})
    assert bad.failed and bad.msg == f"Unable to get file extension from archive file name : {tmp_path}/out.rar"


def test_separate_git_dir(h, tmp_path, origin):
    dest, gitdir = tmp_path / "work", tmp_path / "repo.git"
    h.run("git", {"repo": str(origin), "dest": str(dest)})
    moved = h.run("git", {"repo": str(origin), "dest": str(dest), "separate_git_dir": str(gitdir)})
    assert moved.changed and moved.data["git_dir_now"] == str(gitdir) and (dest / ".git").read_text() == \
        f"gitdir: {gitdir}"
    assert h.run("git", {"repo": str(origin), "dest": str(dest), "separate_git_dir": str(gitdir)}).status == "ok"


@pytest.fixture
def gnupg(tmp_path: Path, monkeypatch) -> Path:
    """A GNUPGHOME of its own, its agent stopped afterwards."""
    assert shutil.which("gpg") and shutil.which("gpgconf"), "gpg is needed on this machine for verify_commit's test"
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


def test_verify_commit_with_gpg(h, tmp_path, origin, gnupg):
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "T <t@example.com>", "ed25519", "sign",
                    "never"], check=True, capture_output=True)
    fingerprint = subprocess.run(["gpg", "--list-keys", "--with-colons"], capture_output=True, text=True,
                                 check=True).stdout.split("fpr:::::::::")[1].split(":")[0]
    git(origin, "commit", "-qS", "--allow-empty", "-m", "signed")
    args = {"repo": str(origin), "dest": str(tmp_path / "work"), "verify_commit": True}
    assert h.run("git", {**args, "gpg_allowlist": [fingerprint]}).changed
    refused = h.run("git", {**args, "gpg_allowlist": ["0000"]})
    assert refused.failed and refused.msg == f'The gpg_allowlist does not include the public key "{fingerprint}" ' \
                                             "for this commit"
    unsigned = h.run("git", {**args, "version": "v1a"})
    assert unsigned.failed and unsigned.msg == 'Failed to verify GPG signature of commit/tag "v1a"'


def test_umask_applies_and_must_be_a_string(h, tmp_path, origin):
    args = {"repo": str(origin), "dest": str(tmp_path / "work"), "umask": "077"}
    assert h.run("git", args).changed and mode_of(tmp_path / "work" / "a.txt") == 0o600
    assert h.run("git", {**args, "umask": 18}).msg == "umask must be defined as a quoted octal integer"
    bad = h.run("git", {**args, "umask": "9"})
    assert bad.msg == "umask must be an octal integer" and "base 8" in bad.data["details"]


def test_missing_git_names_the_package(h, tmp_path, origin, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = h.run("git", {"repo": str(origin), "dest": str(tmp_path / "work")})
    assert result.failed and result.msg.startswith(f'Failed to find required executable "git" in paths: {tmp_path}')
    assert "install the git package" in result.msg
    gone = h.run("git", {"repo": str(origin), "dest": str(tmp_path / "work"), "executable": "/nonexistent/git"})
    assert gone.failed and gone.msg == "Error executing command." and gone.rc == 2
    assert gone.data["cmd"] == "/nonexistent/git --version"


def test_ssh_gets_ansibles_options(h, tmp_path, monkeypatch):
    log, fake = tmp_path / "ssh.log", tmp_path / "fake-ssh"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(fake))
    args = {"repo": "ssh://git.example.invalid/x.git", "dest": str(tmp_path / "work"), "accept_hostkey": True,
            "key_file": "/keys/deploy", "ssh_opts": "-o Port=2222"}
    result = h.run("git", args)
    assert result.failed and result.data["cmd"].endswith("ls-remote ssh://git.example.invalid/x.git -h refs/heads/HEAD")
    assert log.read_text().splitlines()[0].startswith(
        "-o Port=2222 -o StrictHostKeyChecking=no -o BatchMode=yes -i /keys/deploy -o IdentitiesOnly=yes ")


def test_options_as_ansible_builds_them():
    plain = Git.params({"repo": "r", "dest": "d"})
    assert ssh_options(plain, {}) == "  -o BatchMode=yes"
    accept = Git.params({"repo": "r", "dest": "d", "accept_newhostkey": True, "ssh_opts": "-o X=1"})
    assert ssh_options(accept, {"ssh": [""]}) == "  -o X=1 -o StrictHostKeyChecking=accept-new -o BatchMode=yes"
    assert ssh_options(accept, {}) == "  -o X=1 -o BatchMode=yes"   # an old ssh: Ansible warns and leaves it out
    assert Git.params({"name": "r", "dest": "d"}).repo == "r"
    for args, message in (({"accept_hostkey": True, "accept_newhostkey": True},
                           "parameters are mutually exclusive: accept_hostkey|accept_newhostkey"),
                          ({"bare": True, "separate_git_dir": "/x"},
                           "parameters are mutually exclusive: separate_git_dir|bare"),
                          ({"archive_prefix": "p/"}, "missing parameter(s) required by 'archive_prefix': archive")):
        with pytest.raises(vol.Invalid, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
            Git.params({"repo": "r", "dest": "d", **args})


@pytest.mark.parametrize("line", ["ref: refs/heads/main", "ref: refs/heads/feature/x",
                                  "ref: refs/remotes/origin/main", "ref: refs/remotes/origin/feature/x", ""])
def test_head_splitter_is_ansibles(tmp_path, line):
    from ansible.modules.git import head_splitter as ansibles   # the oracle's own function, on a HEAD file
    (tmp_path / "HEAD").write_text(line + "\n")
    assert head_splitter(line, "origin") == ansibles(str(tmp_path / "HEAD"), "origin")


def test_parsers():
    assert head_splitter(None, "origin") is None
    detached = Checkout("git", "/", "/", branches=["* (HEAD detached at v1)", "main"], head_file="abc",
                        remote_head_file="ref: refs/remotes/origin/main")
    assert detached.head_branch("origin") == "main" and detached.is_local_branch("main")
    assert submodule_versions("Entering 'a'\n" + "1" * 40 + "\n") == {"a": "1" * 40}
    assert gpg_fingerprint("[GNUPG:] VALIDSIG AAA 2020 0 0 4 0 22 8 00 BBB\n") == "AAA"

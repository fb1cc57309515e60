"""pip in real virtualenvs (python3 -m venv) with wheels built here: no index, no network. Compared with
Ansible's pip module, and its requirement/version judgement with `packaging`'s (which Ansible uses)."""
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import packaging.requirements
import packaging.specifiers
import packaging.version
import pytest
import voluptuous as vol

from modules.tasks.pip import (Package, Pip, Requirement, Specifier, Version, is_present, is_venv_command,
                               recover_package_names)
from tests.unit.modules.tasks.conftest import ansible_module, mode_of

VENV = "python3 -m venv"


def wheel(directory: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of one module, written by hand."""
    info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": f"VALUE = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    assert shutil.which("python3"), "python3 is needed on this machine for the pip module's tests"
    assert subprocess.run(["python3", "-c", "import venv, ensurepip"]).returncode == 0, \
        "python3's venv and ensurepip are needed (Debian: python3-venv)"
    directory = tmp_path / "wheels"
    directory.mkdir()
    for name, version in (("tinypkg", "0.1"), ("tinypkg", "0.2"), ("otherpkg", "1.0")):
        wheel(directory, name, version)
    return directory


def offline(wheels: Path) -> str:
    return f"--no-index --find-links {wheels}"


def comparable(value, *paths: Path):
    """A registered value with each tool's own directory (and pip's relative spelling of it) replaced."""
    if isinstance(value, str):
        for path in paths:
            value = value.replace(str(path), "DIR").replace(str(path).lstrip("/").split("/", 1)[1], "DIR")
        return value
    if isinstance(value, list):
        return [comparable(item, *paths) for item in value]
    return value


def same_as_ansible(h, tmp_path: Path, args: dict) -> dict:
    """args ({dir} is each tool's own directory) run by Ansible and by recipe: registered the same."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    expected = ansible_module("pip", {k: v.replace("{dir}", str(theirs)) if isinstance(v, str) else v
                                      for k, v in args.items()})
    registered = h.run("pip", {k: v.replace("{dir}", str(ours)) if isinstance(v, str) else v
                               for k, v in args.items()}).as_register()
    assert {k: comparable(registered.get(k), ours) for k in expected} == \
        {k: comparable(v, theirs) for k, v in expected.items()}
    return registered


def test_install_again_absent_as_ansible(h, tmp_path, wheels):
    venv = {"virtualenv": "{dir}/venv", "virtualenv_command": VENV, "extra_args": offline(wheels)}
    first = same_as_ansible(h, tmp_path, {"name": "tinypkg==0.1", **venv})
    assert first["changed"] and "Successfully installed tinypkg-0.1" in first["stdout"]
    assert first["cmd"] == [f"{tmp_path}/ours/venv/bin/pip3", "install", "--no-index", "--find-links", str(wheels),
                            "tinypkg==0.1"]
    assert (tmp_path / "ours/venv/lib").exists() and first["virtualenv"] == f"{tmp_path}/ours/venv"
    again = same_as_ansible(h, tmp_path, {"name": "tinypkg==0.1", **venv})
    assert not again["changed"] and "Requirement already satisfied" in again["stdout"]
    latest = same_as_ansible(h, tmp_path, {"name": "tinypkg", "state": "latest", **venv})
    assert latest["changed"] and "tinypkg-0.2" in latest["stdout"]
    gone = same_as_ansible(h, tmp_path, {"name": "tinypkg", "state": "absent", "virtualenv": "{dir}/venv"})
    assert gone["changed"] and gone["cmd"][-3:] == ["uninstall", "-y", "tinypkg"]
    still = same_as_ansible(h, tmp_path, {"name": "tinypkg", "state": "absent", "virtualenv": "{dir}/venv"})
    assert not still["changed"] and "not installed" in still["stderr"]


def test_check_mode_reads_pip_list(h, tmp_path, wheels):
    venv = str(tmp_path / "venv")
    would_create = h.run("pip", {"name": "tinypkg", "virtualenv": venv, "virtualenv_command": VENV}, check=True)
    assert would_create.changed and not os.path.exists(venv)
    made = h.run("pip", {"name": "tinypkg==0.1", "virtualenv": venv, "virtualenv_command": VENV,
                         "extra_args": offline(wheels)})
    assert made.changed
    for name, state, changed in (("tinypkg", "present", False), ("TinyPkg>=0.1,<0.2", "present", False),
                                 ("tinypkg==0.2", "present", True), ("tinypkg~=0.1", "present", False),
                                 ("tinypkg", "absent", True), ("otherpkg", "absent", False),
                                 ("otherpkg", "present", True), ("tinypkg", "forcereinstall", False)):
        result = h.run("pip", {"name": name, "state": state, "virtualenv": venv}, check=True)
        assert result.changed is changed, (name, state)
        assert result.data["cmd"] == f"{venv}/bin/pip3 list --format=freeze" and "tinypkg==0.1" in result.data["stdout"]
    assert h.run("pip", {"name": "tinypkg", "version": "0.2", "virtualenv": venv}, check=True).changed
    for args in ({"state": "latest"}, {"extra_args": "-q"}):   # pip alone could tell: a change, as in Ansible
        assert h.run("pip", {"name": "tinypkg", "virtualenv": venv, **args}, check=True).data == {}


def test_requirements_file_compares_pip_list(h, tmp_path, wheels):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinypkg==0.1\notherpkg\n")
    args = {"requirements": str(requirements), "virtualenv": str(tmp_path / "venv"), "virtualenv_command": VENV,
            "extra_args": offline(wheels)}
    assert h.run("pip", args).changed
    again = h.run("pip", args)
    assert again.status == "ok" and again.data["requirements"] == str(requirements) and again.data["name"] is None
    requirements.write_text("tinypkg==0.2\n")
    assert h.run("pip", args).changed


def test_chdir_umask_and_site_packages(h, tmp_path, wheels):
    args = {"name": "tinypkg", "virtualenv": "env", "chdir": str(tmp_path), "virtualenv_command": VENV,
            "extra_args": offline(wheels), "umask": "0077", "virtualenv_site_packages": True}
    result = h.run("pip", args)
    assert result.changed and result.data["virtualenv"] == f"{tmp_path}/env"
    assert mode_of(tmp_path / "env" / "bin") == 0o700
    assert "include-system-site-packages = true" in (tmp_path / "env" / "pyvenv.cfg").read_text()
    bad = h.run("pip", {**args, "umask": "9"})
    assert bad.failed and bad.msg == "umask must be an octal integer"


def test_failures_are_ansibles(h, tmp_path, wheels):
    base = {"virtualenv": "{dir}/venv", "virtualenv_command": VENV}
    missing = same_as_ansible(h, tmp_path, {"name": "nosuchpkg", **base, "extra_args": offline(wheels)})
    assert missing["failed"] and missing["msg"].startswith("stdout: Looking in links:")
    same_as_ansible(h, tmp_path, {"name": "tinypkg==0.1", "version": "1", **base})
    same_as_ansible(h, tmp_path, {"name": "tinypkg", "executable": "{dir}/nowhere/pip3"})
    venv = str(tmp_path / "ours" / "venv")   # made by now: the version is checked once it is there
    assert h.run("pip", {"name": "tinypkg,otherpkg", "version": "1", "virtualenv": venv}
                 ).msg.startswith("'version' argument is ambiguous when installing multiple package distributions.")
    assert h.run("pip", {"name": "tinypkg", "virtualenv_python": "python3", "virtualenv": str(tmp_path / "other"),
                         "virtualenv_command": VENV}).msg == (
        "virtualenv_python should not be used when using the venv module or pyvenv as virtualenv_command")
    assert h.run("pip", {"name": "tinypkg", "executable": "no-such-pip"}).msg == \
        "Unable to find any of no-such-pip to use.  pip needs to be installed."
    no_virtualenv = h.run("pip", {"name": "tinypkg", "virtualenv": str(tmp_path / "v")})
    assert no_virtualenv.msg.startswith('Failed to find required executable "virtualenv" in paths: ')
    assert h.run("pip", {"name": "x", "version": "1", "state": "latest"}).msg == \
        "version is incompatible with state=latest"


def test_parameters():
    assert Pip.params({"name": "a,b>1,<2"}).name == ["a", "b>1", "<2"]
    for args, message in (({}, "one of the following is required: name, requirements"),
                          ({"name": "a", "requirements": "r"},
                           r"parameters are mutually exclusive: name\|requirements"),
                          ({"name": "a", "executable": "p", "virtualenv": "v"},
                           r"parameters are mutually exclusive: executable\|virtualenv")):
        with pytest.raises(vol.Invalid, match=message):
            Pip.params(args)
    assert is_present(Package.of("Tiny_Pkg>=0.1"), ["x==1==2", "tiny-pkg==0.2"])
    assert not is_present(Package.of("tinypkg<0.2"), ["tinypkg==0.2"]) and not is_present(Package.of("./dir"), [])
    assert is_venv_command(["python3", "-m", "venv"]) and is_venv_command(["pyvenv"])
    assert not is_venv_command(["virtualenv"]) and not is_venv_command(["python3", "-m", "virtualenv"])


def test_recover_package_names_as_ansible():
    from ansible.modules.pip import _recover_package_name as ansibles
    for names in (["django>1.11.1", "<1.11.3", "ipaddress", "simpleproject>1.1.0", "<2.0.0"],
                  ["django>1.11.1,<1.11.3,ipaddress", "simpleproject>1.1.0,<2.0.0"],
                  ["pkg[a", "b]>=1", "other"], ["a"]):
        assert recover_package_names(names) == ansibles(names)


REQUIREMENTS = ["tinypkg", " tinypkg ", "TinyPkg>=0.1", "a.b-c_d", "pkg>=1.0,<2.0", "pkg<2.0,>=1.0,>=1.0",
                "pkg[b,a]", "pkg[ x , y ]>=1", "pkg==1.0.*", "pkg~=1.4.5", "pkg ( >=1 )", "pkg===weird",
                "pkg @ https://example.com/p.whl", "pkg==1.0+local", "pkg>=1.0rc1", "pkg!=1.0.post1",
                "./local/dir", "/abs/path.whl", "git+https://example.com/r.git", "pkg 1.0", "pkg>=", "pkg~=1",
                "pkg<1.0.*", "pkg>1.0+local", "-e", "pkg[", "1pkg", "pkg=1"]


@pytest.mark.parametrize("text", REQUIREMENTS)
def test_requirement_is_written_as_packaging_writes_it(text):
    try:
        expected = str(packaging.requirements.Requirement(text))
    except packaging.requirements.InvalidRequirement:
        expected = None
    try:
        ours = str(Requirement.parse(text))
    except ValueError:
        ours = None
    assert ours == expected


VERSIONS = ["0.1", "1.0", "1.0.0", "1", "1.0a1", "1.0b2", "1.0rc1", "1.0c1", "1.0.dev1", "1.0a1.dev1", "1.0.post1",
            "1.0-1", "1.0.post1.dev2", "1.0+local", "1.0+local.7", "1.0+5", "1!0.5", "1.4.5", "1.4.9", "1.5",
            "2.0", "2.0.0.0", "v2.0", "1.1", "1.01", "10.0", "1.0.1", "1.0.0a0"]
SPECS = ["==1.0", "==1.0.0", "==1.0.*", "==1.*", "!=1.0", "!=1.0.*", ">=1.0", "<=1.0", ">1.0", "<1.0", "<1.0rc1",
         ">1.0.post0", "~=1.4.5", "~=1.4", "~=1.0a1", "==1.0+local", "===1.0", ">1!0", "<2", ">=1.0.dev0", "==1!0.5"]


def test_versions_order_as_packaging():
    ours = sorted(VERSIONS, key=lambda v: Version.parse(v))
    theirs = sorted(VERSIONS, key=packaging.version.Version)
    assert [str(packaging.version.Version(v)) for v in ours] == [str(packaging.version.Version(v)) for v in theirs]
    assert Version.parse("not a version") is None


@pytest.mark.parametrize("spec", SPECS)
def test_specifier_accepts_as_packaging(spec):
    theirs = packaging.specifiers.Specifier(spec)
    ours = Specifier.parse(spec)
    for version in VERSIONS:
        parsed = Version.parse(version)
        assert parsed is not None
        assert ours.contains(parsed) == theirs.contains(version, prereleases=True), (spec, version)

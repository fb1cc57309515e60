"""Fixtures for the Vagrant tests: the box files under test, a libvirt daemon, and Vagrant in a sandbox.

The box files come from the fixture named by BOX_FIXTURE, an object with `output` (the directory holding
`<name>-libvirt.box`, `<name>-virtualbox.box` and `<name>.box.json`) and `name`. Until the `vagrant`
export exists that is `handmade_box` below, which builds tests/integration/vagrant/data/box.yml with
`recipe run` and packs its qcow2 into boxes by hand; with the export it is `exported_image`
(tests/integration/conftest.py).

Everything the tests make in libvirt carries the PREFIX: the domain, the management network (its own
subnet, SUBNET), and a transient storage pool of its own whose volumes (the box image vagrant-libvirt
uploads, the domain's disk) go with it. Vagrant runs with VAGRANT_HOME in a temporary directory, never
~/.vagrant.d. A missing tool fails the tests, it never skips them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.vagrant.helpers import (DATA, DEBS_HINT, POOL, POOL_DIR, PREFIX, RECIPE, BoxBuild, Vagrant,
                                               make_boxes, report, require_tools)
from tests.libvirt import Libvirt, LibvirtError, libvirt_daemon

# The one line to change when the `vagrant` export lands: "exported_image" (tests/integration/conftest.py).
# RECIPE_TEST_VAGRANT_BOXES=<fixture name> picks another for one run.
BOX_FIXTURE = os.environ.get("RECIPE_TEST_VAGRANT_BOXES") or "handmade_box"


def pytest_configure(config):
    config.addinivalue_line("markers", "vagrant: boots Vagrant boxes with vagrant-libvirt (real libvirtd, TCG)")


@pytest.fixture(scope="session")
def handmade_box(request, tmp_path_factory) -> BoxBuild:
    """data/box.yml built with `recipe run` (vagrant role, marker file, sysprep; qcow2 export), packed into
    <name>-libvirt.box, <name>-virtualbox.box and <name>.box.json by hand. About 75 s under TCG with the
    bootstrap base cached; the box files go at the end of the session.

    RECIPE_TEST_VAGRANT_QCOW2=<path of a qcow2 that build made> skips the build (to work on the tests)."""
    require_tools()
    out = tmp_path_factory.mktemp("handmade-box")
    name = "vagrant-test-box"
    output = out / name
    started = time.monotonic()
    qcow2 = os.environ.get("RECIPE_TEST_VAGRANT_QCOW2")
    if qcow2:
        output.mkdir()
        os.link(qcow2, output / f"{name}.qcow2")
    else:
        run = subprocess.run([RECIPE, "run", str(DATA / "box.yml"), "--output-dir", str(out)],
                             capture_output=True, text=True, timeout=1500)
        if run.returncode != 0:
            pytest.fail(f"recipe run {DATA / 'box.yml'} failed ({run.returncode}):\n{run.stdout[-4000:]}\n"
                        f"{run.stderr[-4000:]}", pytrace=False)
    built = time.monotonic() - started
    make_boxes(output / f"{name}.qcow2", output, name, "recipe-test/vagrant-test-box")
    report(request, f"\nhandmade box: recipe run {built:.0f} s, packing {time.monotonic() - started - built:.0f} s")
    yield BoxBuild(output=output, name=name)
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def boxes(request) -> BoxBuild:
    """The box files under test: see BOX_FIXTURE."""
    return request.getfixturevalue(BOX_FIXTURE)


# ------------------------------------------------------------------ libvirt and Vagrant


@pytest.fixture(scope="module")
def libvirt(request, tmp_path_factory) -> Libvirt:
    """A libvirt daemon (started for the module when none answers) and the tests' own storage pool.

    Anything with PREFIX a killed earlier run left is removed first (and said so); anything the tests
    leave is removed afterwards, and fails the module's teardown."""
    require_tools()
    try:
        with libvirt_daemon(tmp_path_factory.mktemp("libvirtd")) as daemon:
            stale = daemon.purge(PREFIX)
            if stale:
                report(request, f"\nremoved what an earlier run left in libvirt: {', '.join(stale)}")
            with daemon.transient_pool(POOL, POOL_DIR):
                yield daemon
                left = daemon.leftovers(PREFIX, pools=(POOL,))
            left += daemon.purge(PREFIX)
            if not any(n.startswith(PREFIX) for n in daemon.names("net")):   # libvirt keeps its dnsmasq's pid file
                for path in Path("/run/libvirt/network").glob(PREFIX + "*"):
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
            if left:
                pytest.fail(f"the Vagrant tests left in libvirt: {', '.join(left)}", pytrace=False)
    except LibvirtError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def vagrant(tmp_path_factory) -> Vagrant:
    """Vagrant with its own VAGRANT_HOME (boxes, keys, plugins' data), removed afterwards."""
    require_tools()
    home = tmp_path_factory.mktemp("vagrant-home")
    logs = tmp_path_factory.mktemp("vagrant-logs")
    env = {**os.environ, "VAGRANT_HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1",
           "VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_NO_COLOR": "1", "VAGRANT_LOG": "warn"}
    env.pop("VAGRANT_CWD", None)
    env.pop("VAGRANT_DOTFILE_PATH", None)
    env.pop("VAGRANT_VAGRANTFILE", None)
    tool_ = Vagrant(home=home, env=env, logs=logs)
    plugins = tool_.run("plugin", "list").stdout
    if "vagrant-libvirt" not in plugins:
        pytest.fail(f"the vagrant-libvirt plugin is not installed (vagrant plugin list: {plugins.strip()!r}; "
                    f"{DEBS_HINT})", pytrace=False)
    yield tool_
    shutil.rmtree(home, ignore_errors=True)   # the boxes in it are as large as the images

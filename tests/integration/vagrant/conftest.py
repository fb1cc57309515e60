"""Fixtures for the Vagrant tests: the box files under test, a libvirt daemon, and Vagrant in a sandbox.

The box files are the `vagrant` export of the appliance build (`exported_image`, in
tests/integration/conftest.py): `<name>-libvirt.box`, `<name>-virtualbox.box` and `<name>.box.json`.

Everything the tests make in libvirt carries the PREFIX: the domain, the management network (its own
subnet, SUBNET), and a transient storage pool of its own whose volumes (the box image vagrant-libvirt
uploads, the domain's disk) go with it. Vagrant runs with VAGRANT_HOME in a temporary directory, never
~/.vagrant.d. A missing tool fails the tests, it never skips them.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.integration.vagrant.helpers import DEBS_HINT, POOL, POOL_DIR, PREFIX, Vagrant, report, require_tools
from tests.libvirt import Libvirt, LibvirtError, libvirt_daemon

def pytest_configure(config):
    config.addinivalue_line("markers", "vagrant: boots Vagrant boxes with vagrant-libvirt (real libvirtd, TCG)")


@pytest.fixture(scope="session")
def boxes(exported_image):
    """The box files under test: the `vagrant` export of the appliance build (tests/integration/conftest.py)."""
    require_tools()
    return exported_image


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

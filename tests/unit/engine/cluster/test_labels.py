"""Labels and queues: what a build needs, what a worker offers, and the queues that match one to the other."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from engine.cluster.labels import (MAX_NEEDS, QUEUE_PREFIX, Capacity, build_needs, default_slots, host_arch,
                                   queue_name, queues_for, usable_platforms)
from engine.recipe.compile import compile_recipe
from engine.registry import PLATFORMS, load_plugins

BASE = '{url: "https://example.invalid/d.qcow2", checksum: "sha256:' + "a" * 64 + '"}'
RECIPE = f"""\
name: lab
sources:
  box: {{platform: ssh, ssh: {{host: 127.0.0.1}}}}
  fast:
    platform: qemu
    accelerator: kvm
    base: {BASE}
    ssh: {{user: debian}}
  slow:
    platform: qemu
    accelerator: tcg
    base: {BASE}
    ssh: {{user: debian}}
  plain:
    platform: qemu
    base: {BASE}
    ssh: {{user: debian}}
tasks: []
"""


@pytest.fixture(scope="module")
def needs(tmp_path_factory) -> dict[str, frozenset[str]]:
    """Each source of RECIPE (compiled, validated only: nothing is downloaded): what its build needs."""
    path = tmp_path_factory.mktemp("labels") / "r.yml"
    path.write_text(RECIPE)
    recipe = compile_recipe(path)
    return {build.source.name: build_needs(build) for build in recipe.builds}


# -- queues ----------------------------------------------------------------------------------------


def test_queue_names_sort_their_labels():
    assert queue_name(["x86_64", "qemu", "kvm"]) == queue_name(("kvm", "x86_64", "qemu")) == "recipe.kvm+qemu+x86_64"
    assert queue_name({"ssh"}) == QUEUE_PREFIX + "ssh"


def test_a_worker_serves_every_set_of_its_labels_up_to_max_needs():
    labels = {"ssh", "qemu", "x86_64", "kvm"}
    queues = queues_for(labels)
    assert MAX_NEEDS == 3                               # the counts below are C(4,1) + C(4,2) + C(4,3)
    assert len(queues) == 4 + 6 + 4 == len(set(queues))
    expected = {queue_name(chosen) for size in (1, 2, 3) for chosen in itertools.combinations(labels, size)}
    assert set(queues) == expected
    assert queue_name(labels) not in queues             # four labels: more than a build can need
    assert queues[:4] == ["recipe.kvm", "recipe.qemu", "recipe.ssh", "recipe.x86_64"]
    assert all(name.split(".", 1)[1].split("+") == sorted(name.split(".", 1)[1].split("+")) for name in queues)


def test_queues_do_not_depend_on_the_order_or_repeats_of_labels():
    assert queues_for(["x86_64", "ssh", "kvm", "qemu"]) == queues_for(["kvm", "qemu", "ssh", "x86_64", "ssh"])


def test_few_labels_give_every_subset():
    assert queues_for(["qemu", "ssh"]) == ["recipe.qemu", "recipe.ssh", "recipe.qemu+ssh"]
    assert queues_for([]) == []


def test_a_kvm_build_reaches_only_workers_with_kvm():
    build_queue = queue_name({"kvm", "qemu", "x86_64"})
    assert build_queue in queues_for({"kvm", "qemu", "x86_64", "ssh", "gpu"})
    assert build_queue not in queues_for({"qemu", "x86_64", "ssh", "gpu"})
    assert build_queue not in queues_for({"kvm", "qemu", "aarch64"})


# -- needs -----------------------------------------------------------------------------------------


def test_an_ssh_build_needs_ssh(needs):
    assert needs["box"] == {"ssh"}


def test_a_kvm_build_needs_qemu_kvm_and_this_architecture(needs):
    assert needs["fast"] == {"qemu", "kvm", host_arch()}


@pytest.mark.parametrize("source", ["slow", "plain"])
def test_a_qemu_build_without_kvm_needs_only_qemu(needs, source):
    assert needs[source] == {"qemu"}


def test_every_build_has_a_queue_its_workers_serve(needs):
    worker = queues_for({"ssh", "qemu", "kvm", host_arch(), "extra"})
    assert all(queue_name(need) in worker for need in needs.values())


# -- platforms and slots ---------------------------------------------------------------------------


def test_without_programs_only_the_platforms_that_need_none_are_usable(tmp_path, monkeypatch):
    load_plugins()
    monkeypatch.setenv("PATH", str(tmp_path))
    found = usable_platforms()
    assert found == sorted(name for name in PLATFORMS.names() if not PLATFORMS.get(name).host_tools)
    assert {"ssh", "amazon"} <= set(found) and "qemu" not in found and "vagrant" not in found


def test_qemu_is_usable_when_its_programs_are_on_the_path(tmp_path, monkeypatch):
    load_plugins()
    for tool in ("qemu-system-x86_64", "qemu-img"):
        program = tmp_path / tool
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o755)
    (tmp_path / "vagrant").write_text("not executable\n")      # present but not a program: vagrant stays out
    monkeypatch.setenv("PATH", str(tmp_path))
    found = usable_platforms()
    assert "qemu" in found and "vagrant" not in found and found == sorted(found)


def test_default_slots_is_at_least_one(tmp_path):
    assert default_slots(tmp_path / "builds") >= 1
    assert (tmp_path / "builds").is_dir()                       # made, to measure its disk


@pytest.mark.parametrize("per_build", [Capacity(disk=1 << 60), Capacity(memory=1 << 60), Capacity(cores=1e6)],
                         ids=["disk", "memory", "cores"])
def test_default_slots_is_limited_by_each_resource(tmp_path, per_build):
    assert default_slots(tmp_path, per_build) == 1


def test_default_slots_follows_the_cores_when_nothing_else_limits(tmp_path):
    cores = os.cpu_count() or 1
    tiny = Capacity(cores=0.5, memory=1, disk=1)
    assert default_slots(Path(tmp_path), tiny) == cores * 2

"""The qemu platform's own parts, each against the real tool: the accelerator probe, the seed, QEMU's command line."""
import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import asyncssh
import pytest
from ruamel.yaml import YAML

from engine.remote.ssh import BUILD_KEY_MARK
from engine import accelerator as accel
from modules.platforms.qemu.machine import Machine, MachineSpec, command
from modules.platforms.qemu.seed import make_seed

HERE = Path(accel.__file__).parent


def test_probe_bytes_are_the_assembled_probe_source(tmp_path):
    if not shutil.which("as"):
        pytest.fail("binutils (as, ld) are needed to check the probe; gcc's toolchain provides them")
    subprocess.run(["as", "--64", "-o", tmp_path / "p.o", HERE / "accelerator_probe.S"], check=True)
    subprocess.run(["ld", "-Ttext", "0x7c00", "--oformat", "binary", "-o", tmp_path / "p.img", tmp_path / "p.o"],
                   check=True)
    assert (tmp_path / "p.img").read_bytes() == accel.probe_image()


def test_probe_guest_runs_under_tcg():
    seconds = asyncio.run(accel.run_probe("tcg"))
    assert seconds is not None and seconds < 5


def test_auto_never_picks_an_accelerator_whose_guest_does_not_run(monkeypatch):
    async def fake_probe(kind, qemu=accel.QEMU):
        return None if kind == "kvm" else 0.3

    monkeypatch.setattr(accel, "_choice", None)
    monkeypatch.setattr(accel, "run_probe", fake_probe)
    monkeypatch.setattr(accel, "kvm_device_usable", lambda: True)
    assert asyncio.run(accel.choose_accelerator("auto")) == "tcg"
    assert asyncio.run(accel.choose_accelerator("kvm")) == "kvm"


def test_the_probe_answer_is_kept_for_this_boot_of_the_machine(tmp_path, monkeypatch):
    probes = []
    real_probe = accel.run_probe

    async def counted_probe(kind, qemu=accel.QEMU):
        probes.append(kind)
        return await real_probe(kind, qemu)

    monkeypatch.setattr(accel, "run_probe", counted_probe)
    monkeypatch.setattr(accel, "kvm_device_usable", lambda: True)     # probe both, whatever this machine has
    remembered = tmp_path / "cache" / "accelerator.json"
    monkeypatch.setattr(accel, "_choice", None)
    first = asyncio.run(accel.choose_accelerator("auto", remembered=remembered))
    assert probes == ["tcg", "kvm"]
    record = json.loads(remembered.read_text())
    assert record["choice"] == first
    assert record["key"]["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()

    monkeypatch.setattr(accel, "_choice", None)                     # a new `recipe run`, same boot
    assert asyncio.run(accel.choose_accelerator("auto", remembered=remembered)) == first
    assert probes == ["tcg", "kvm"]

    record["key"]["boot_id"] = "another-boot"                       # after a reboot the answer is probed again
    remembered.write_text(json.dumps(record))
    monkeypatch.setattr(accel, "_choice", None)
    asyncio.run(accel.choose_accelerator("auto", remembered=remembered))
    assert probes == ["tcg", "kvm", "tcg", "kvm"]


def test_seed_has_keys_and_user_data(tmp_path):
    seed = asyncio.run(make_seed(tmp_path, "b123", "build", "debian", "web"))
    data = YAML(typ="safe").load((tmp_path / "cidata" / "user-data").read_text())
    assert (tmp_path / "cidata" / "user-data").read_text().startswith("#cloud-config\n")
    user = data["users"][0]
    assert user["name"] == "debian" and user["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert user["ssh_authorized_keys"][0].endswith(f"{BUILD_KEY_MARK}b123-build")
    host_private = asyncssh.import_private_key(data["ssh_keys"]["ed25519_private"])
    assert host_private.export_public_key("openssh").decode().split()[:2] == seed.host_public_key.split()
    login = asyncssh.read_private_key(str(seed.private_key))
    assert login.export_public_key("openssh").decode().split()[1] == user["ssh_authorized_keys"][0].split()[1]
    assert oct(seed.private_key.stat().st_mode & 0o777) == "0o600"
    listing = subprocess.run(["xorriso", "-indev", str(seed.iso), "-pvd_info"], capture_output=True, text=True)
    assert "Volume Id    : cidata" in listing.stdout + listing.stderr


def test_command_line(tmp_path):
    spec = MachineSpec(name="t", disk=tmp_path / "d.qcow2", console_log=tmp_path / "c.log", ssh_port=2222,
                       firmware="uefi", ovmf_vars=tmp_path / "vars.fd", seed=tmp_path / "s.iso",
                       extra_args=("-smbios", "type=1"))
    args = command(spec)
    assert args[:1] == ["qemu-system-x86_64"] and "-accel" in args and args[args.index("-accel") + 1] == "tcg"
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22" in args
    assert any("if=pflash" in a and "readonly=on" in a for a in args)
    assert args[-2:] == ["-smbios", "type=1"]


def test_machine_that_cannot_start_says_why(tmp_path):
    spec = MachineSpec(name="t", disk=tmp_path / "missing.qcow2", console_log=tmp_path / "c.log", ssh_port=1)
    machine = Machine(spec, tmp_path / "qemu.log")
    from engine.errors import BuildError
    with pytest.raises(BuildError, match="QEMU exited at once"):
        asyncio.run(machine.start())
    assert not machine.running

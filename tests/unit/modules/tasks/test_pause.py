import re
import time

import pytest
import voluptuous as vol


def test_seconds(h):
    began = time.monotonic()
    result = h.run("pause", {"seconds": "1"})
    assert 1 <= time.monotonic() - began < 3
    assert result.status == "ok" and result.data["delta"] == 1 and result.stdout.startswith("Paused for 1.")
    assert result.stdout.endswith(" seconds") and result.data["user_input"] == "" and result.rc == 0


def test_less_than_a_second_waits_one(h):
    began = time.monotonic()
    assert h.run("pause", {"seconds": 0}).data["delta"] == 1 and time.monotonic() - began >= 1


def test_prompt_alone_does_not_wait_without_a_terminal(h):
    began = time.monotonic()
    result = h.run("pause", {"prompt": "Press enter"})
    assert time.monotonic() - began < 1 and result.status == "ok"
    assert "not interactive" in result.msg and result.stdout == "Paused for 0.0 minutes"


def test_check_mode_pauses_too(h):
    began = time.monotonic()
    assert h.run("pause", {"seconds": 1, "echo": False}, check=True).data["echo"] is False
    assert time.monotonic() - began >= 1


def test_bad_arguments(h):
    with pytest.raises(vol.Invalid, match="not both"):
        h.params("pause", {"seconds": 1, "minutes": 1})
    with pytest.raises(vol.Invalid, match="whole number"):
        h.params("pause", {"minutes": "0.5"})


# Verified with `ansible localhost -c local -m pause </dev/null` (ansible-core 2.19.14); times differ:
#   seconds=1 -> ok {"changed": false, "delta": 1, "echo": true, "rc": 0, "stderr": "",
#                   "stdout": "Paused for 1.0 seconds", "user_input": ""}
#   prompt=hey -> ok {... "delta": 0, "stdout": "Paused for 0.0 minutes", "user_input": ""}
@pytest.mark.parametrize("args, expected", [
    ({"seconds": 1}, {"changed": False, "delta": 1, "echo": True, "rc": 0, "stderr": "", "user_input": ""}),
    ({"prompt": "hey"}, {"changed": False, "delta": 0, "echo": True, "rc": 0, "stderr": "",
                         "stdout": "Paused for 0.0 minutes", "user_input": ""}),
])
def test_same_as_ansible(h, args, expected):
    registered = h.run("pause", args).as_register()
    assert {key: registered[key] for key in expected} == expected
    assert registered["start"] < registered["stop"]
    assert re.fullmatch(r"Paused for \d+\.\d{1,2} (seconds|minutes)", registered["stdout"])   # 1.0, or 1.01 if slow

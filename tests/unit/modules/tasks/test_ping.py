import pytest

from tests.unit.modules.tasks.conftest import NobodyConnection


# Verified with `ansible localhost -c local -m ping` (ansible-core 2.19.14): args -> (status, registered).
@pytest.mark.parametrize("args, status, registered", [
    ({}, "ok", {"changed": False, "ping": "pong"}),
    ({"data": 5}, "ok", {"changed": False, "ping": "5"}),
    ({"data": "crash"}, "failed", {"changed": False, "msg": "boom"}),
])
def test_ping(h, args, status, registered):
    result = h.run("ping", args)
    assert result.status == status
    assert {key: result.as_register()[key] for key in registered} == registered


def test_ping_runs_on_the_target(h):
    h.run("ping", {})
    assert h.connection.scripts == ["true"]
    assert h.run("ping", {}, check=True).data == {"ping": "pong"}


def test_ping_as_an_unprivileged_user(h):
    h.connection = NobodyConnection()
    assert h.run("ping", {}).status == "ok"

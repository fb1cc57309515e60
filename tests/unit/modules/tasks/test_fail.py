import pytest
import voluptuous as vol


# Verified with ansible-playbook (ansible-core 2.19.14): args -> registered msg.
@pytest.mark.parametrize("args, msg", [
    ({}, "Failed as requested from task"),
    (None, "Failed as requested from task"),
    ({"msg": "stop here"}, "stop here"),
    ({"msg": [1, 2]}, [1, 2]),
])
def test_fail_always_fails(h, args, msg):
    result = h.run("fail", args)
    assert result.status == "failed" and result.as_register()["msg"] == msg and not result.changed
    assert h.run("fail", args, check=True).status == "failed"


def test_unknown_option(h):
    with pytest.raises(vol.Invalid, match="unknown option"):
        h.params("fail", {"message": "x"})

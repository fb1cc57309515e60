import pytest
import voluptuous as vol

from engine.registry import TASK_MODULES


def test_all_hold(h):
    h.set_vars(x=1, names=["a", "b"])
    result = h.run("assert", {"that": ["x == 1", "'a' in names", True]})
    assert result.status == "ok" and result.msg == "All assertions passed"
    assert result.as_register()["msg"] == "All assertions passed" and "assertion" not in result.data


def test_one_expression_and_success_msg(h):
    h.set_vars(x=1)
    result = h.run("assert", {"that": "x > 0", "success_msg": ["fine", "really"], "quiet": "yes"})
    assert result.status == "ok" and result.data["msg"] == ["fine", "really"]


def test_first_failing_expression_is_reported(h):
    h.set_vars(x=1)
    result = h.run("assert", {"that": ["x == 1", "x == 2", "x == 3"], "msg": "x is off"})
    assert result.status == "failed" and result.msg == "x is off"
    assert result.data == {"assertion": "x == 2", "evaluated_to": False, "msg": "x is off"}


def test_expressions_see_facts(h):
    h.facts["os_family"] = "Debian"
    assert h.run("assert", {"that": "facts.os_family == 'Debian'"}).status == "ok"


def test_evaluation_errors_fail_the_task(h):
    undefined = h.run("assert", {"that": "nothing_defines_this == 1"})
    assert undefined.status == "failed" and "nothing_defines_this" in undefined.msg
    assert undefined.data["assertion"] == "nothing_defines_this == 1"
    # Ansible 2.19: braces inside a bare expression are a syntax error, not a template
    h.set_vars(x=1)
    assert h.run("assert", {"that": "{{ x }} == 1"}).status == "failed"
    assert h.run("assert", {"that": "{{ x == 1 }}"}).status == "ok"    # one whole {{ }} is still accepted


def test_results_must_be_booleans(h):
    """Ansible 2.19: "Conditional result (True) was derived from value of type 'str'...": the task fails."""
    h.set_vars(s="abc", empty="")
    for that in ("s", "empty"):
        result = h.run("assert", {"that": that})
        assert result.status == "failed" and "must have a boolean result" in result.msg


def test_check_mode_asserts_too(h):
    h.set_vars(x=1)
    assert h.run("assert", {"that": "x == 2"}, check=True).status == "failed"


def test_that_is_not_rendered_by_the_engine():
    assert TASK_MODULES.get("assert").raw_options == ("that",)


def test_bad_arguments(h):
    with pytest.raises(vol.Invalid, match="required"):
        h.params("assert", {"fail_msg": "x"})
    with pytest.raises(vol.Invalid, match="expression"):
        h.params("assert", {"that": [{"a": 1}]})
    with pytest.raises(vol.Invalid, match="syntax"):
        h.params("assert", {"that": "x =="})
    with pytest.raises(vol.Invalid, match="list of strings"):
        h.params("assert", {"that": "true", "fail_msg": {"a": 1}})


# Verified with ansible-playbook (ansible-core 2.19.14), vars {x: 1}: that -> (status, registered result).
ANSIBLE = [
    (["x == 1"], {}, "ok", {"changed": False, "msg": "All assertions passed"}),
    (["x == 1", "x == 2"], {"fail_msg": "nope"},
     "failed", {"assertion": "x == 2", "changed": False, "evaluated_to": False, "msg": "nope"}),
    ("x == 2", {"quiet": True}, "failed",
     {"assertion": "x == 2", "changed": False, "evaluated_to": False, "msg": "Assertion failed"}),
    ([], {}, "ok", {"changed": False, "msg": "All assertions passed"}),
    ([True, "x == 1"], {"success_msg": ["a", "b"]}, "ok", {"changed": False, "msg": ["a", "b"]}),
]


@pytest.mark.parametrize("that, extra, status, registered", ANSIBLE)
def test_same_as_ansible(h, that, extra, status, registered):
    h.set_vars(x=1)
    result = h.run("assert", {"that": that, **extra})
    assert result.status == status
    assert {key: result.as_register()[key] for key in registered} == registered

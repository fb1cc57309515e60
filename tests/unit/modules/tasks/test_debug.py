import asyncio
import dataclasses

import pytest
import voluptuous as vol

from modules.tasks.debug import Debug


def test_debug(h):
    assert h.run("debug", {"msg": "hi"}).data == {"msg": "hi"}
    assert h.run("debug", "free form").msg == "free form"
    assert h.run("debug", {"msg": [1, 2]}).data == {"msg": [1, 2]}
    shown = h.run("debug", {"var": "greeting"})
    assert shown.status == "ok" and shown.data["msg"] == "hello" and "greeting: hello" in shown.msg
    assert h.run("debug", {"var": "undefined_thing"}).data["msg"] == "VARIABLE IS NOT DEFINED!"
    assert h.run("debug", {}).msg == "Hello world!"
    with pytest.raises(vol.Invalid):
        h.params("debug", {"msg": "a", "var": "b"})


def test_verbosity_above_zero_is_skipped_as_without_dash_v(h):
    hidden = h.run("debug", "msg=hi verbosity=1")
    assert hidden.skipped and hidden.data == {"skipped_reason": "Verbosity threshold not met."}
    assert h.run("debug", {"msg": "hi", "verbosity": "0"}).status == "ok"
    with pytest.raises(vol.Invalid):
        h.params("debug", {"msg": "hi", "verbosity": "loud"})


def test_key_value_msg_and_var(h):
    assert h.run("debug", "msg=hi").data == {"msg": "hi"}
    assert h.run("debug", "var=greeting").data["greeting"] == "hello"


def test_var_registers_the_value_itself(h):
    ctx = dataclasses.replace(h.context(), evaluate=lambda expression: {"items": [1, 2]}[expression])
    result = asyncio.run(Debug().run(h.params("debug", "var=items"), ctx))
    assert result.data["items"] == [1, 2] and result.msg == "items: [1, 2]"

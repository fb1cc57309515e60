import base64
import json
import shlex
import urllib.parse

from engine.errors import Position, Problem
from engine.secrets import MASK, Redactor


def test_every_disguise_of_a_secret_is_masked():
    secret = "p@ss w0rd/\"x"
    redactor = Redactor([secret])
    forms = [secret, shlex.quote(secret), json.dumps(secret), base64.b64encode(secret.encode()).decode(),
             urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)]
    for form in forms:
        masked = redactor.text(f"before {form} after")
        assert secret not in masked and form not in masked, form
        assert MASK in masked


def test_structures_are_masked_and_copied():
    redactor = Redactor(["hunter2"])
    event = {"msg": "token hunter2", "items": [{"x": "hunter2"}], "n": 3}
    assert redactor.value(event) == {"msg": f"token {MASK}", "items": [{"x": MASK}], "n": 3}
    assert event["msg"] == "token hunter2"


def test_short_values_are_not_masked_everywhere():
    assert Redactor(["a"]).text("a banana") == "a banana"


def test_a_problem_is_one_line_and_still_masks_a_multiline_secret():
    secret = "line one\nline\ttwo\x1b[31m"
    problem = Problem(Position("web\n.yml", 3, 5), f"bad value {secret!s}", path="vars.key\r", hint="a\nb")
    shown = str(problem)
    assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown
    assert shown.startswith("web\\n.yml:3:5: vars.key\\r: bad value line one\\nline\\ttwo\\x1b[31m")
    assert shown.endswith("(hint: a\\nb)")
    masked = Redactor([secret]).text(shown)
    assert "line one" not in masked and MASK in masked

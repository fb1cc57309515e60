"""Build tickets and results: what travels between the submitter and a worker, as JSON text."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from engine.cluster.ticket import VERSION, BuildResult, BuildTicket, RunSettings
from engine.errors import BuildError

TICKET = BuildTicket(
    run="run-1", build="web-vm", source="vm", build_id="20250101-000000-abcd", started=1735689600.25,
    bundle="f" * 64, recipe="project/web.yml", origin="/home/me/src",
    var_assignments=("password=s3cret", "greeting=héllo wörld"), var_files=("vars/site.yml",),
    roles_path=("shared-roles", "more-roles"), environ={"RECIPE_VAR_token": "abc"},
    settings=RunSettings(check=True, diff=True, tags=("web", "db"), skip_tags=("slow",), force_handlers=True,
                         no_cache=True, on_error="abort", debug=True),
    needs=("kvm", "qemu", "x86_64"),
)


def through_json(data: object) -> object:
    """What Celery's JSON serializer does to a task's argument on its way to the worker."""
    return json.loads(json.dumps(data))


def test_a_ticket_survives_json_unchanged():
    again = BuildTicket.from_json(through_json(TICKET.as_json()))
    assert again == TICKET
    assert isinstance(again.settings, RunSettings)
    assert again.settings.tags == ("web", "db") and isinstance(again.needs, tuple)


def test_a_default_ticket_survives_json_unchanged():
    plain = BuildTicket(run="r", build="b", source="s", build_id="i", started=0.0, bundle="d", recipe="r.yml",
                        origin="/")
    assert BuildTicket.from_json(through_json(plain.as_json())) == plain
    assert plain.as_json()["version"] == VERSION


def test_a_ticket_without_optional_fields_takes_the_defaults():
    data = through_json(TICKET.as_json())
    for name in ("var_assignments", "var_files", "roles_path", "environ", "settings", "needs"):
        del data[name]
    again = BuildTicket.from_json(data)
    assert again.settings == RunSettings() and again.var_files == () and again.environ == {}


@pytest.mark.parametrize("version", [VERSION + 1, 0, "1", None])
def test_a_ticket_of_another_version_is_refused(version):
    data = {**through_json(TICKET.as_json()), "version": version}
    with pytest.raises(BuildError) as raised:
        BuildTicket.from_json(data)
    assert f"version {version!r}" in raised.value.message
    assert f"reads version {VERSION}" in raised.value.message
    assert raised.value.hint


def test_a_ticket_without_a_version_is_refused():
    data = through_json(TICKET.as_json())
    del data["version"]
    with pytest.raises(BuildError, match="version None"):
        BuildTicket.from_json(data)


@pytest.mark.parametrize("data", [["a", "list"], "text", 42, None], ids=["list", "str", "int", "null"])
def test_what_is_not_an_object_is_refused(data):
    with pytest.raises(BuildError, match="malformed build ticket: a .*, not a mapping"):
        BuildTicket.from_json(data)


def test_an_unknown_field_is_a_malformed_ticket():
    with pytest.raises(BuildError, match="malformed build ticket.*surprise"):
        BuildTicket.from_json({**through_json(TICKET.as_json()), "surprise": 1})


def test_a_missing_field_is_a_malformed_ticket():
    data = through_json(TICKET.as_json())
    del data["bundle"]
    with pytest.raises(BuildError, match="malformed build ticket.*bundle"):
        BuildTicket.from_json(data)


@pytest.mark.parametrize("change", [
    {"settings": {"surprise": True}},
    {"settings": None},
    {"settings": ["check"]},
    {"needs": 5},
], ids=["unknown-setting", "null-settings", "list-settings", "number-needs"])
def test_malformed_settings_or_lists_are_a_malformed_ticket(change):
    with pytest.raises(BuildError, match="malformed build ticket"):
        BuildTicket.from_json({**through_json(TICKET.as_json()), **change})


# -- results ---------------------------------------------------------------------------------------


def test_a_result_survives_text_unchanged():
    result = BuildResult(
        build="web-vm", status="failed", worker="w1", attempt=2, error="step 3 failed: ünïcode ✗",
        duration=12.5, counts={"ok": 3, "changed": 1, "failed": 1},
        location={"kind": "worker", "worker": "w1", "path": "/srv/recipe/run-1/web-vm"},
        files=[{"path": "web-vm.qcow2", "size": 10, "sha256": "0" * 64}],
        manifests=[{"path": "manifest.json", "recipe": {"name": "web"}, "entry": {"build": "web-vm"}}],
        left_behind=["vm web-vm-1"],
    )
    text = result.to_text()
    assert BuildResult.from_text(text) == result
    assert BuildResult.from_text(text.encode()) == result
    assert json.loads(text)["status"] == "failed"


def test_a_minimal_result_survives_text_unchanged():
    result = BuildResult(build="b", status="succeeded", worker="w", attempt=1)
    assert BuildResult.from_text(result.to_text()) == result
    assert BuildResult.from_text(result.to_text()).location is None


def test_result_text_is_canonical():
    one = BuildResult(build="b", status="succeeded", worker="w", attempt=1, counts={"b": 1, "a": 2})
    other = replace(one, counts={"a": 2, "b": 1})
    assert one.to_text() == other.to_text()

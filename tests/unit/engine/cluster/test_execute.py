"""A worker's side of one delivery, in this process: a real redis-server, a real sshd, a folder store."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from engine.cluster import keys
from engine.cluster.broker import Broker
from engine.cluster.bundle import collect
from engine.cluster.bundle_transfer import upload
from engine.cluster.execute import Ending, WorkerContext, execute
from engine.cluster.store import FolderStore
from engine.cluster.stream import read
from engine.cluster.ticket import BuildResult, BuildTicket
from engine.recipe.compile import CompileOptions, compile_recipe
from tests.cluster import ssh_recipe

RUN = "20261129-040000-abcdef"


@pytest.fixture
def context(redis_url, tmp_path) -> WorkerContext:
    return WorkerContext(name="w1@test", broker=Broker.parse(redis_url), store=FolderStore(tmp_path / "store"),
                         bundles=tmp_path / "bundles")


def ticket_for(recipe_path: Path, client: redis.Redis, **changes) -> dict:
    recipe = compile_recipe(recipe_path, CompileOptions())
    bundle = collect(recipe)
    upload(bundle, client)
    build = recipe.builds[0]
    ticket = BuildTicket(run=RUN, build=build.info.name, source=build.source.name, build_id=build.info.id,
                         started=float(build.info.timestamp), bundle=bundle.digest,
                         recipe=bundle.relative(recipe.path), origin=str(bundle.root), needs=("ssh",))
    return {**ticket.as_json(), **changes}


def events(client: redis.Redis) -> list[dict]:
    return [item.event for item in read(client, RUN, "0", block=0.1)]


def result(client: redis.Redis, build: str) -> BuildResult:
    return BuildResult.from_text(client.get(keys.result(RUN, build)))


def test_a_build_runs_and_its_error_names_the_recipe_where_the_submitter_has_it(context, sshd, tmp_path):
    client = context.broker.client()
    folder = tmp_path / "repo"
    folder.mkdir()
    recipe = folder / "web.yml"
    recipe.write_text(ssh_recipe("web", sshd, f"  - name: a mark\n    copy:\n      dest: {tmp_path}/mark\n"
                                              f"      content: \"{{{{ build.id }}}}\\n\"\n"
                                              "  - name: fails on purpose\n    command: 'false'\n"))
    ticket = ticket_for(recipe, client)
    assert execute(ticket, context) is Ending.DONE
    done = result(client, "web-box")
    assert (done.status, done.worker, done.attempt) == ("failed", "w1@test", 1)
    assert done.counts["changed"] == 1 and done.counts["failed"] == 1
    assert (tmp_path / "mark").read_text() == ticket["build_id"] + "\n"
    assert done.location == {"kind": "folder", "where": str(tmp_path / "store" / RUN / "web-box"),
                             "worker": "w1@test"}
    seen = events(client)
    assert [e["event"] for e in seen][:2] == ["cluster.attempt", "build.start"]
    assert seen[-1]["event"] == "cluster.result"
    # the error's position names the recipe where the submitter has it, not the worker's unpacked bundle
    assert done.error.startswith(f"{recipe}:") and "fails on purpose" in done.error
    assert str(recipe) in json.dumps(seen[-2]) and str(context.bundles) not in json.dumps(seen)
    assert client.get(keys.lease(RUN, "web-box")) is None


def test_a_bundle_gone_from_the_broker_fails_the_build_saying_so(context, sshd, tmp_path):
    client = context.broker.client()
    recipe = tmp_path / "web.yml"
    recipe.write_text(ssh_recipe("web", sshd, "  - name: never\n    command: 'true'\n"))
    ticket = ticket_for(recipe, client, bundle="0" * 64)
    assert execute(ticket, context) is Ending.DONE
    done = result(client, "web-box")
    assert done.status == "failed" and "not in the broker" in done.error
    ends = [e for e in events(client) if e["event"] == "build.end"]
    assert [e["status"] for e in ends] == ["failed"]


def test_a_cancelled_run_s_build_never_starts_and_a_finished_one_never_runs_again(context, sshd, tmp_path):
    client = context.broker.client()
    recipe = tmp_path / "web.yml"
    recipe.write_text(ssh_recipe("web", sshd, f"  - name: a mark\n    command: touch {tmp_path}/ran\n"))
    ticket = ticket_for(recipe, client)
    client.set(keys.cancel(RUN), "interrupted")
    assert execute(ticket, context) is Ending.DONE
    assert result(client, "web-box").error == "stopped before it started"
    assert not (tmp_path / "ran").exists() and client.get(keys.attempts(RUN, "web-box")) is None
    client.delete(keys.cancel(RUN))
    assert execute(ticket, context) is Ending.DONE          # a result is there: a second delivery ends at once
    assert not (tmp_path / "ran").exists()


def test_a_ticket_of_another_release_is_refused_without_a_trace_of_its_content(context, caplog):
    assert execute({"version": 99, "var_assignments": ["password=hunter22"]}, context) is Ending.DONE
    assert "version 99" in caplog.text and "hunter22" not in caplog.text

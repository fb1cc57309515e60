"""Builds on a cluster: a real redis-server (with a password), real `recipe worker` processes, a real sshd.

The module's two workers offer different labels: `wa` ssh and x86_64, `wb` also qemu. Each takes one build at
a time, so a directory of builds spreads over both. Each has a TMPDIR of its own, as the fault tests' runs do:
a `recipe run` in the other test lane sweeps every dead run it can see, and would take the claim a killed
worker's attempt left before the restarted worker's own sweep could be checked.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from engine.leftovers.claims import RUNS_DIR
from tests.cluster import RECIPE, Worker, json_events, ssh_recipe, wait_for
from tests.redis_server import redis_server

PASSWORD = "broker-Pa55word"
SECRET = "s3cr3t-T0ken-value"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    with redis_server(password=PASSWORD) as server:
        workers = {name: Worker(name, labels, folder / f"{name}-store", folder / f"{name}.log", server.url,
                                extra=("--visibility-timeout", "4s"), tmp=folder / f"{name}-tmp")
                   for name, labels in (("wa", "ssh,x86_64"), ("wb", "ssh,qemu,x86_64"))}
        try:
            for worker in workers.values():
                worker.start(wait=False)
            for worker in workers.values():
                worker.wait_ready()
            yield server, workers
        finally:
            for worker in workers.values():
                worker.stop()


def submit(server, *args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """`recipe run --cluster` with the broker's password in the environment, out of the command line."""
    return subprocess.run([RECIPE, "run", "--cluster", f"redis://127.0.0.1:{server.port}/0", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "RECIPE_BROKER_PASSWORD": PASSWORD})


def in_background(url: str, target: Path, json_file: Path, out: Path, *extra: str) -> subprocess.Popen:
    """`recipe run --cluster` left running, its events in json_file as they come."""
    return subprocess.Popen([RECIPE, "run", "--cluster", url, str(target), "--json", str(json_file), "--output-dir",
                             str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(run: subprocess.Popen) -> None:
    """A test that failed midway stops its run as a person would (Ctrl-C), so no build keeps a worker busy."""
    if run.poll() is None:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()


def started_tasks(json_file: Path) -> int:
    return sum(e.get("event") == "task.start" for e in json_events(json_file))


def builds_by_worker(events: list[dict]) -> dict[str, str]:
    return {e["build"]: e["worker"] for e in events if e.get("event") == "build.start"}


def everything_in(url: str) -> bytes:
    """Every value of every key in the broker, as bytes: what a secret must not be found in."""
    client = redis.Redis.from_url(url)
    found = []
    for key in client.scan_iter(count=1000):
        found += [key, *values_of(client, key, client.type(key).decode())]
    return b"\n".join(v for v in found if v)


def values_of(client: redis.Redis, key: bytes, kind: str) -> list[bytes]:
    if kind == "string":
        return [client.get(key)]
    if kind == "stream":
        return [value for _, fields in client.xrange(key) for value in fields.values()]
    if kind == "hash":
        return [k + b"=" + v for k, v in client.hgetall(key).items()]
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return list(client.smembers(key))
    return client.zrange(key, 0, -1) if kind == "zset" else []


def test_builds_spread_over_the_workers_and_a_build_no_worker_can_take_fails_clearly(cluster, sshd, tmp_path):
    server, workers = cluster
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    for number in range(4):
        tasks = (f"  - name: wait a little\n    command: sleep 2\n"
                 f"  - name: leave a mark\n    copy:\n      dest: {target}/mark-{number}\n"
                 f"      content: \"{{{{ token }}}} from {{{{ build.name }}}}\\n\"\n")
        (recipes / f"web{number}.yml").write_text(ssh_recipe(f"web{number}", sshd, tasks, "secrets: [token]\n"))
    (recipes / "fast.yml").write_text(
        "name: fast\nsources:\n  vm:\n    platform: qemu\n    accelerator: kvm\n"
        "    base: {url: 'http://127.0.0.1:9/debian.qcow2', checksum: 'sha256:" + "0" * 64 + "'}\n"
        "tasks:\n  - name: nothing\n    command: 'true'\n")
    json_file = tmp_path / "events.json"
    done = submit(server, str(recipes), "--var", f"token={SECRET}", "--json", str(json_file), "--output-dir",
                  str(tmp_path / "out"), "--cluster-timeout", "5s", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    events = json_events(json_file)
    ends = {e["build"]: e for e in events if e.get("event") == "build.end"}
    assert sorted(ends) == ["fast-vm", "web0-box", "web1-box", "web2-box", "web3-box"]
    assert [e["build"] for e in events if e.get("event") == "build.end"].count("web0-box") == 1
    assert all(ends[f"web{n}-box"]["status"] == "succeeded" for n in range(4)), ends
    assert ends["web0-box"]["counts"]["changed"] == 2
    assert ends["fast-vm"]["status"] == "failed"
    assert "no live worker offers kvm,qemu,x86_64" in ends["fast-vm"]["error"]
    assert "recipe worker --labels kvm,qemu,x86_64" in done.stdout
    # both workers built, and every event of a build names the worker it happened on
    assert set(builds_by_worker(events).values()) == {f"{w}@{os.uname().nodename}" for w in workers}
    assert all(e.get("worker") for e in events if e.get("event") == "task.end")
    for number in range(4):
        assert (target / f"mark-{number}").read_text() == f"{SECRET} from web{number}-box\n"
        log = (tmp_path / "out" / f"web{number}-box" / "build.log").read_text()
        assert "leave a mark" in log and "succeeded" in log
    # the secret: in no event, no worker log, nothing left in the broker; the broker's password in no output
    assert SECRET not in json_file.read_text() and SECRET not in done.stdout + done.stderr
    for worker in workers.values():
        assert SECRET not in worker.log() and PASSWORD not in worker.log()
    assert SECRET.encode() not in everything_in(server.url)
    assert PASSWORD not in done.stdout + done.stderr + json_file.read_text()


def test_a_killed_worker_s_build_is_run_by_the_other_once_and_its_leftovers_are_swept(cluster, sshd, tmp_path):
    server, workers = cluster
    recipe = tmp_path / "slow.yml"
    tasks = (f"  - name: a long step\n    command: sleep 12\n"
             f"  - name: done\n    copy:\n      dest: {tmp_path}/done\n      content: \"{{{{ build.id }}}}\\n\"\n")
    recipe.write_text(ssh_recipe("slow", sshd, tasks))
    json_file = tmp_path / "events.json"
    run = in_background(server.url, recipe, json_file, tmp_path / "out")
    victim, held, output = None, [], ""
    try:
        first = wait_for(lambda: builds_by_worker(json_events(json_file)).get("slow-box"), 120, "the build to start")
        wait_for(lambda: any(e.get("event") == "task.start" and e.get("task") == "a long step"
                             for e in json_events(json_file)), 60, "the long step")
        victim = next(w for w in workers.values() if first.startswith(w.name + "@"))
        assert victim.tmp is not None
        held = [c for c in (victim.tmp / RUNS_DIR.name).glob("*.json")
                if str(victim.output) in c.read_text(errors="replace")]
        victim.kill()
        output, _ = run.communicate(timeout=180)
    finally:
        stop(run)
        alive_before_restart = [c for c in held if c.exists()]
        if victim is not None:
            victim.start()             # it sweeps what the killed attempt left; the module's other tests need it
    survivor = next(w for w in workers.values() if w is not victim)
    assert run.returncode == 0, output
    events = json_events(json_file)
    ends = [e for e in events if e.get("event") == "build.end"]
    assert len(ends) == 1 and ends[0]["status"] == "succeeded", output
    assert ends[0]["worker"].startswith(survivor.name + "@"), output
    assert any(e.get("event") == "warning" and "attempt 1 on " + victim.name in e.get("msg", "")
               and "did not finish" in e.get("msg", "") for e in events), output
    build_ids = {e["build_id"] for e in events if e.get("event") == "build.start"}
    assert len(build_ids) == 1 and (tmp_path / "done").read_text() == f"{build_ids.pop()}\n"
    # the killed attempt's claim on the victim's store outlived it; the restarted victim swept it
    assert held and alive_before_restart == held, (held, alive_before_restart)
    assert all(not c.exists() for c in held), victim.log()[-3000:]


def test_ctrl_c_stops_every_remote_build_with_its_cleanups(cluster, sshd, tmp_path):
    server, workers = cluster
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for number in range(2):
        tasks = f"  - name: a very long step\n    command: sleep 1234{number}\n"
        (recipes / f"long{number}.yml").write_text(ssh_recipe(f"long{number}", sshd, tasks))
    json_file = tmp_path / "events.json"
    run = in_background(server.url, recipes, json_file, tmp_path / "out")
    try:
        wait_for(lambda: started_tasks(json_file) == 2, 120, "both builds to start their long step")
        started = builds_by_worker(json_events(json_file))
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=90)
    finally:
        stop(run)
    assert run.returncode == 130, output
    assert len(set(started.values())) == 2                 # one on each worker
    events = json_events(json_file)
    ends = {e["build"]: e for e in events if e.get("event") == "build.end"}
    assert {b: e["status"] for b, e in ends.items()} == {"long0-box": "interrupted", "long1-box": "interrupted"}
    for build in ends:
        assert any(e.get("event") == "cleanup" and e.get("build") == build and "ssh connection" in e.get("what", "")
                   for e in events), build
    # the remote commands are gone with their sessions
    wait_for(lambda: subprocess.run(["pgrep", "-f", "sleep 1234"], capture_output=True).returncode == 1, 20,
             "the remote sleeps to end")
    # and the workers hold nothing of the run: they take the next build at once
    recipe = tmp_path / "after.yml"
    recipe.write_text(ssh_recipe("after", sshd, "  - name: quick\n    command: 'true'\n"))
    after = submit(server, str(recipe), "--output-dir", str(tmp_path / "out"), cwd=tmp_path, timeout=60)
    assert after.returncode == 0, after.stdout + after.stderr


def test_a_worker_runs_recipe_builds_only(cluster, tmp_path):
    """A pickled message and a message naming another task are refused, not run."""
    from kombu import Connection
    server, workers = cluster
    marker = tmp_path / "pwned"
    with Connection(server.url) as connection:
        producer = connection.Producer()
        body = ("import os; os.system('touch " + str(marker) + "')").encode()
        producer.publish(body, routing_key="recipe.ssh", exchange="", content_type="application/x-python-serialize",
                         content_encoding="binary", headers={"task": "recipe.build", "id": "pickled-1"},
                         declare=[], serializer=None)
        producer.publish([[str(marker)], {}, {}], routing_key="recipe.ssh", exchange="", serializer="json",
                         headers={"task": "celery.accumulate", "id": "builtin-1", "argsrepr": "x"})
    logs = wait_for(lambda: (lambda text: text if "Refusing to deserialize untrusted content of type pickle" in text
                                        and "unregistered task of type 'celery.accumulate'" in text else "")(
        "\n".join(w.log() for w in workers.values())), 30, "both messages to be refused")
    assert marker.name in logs                    # the pickled message was seen, and refused
    time.sleep(1)
    assert not marker.exists()


def test_parallel_only_and_fail_fast_keep_their_meaning(cluster, sshd, tmp_path):
    server, _ = cluster
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for number in range(3):
        (recipes / f"step{number}.yml").write_text(ssh_recipe(f"step{number}", sshd,
                                                              "  - name: a moment\n    command: sleep 1\n"))
    (recipes / "skipped.yml").write_text(ssh_recipe("skipped", sshd, "  - name: never\n    command: 'false'\n")
                                         .replace("  box:", "  other:"))
    json_file = tmp_path / "events.json"
    done = submit(server, str(recipes), "--parallel", "1", "--except", "other", "--json", str(json_file),
                  "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    events = json_events(json_file)
    spans = sorted((e["time"], e["event"]) for e in events if e.get("event") in ("build.start", "build.end"))
    assert [kind for _, kind in spans] == ["build.start", "build.end"] * 3       # one at a time
    assert "skipped-other" not in {e.get("build") for e in events}

    failing = tmp_path / "failing"
    failing.mkdir()
    (failing / "bad.yml").write_text(ssh_recipe("bad", sshd, "  - name: fails\n    command: 'false'\n"))
    (failing / "slow.yml").write_text(ssh_recipe("slow", sshd, "  - name: long\n    command: sleep 4321\n"))
    json_file = tmp_path / "fail-fast.json"
    done = submit(server, str(failing), "--fail-fast", "--json", str(json_file), "--output-dir",
                  str(tmp_path / "out"), cwd=tmp_path, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    ends = {e["build"]: e for e in json_events(json_file) if e.get("event") == "build.end"}
    assert ends["bad-box"]["status"] == "failed"
    assert ends["slow-box"]["status"] == "cancelled" and ends["slow-box"]["error"] == "stopped by --fail-fast"
    wait_for(lambda: subprocess.run(["pgrep", "-f", "sleep 4321"], capture_output=True).returncode == 1, 20,
             "the cancelled build's command to end")


def test_a_broker_outage_is_waited_out_and_a_long_one_fails_clearly(sshd, tmp_path):
    with redis_server() as server:
        worker = Worker("wo", "ssh,x86_64", tmp_path / "store", tmp_path / "wo.log", server.url).start()
        try:
            recipe = tmp_path / "outage.yml"
            recipe.write_text(ssh_recipe("outage", sshd, "  - name: through the outage\n    command: sleep 6\n"
                                                         "  - name: after\n    command: 'true'\n"))
            json_file = tmp_path / "events.json"
            run = in_background(server.url, recipe, json_file, tmp_path / "out", "--cluster-timeout", "60s")
            try:
                wait_for(lambda: started_tasks(json_file), 120, "the build to start")
                server.stop()
                time.sleep(3)
                server.start()
                output, _ = run.communicate(timeout=120)
            finally:
                stop(run)
            assert run.returncode == 0, output
            assert "does not answer" in output and "answers again" in output
            ends = [e for e in json_events(json_file) if e.get("event") == "build.end"]
            assert [e["status"] for e in ends] == ["succeeded"]

            recipe.write_text(ssh_recipe("outage", sshd, "  - name: longer than the patience\n    command: sleep 30\n"))
            json_file = tmp_path / "events-2.json"
            run = in_background(server.url, recipe, json_file, tmp_path / "out2", "--cluster-timeout", "4s")
            try:
                wait_for(lambda: started_tasks(json_file), 120, "the build to start")
                server.stop()
                started = time.monotonic()
                output, _ = run.communicate(timeout=60)
                waited = time.monotonic() - started
            finally:
                stop(run)
                server.start()
            assert run.returncode == 1, output
            assert f"the broker redis://127.0.0.1:{server.port}/0 has not answered for 4s" in output
            assert 3 < waited < 30
        finally:
            worker.stop()


def test_a_build_over_tls_and_a_broker_whose_certificate_is_not_trusted(sshd, tmp_path):
    with redis_server(password=PASSWORD, tls=True) as server:
        worker = Worker("wt", "ssh,x86_64", tmp_path / "store", tmp_path / "wt.log", server.url).start()
        try:
            recipe = tmp_path / "tls.yml"
            recipe.write_text(ssh_recipe("tls", sshd, "  - name: over TLS\n    command: 'true'\n"))
            done = subprocess.run([RECIPE, "run", "--cluster", server.url, str(recipe), "--output-dir",
                                   str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr + worker.log()[-2000:]
            assert "tls-box: succeeded" in done.stdout
            # without the CA, the system's CAs do not know the broker's certificate: refused, clearly
            untrusted = server.url.split("?")[0]
            done = subprocess.run([RECIPE, "run", "--cluster", untrusted, str(recipe), "--output-dir",
                                   str(tmp_path / "out2"), "--cluster-timeout", "2s"], capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 1
            assert "certificate verify failed" in done.stderr and PASSWORD not in done.stderr + done.stdout
        finally:
            worker.stop()


def test_an_invalid_recipe_stops_the_run_before_anything_is_sent(cluster, sshd, tmp_path):
    server, _ = cluster
    recipe = tmp_path / "broken.yml"
    recipe.write_text(ssh_recipe("broken", sshd, "  - name: undefined\n    command: echo {{ nowhere }}\n"))
    before = set(redis.Redis.from_url(server.url).scan_iter(match="recipe:run:*"))
    done = submit(server, str(recipe), "--output-dir", str(tmp_path / "out"), cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{recipe}:" in done.stderr and "nowhere" in done.stderr
    assert set(redis.Redis.from_url(server.url).scan_iter(match="recipe:run:*")) == before


def test_a_pool_process_that_dies_hands_its_build_back_at_once(cluster, sshd, tmp_path):
    """reject_on_worker_lost: the worker lives on, the build goes back to the queue and runs again, once."""
    server, workers = cluster
    recipe = tmp_path / "child.yml"
    recipe.write_text(ssh_recipe("child", sshd, "  - name: a long step\n    command: sleep 8\n"))
    json_file = tmp_path / "events.json"
    run = in_background(server.url, recipe, json_file, tmp_path / "out")
    try:
        first = wait_for(lambda: builds_by_worker(json_events(json_file)).get("child-box"), 120, "the build to start")
        wait_for(lambda: started_tasks(json_file), 60, "the long step")
        worker = next(w for w in workers.values() if first.startswith(w.name + "@"))
        # one slot: the worker's one pool process is the one running the build
        pool = subprocess.run(["pgrep", "-P", str(worker.process.pid)], capture_output=True, text=True).stdout.split()
        assert len(pool) == 1
        os.kill(int(pool[0]), signal.SIGKILL)
        output, _ = run.communicate(timeout=150)
    finally:
        stop(run)
    assert run.returncode == 0, output
    assert worker.process.poll() is None                        # the worker itself lives on
    events = json_events(json_file)
    ends = [e for e in events if e.get("event") == "build.end"]
    assert [e["status"] for e in ends] == ["succeeded"]
    assert any("attempt 2 on" in e.get("msg", "") for e in events if e.get("event") == "warning")
    assert "WorkerLostError" in worker.log() or "exited with 'signal 9 (SIGKILL)'" in worker.log()


def test_a_build_longer_than_the_visibility_timeout_is_delivered_once(cluster, sshd, tmp_path):
    """The workers' visibility timeout is 4 s here: a 10 s build is handed out again only if its worker stopped
    renewing its delivery, and the idle worker would then receive it."""
    server, workers = cluster
    recipe = tmp_path / "steady.yml"
    recipe.write_text(ssh_recipe("steady", sshd, "  - name: longer than the timeout\n    command: sleep 10\n"))
    json_file = tmp_path / "events.json"
    done = submit(server, str(recipe), "--json", str(json_file), "--output-dir", str(tmp_path / "out"),
                  cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run = next(e["cluster"] for e in json_events(json_file) if e.get("event") == "run.start")
    received = [line for w in workers.values() for line in w.log().splitlines()
                if f"recipe.build[{run}.steady-box] received" in line]
    assert len(received) == 1, received
    assert redis.Redis.from_url(server.url).get(f"recipe:run:{run}:attempts:steady-box") == b"1"

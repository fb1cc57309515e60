"""wait_for against real sockets and files on this machine; each wait is one command, polled on the 'target'."""
import shutil
import socket
import threading
import time

import pytest
import voluptuous as vol

from modules.tasks.wait_for import WaitFor, check_sh


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_port_started_on_a_listening_socket(h, listener):
    result = h.run("wait_for", {"port": listener.getsockname()[1], "timeout": 10})
    assert result.status == "ok" and result.data["elapsed"] == 0 and len(h.connection.scripts) == 1


def test_port_opening_later_is_waited_for_in_one_command(h):
    port = free_port()
    server = socket.socket()

    def open_later():
        time.sleep(1.2)
        server.bind(("127.0.0.1", port))
        server.listen(1)

    threading.Thread(target=open_later, daemon=True).start()
    try:
        result = h.run("wait_for", {"port": port, "timeout": 15, "sleep": 0.2})
        assert result.status == "ok" and 1 <= result.data["elapsed"] <= 5 and len(h.connection.scripts) == 1
    finally:
        server.close()


def test_port_timeout_fails_with_msg(h):
    result = h.run("wait_for", {"port": free_port(), "timeout": 1, "sleep": 0.2})
    assert result.failed and "timed out after" in result.msg and "to open" in result.msg
    custom = h.run("wait_for", {"port": free_port(), "timeout": 0, "msg": "the app never came up"})
    assert custom.failed and custom.msg == "the app never came up"


def test_port_stopped(h, listener):
    assert h.run("wait_for", {"port": free_port(), "state": "stopped", "timeout": 5}).status == "ok"
    busy = h.run("wait_for", {"port": listener.getsockname()[1], "state": "stopped", "timeout": 1, "sleep": 0.2})
    assert busy.failed and "to close" in busy.msg


def test_search_regex_on_a_port(h):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def banner():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"SSH-2.0-OpenSSH_9.2 ready\r\n")
            conn.close()

    threading.Thread(target=banner, daemon=True).start()
    try:
        port = server.getsockname()[1]
        assert h.run("wait_for", {"port": port, "search_regex": "OpenSSH_[0-9]", "timeout": 5}).status == "ok"
        other = h.run("wait_for", {"port": port, "search_regex": "nginx", "timeout": 1, "sleep": 0.2})
        assert other.failed
    finally:
        server.close()


def test_drained(h, listener):
    port = listener.getsockname()[1]
    assert h.run("wait_for", {"port": port, "state": "drained", "timeout": 5}).status == "ok"
    client = socket.create_connection(("127.0.0.1", port))
    try:
        busy = h.run("wait_for", {"port": port, "state": "drained", "timeout": 1, "sleep": 0.2})
        assert busy.failed and "drain" in busy.msg
    finally:
        client.close()


def test_path_present_absent_and_regex(h, target):
    path = target / "ready"

    def write_later():
        time.sleep(1)
        path.write_text("booting\nstatus: READY\n")

    threading.Thread(target=write_later, daemon=True).start()
    result = h.run("wait_for", {"path": str(path), "search_regex": "status: (READY|OK)", "timeout": 10, "sleep": 0.2})
    assert result.status == "ok" and path.exists()
    assert h.run("wait_for", {"path": str(path), "search_regex": "FAILED", "timeout": 0}).failed
    assert h.run("wait_for", {"path": str(target / "gone"), "state": "absent", "timeout": 0}).status == "ok"
    still = h.run("wait_for", {"path": str(path), "state": "absent", "timeout": 0})
    assert still.failed and "to be absent" in still.msg


def test_delay_counts_within_the_timeout_and_check_mode_waits_too(h, listener):
    result = h.run("wait_for", {"port": listener.getsockname()[1], "delay": 1, "timeout": 10}, check=True)
    assert result.status == "ok" and result.data["elapsed"] >= 1


def test_neither_port_nor_path_just_waits(h):
    started = time.monotonic()
    assert h.run("wait_for", {"timeout": 1}).status == "ok" and time.monotonic() - started >= 1


def test_no_tool_to_test_a_port_says_what_is_needed(h, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"    # sh and the basics, but neither nc nor bash
    bin_dir.mkdir()
    for tool in ("date", "sleep", "grep", "timeout"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    result = h.run("wait_for", {"port": 22, "timeout": 1})
    assert result.failed and "needs nc (with -z) or bash" in result.msg


def test_the_nc_branch_is_chosen_when_nc_knows_z():
    script = check_sh(WaitFor.Params(port=80, host="web", connect_timeout=3))
    assert "nc -z -w 3 web 80" in script and "/dev/tcp/$0/$1" in script


@pytest.mark.parametrize("args", [{"port": 1, "path": "/x"}, {"state": "drained"}, {"port": 0},
                                  {"path": "/x", "state": "absent", "search_regex": "a"},
                                  {"path": "/x", "search_regex": "("}, {"port": 1, "sleep": 0}])
def test_wait_for_rejects_bad_options(h, args):
    with pytest.raises(vol.Invalid):
        h.params("wait_for", args)


def test_ansible_forms(h, target):
    params = h.params("wait_for", f"path={target} timeout=30 delay=0 sleep=1 state=present")
    assert (params.timeout, params.delay, params.sleep) == (30.0, 0.0, 1.0)
    assert h.params("wait_for", "port=22 timeout=5").port == 22
    with pytest.raises(vol.Invalid):
        h.params("wait_for", {"port": 22, "timeout": "soon"})

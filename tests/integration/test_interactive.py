"""--on-error=ask and --debug's pause, answered at a real terminal (a pty) against a real sshd."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from .conftest import RECIPE
from .test_parallel_runs import write


def in_terminal(args: list[str], answers: list[tuple[str, str]], timeout: float = 90) -> tuple[int, str]:
    """Run recipe on a pty; when the output shows each expected text, type its answer."""
    pid, fd = pty.fork()
    if pid == 0:                                     # the child: recipe, on the terminal
        os.environ.update(COLUMNS="200", TERM="xterm")
        os.execv(RECIPE, [RECIPE, *args])
    output, deadline = b"", time.monotonic() + timeout
    pending = list(answers)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:                          # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        if pending and pending[0][0].encode() in output:
            os.write(fd, pending.pop(0)[1].encode())
            output += b"\n<answered>\n"
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert not pending, f"never asked: {pending}\n{output.decode(errors='replace')[-3000:]}"
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def flaky_recipe(tmp_path, sshd):
    marker = tmp_path / "tried"
    return write(tmp_path, "ask", sshd, ["box"], f"  - name: Flaky\n    shell: test -e {marker} || {{ touch {marker}; "
                 "exit 3; }\n  - name: After\n    shell: 'true'\n"), marker


def test_ask_retry_runs_the_failed_task_again(tmp_path, sshd):
    recipe, marker = flaky_recipe(tmp_path, sshd)
    code, out = in_terminal(["run", str(recipe), "--on-error", "ask", "--output-dir", str(tmp_path / "o")],
                            [("task 'Flaky' failed", "r\n")])
    assert code == 0, out[-3000:]
    assert marker.exists() and "==> ask-box: succeeded" in out


def test_ask_abort_keeps_everything_and_says_so(tmp_path, sshd):
    recipe, _ = flaky_recipe(tmp_path, sshd)
    code, out = in_terminal(["run", str(recipe), "--on-error", "ask", "--output-dir", str(tmp_path / "o")],
                            [("task 'Flaky' failed", "a\n")])
    assert code == 1 and "left in place: ssh connection" in out, out[-3000:]
    assert "cleanup: ssh connection" not in out


def test_ask_without_a_terminal_cleans_up_as_by_default(tmp_path, sshd):
    recipe, _ = flaky_recipe(tmp_path, sshd)
    result = subprocess.run([RECIPE, "run", str(recipe), "--on-error", "ask", "--output-dir", str(tmp_path / "o")],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "cleanup: ssh connection" in result.stdout


def test_debug_pauses_before_each_task_and_can_stop_the_build(tmp_path, sshd):
    log = tmp_path / "ran"
    recipe = write(tmp_path, "pause", sshd, ["box"], "".join(
        f"  - name: Step {i}\n    shell: echo {i} >> {log}\n" for i in (1, 2, 3)))
    code, out = in_terminal(["--debug", "run", str(recipe), "--output-dir", str(tmp_path / "o")],
                            [("next task: Step 1", "\n"), ("next task: Step 2", "q\n")])
    assert code == 1 and "stopped before task 'Step 2', as asked" in out, out[-3000:]
    assert log.read_text().split() == ["1"]
    code, out = in_terminal(["--debug", "run", str(recipe), "--output-dir", str(tmp_path / "o")],
                            [("next task: Step 1", "c\n")])
    assert code == 0 and "next task: Step 2" not in out and log.read_text().split() == ["1", "1", "2", "3"]

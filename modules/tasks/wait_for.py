"""wait_for: wait, on the target, for a port to open or close, for connections to drain, or for a file.

The polling loop runs on the target as one command, so a wait of minutes costs one round trip. What it
needs there: `date`, `sleep`, `[`; for a port, `nc` with -z (OpenBSD, traditional, ncat or BusyBox
built with it) or else bash (its /dev/tcp), bounded by `timeout` when there is one; for drained, Linux's
/proc/net/tcp and awk; for search_regex, grep -E (the regex is an extended POSIX regex, not Python's).
With neither port nor path, it waits `timeout` seconds, as Ansible does.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule
from engine.recipe.schema import integer
from modules.tasks._remote import failure, first, maybe, pattern, q, quiet, seconds, tagged, text

STATES = ("started", "stopped", "present", "absent", "drained")
ACTIVE = "0[1-6]"   # /proc/net/tcp states: ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT


def connect_sh(host: str, port: int, connect_timeout: float, regex: str | None) -> str:
    """Shell defining `opens`: a TCP connection to host:port opens (and what the server sends matches regex)."""
    h, t = shlex.quote(host), f"{connect_timeout:g}"
    grep = f" | grep -Eq -- {shlex.quote(regex)}" if regex else " >/dev/null"
    return (
        "if command -v nc >/dev/null 2>&1 && nc -h 2>&1 | grep -q -e '-z'; then\n"
        + (f"opens() {{ nc -w {t} {h} {port} </dev/null 2>/dev/null{grep}; }}\n" if regex else
           f"opens() {{ nc -z -w {t} {h} {port} </dev/null >/dev/null 2>&1; }}\n") +
        "elif command -v bash >/dev/null 2>&1; then\n"
        f"to=; command -v timeout >/dev/null 2>&1 && to='timeout {t}'\n"
        + (f"opens() {{ $to bash -c 'cat <\"/dev/tcp/$0/$1\"' {h} {port} 2>/dev/null{grep}; }}\n" if regex else
           f"opens() {{ $to bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' {h} {port} 2>/dev/null; }}\n") +
        "else echo 'failed wait_for needs nc (with -z) or bash on the target to test a port'; exit 0; fi\n")


def check_sh(p: "WaitFor.Params") -> str:
    """Shell defining `check`, which succeeds once the state asked for is reached."""
    if p.path is not None:
        exists = f"[ -e {q(p.path)} ]"
        if p.state in ("absent", "stopped"):
            return f"check() {{ ! {exists}; }}\n"
        regex = f" && grep -Eq -- {shlex.quote(p.search_regex)} {q(p.path)} 2>/dev/null" if p.search_regex else ""
        return f"check() {{ {exists}{regex}; }}\n"
    if p.port is None:
        return "check() { false; }\n"
    if p.state == "drained":
        return ("check() { ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | "
                f"awk '$2 ~ /:{p.port:04X}$/ && $4 ~ /^{ACTIVE}$/ {{n++}} END {{exit n > 0 ? 0 : 1}}'; }}\n")
    negate = "! " if p.state in ("stopped", "absent") else ""
    return connect_sh(p.host, p.port, p.connect_timeout, p.search_regex) + f"check() {{ {negate}opens; }}\n"


def loop_sh(p: "WaitFor.Params") -> str:
    """Poll check until it succeeds or the timeout (counted from before the delay) passes; print the outcome."""
    return (check_sh(p) +
            "start=$(date +%s)\n" + (f"sleep {p.delay:g}\n" if p.delay else "") +
            f"end=$((start + {int(p.timeout)}))\n"
            "while :; do\n"
            "if check; then echo \"reached $(( $(date +%s) - start ))\"; exit 0; fi\n"
            "now=$(date +%s); if [ \"$now\" -ge \"$end\" ]; then echo \"timeout $((now - start))\"; exit 0; fi\n"
            f"sleep {p.sleep:g}\n"
            "done\n")


class WaitFor(TaskModule, name="wait_for"):
    description = "Wait on the target for a port, a file, a regex in either, or drained connections"
    schema = {
        vol.Optional("host", default="127.0.0.1"): text,
        vol.Optional("port", default=None): maybe(vol.All(integer, vol.Range(min=1, max=65535))),
        vol.Optional("path", default=None): maybe(str),
        vol.Optional("state", default="started"): vol.In(STATES),
        vol.Optional("timeout", default=300): seconds,
        vol.Optional("delay", default=0): seconds,
        vol.Optional("sleep", default=1): seconds,
        vol.Optional("connect_timeout", default=5): seconds,
        vol.Optional("search_regex", default=None): maybe(pattern),
        vol.Optional("msg", default=None): maybe(text),
    }

    @dataclass(frozen=True)
    class Params:
        host: str = "127.0.0.1"
        port: int | None = None
        path: str | None = None
        state: str = "started"
        timeout: float = 300
        delay: float = 0
        sleep: float = 1
        connect_timeout: float = 5
        search_regex: str | None = None
        msg: str | None = None

        def __post_init__(self) -> None:
            if self.port is not None and self.path is not None:
                raise vol.Invalid("give port or path, not both", path=["path"])
            if self.state == "drained" and self.port is None:
                raise vol.Invalid("state drained needs a port", path=["state"])
            if self.search_regex and self.state not in ("started", "present"):
                raise vol.Invalid("search_regex goes with state started or present", path=["search_regex"])
            if self.sleep <= 0:
                raise vol.Invalid("sleep must be more than 0 seconds", path=["sleep"])

    def what(self, p: Params) -> str:
        if p.path is not None:
            return f"{p.path} to be {'absent' if p.state in ('absent', 'stopped') else 'present'}" + (
                f" and match {p.search_regex!r}" if p.search_regex else "")
        where = f"{p.host}:{p.port}"
        if p.state == "drained":
            return f"connections to port {p.port} to drain"
        return f"{where} to {'close' if p.state in ('stopped', 'absent') else 'open'}" + (
            f" and answer {p.search_regex!r}" if p.search_regex else "")

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        # Read-only, so it runs in check mode too: later tasks may depend on the wait.
        data = {"state": p.state, **({"port": p.port} if p.port else {}), **({"path": p.path} if p.path else {})}
        if p.port is None and p.path is None:
            res = await quiet(ctx, f"sleep {p.timeout:g}")
            return Result(msg=f"waited {p.timeout:g}s", data={**data, "elapsed": p.timeout}) if res.ok else \
                failure("could not sleep", res)
        res = await quiet(ctx, loop_sh(p))
        if not res.ok:
            return failure(f"could not wait for {self.what(p)}", res)
        tags, _ = tagged(res.stdout)
        if "failed" in tags:
            return Result(failed=True, msg=first(tags, "failed") or "", data=data)
        if "reached" in tags:
            elapsed = int(first(tags, "reached") or 0)
            return Result(msg=f"{self.what(p)}: done after {elapsed}s", data={**data, "elapsed": elapsed})
        elapsed = int(first(tags, "timeout") or 0)
        return Result(failed=True, data={**data, "elapsed": elapsed},
                      msg=p.msg or f"timed out after {elapsed}s waiting for {self.what(p)}")

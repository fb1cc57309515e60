"""reboot: reboot the target, wait for it to come back, and check that it did.

The boot id (/proc/sys/kernel/random/boot_id) is read and the reboot started in the background in one
command, which returns before the connection drops. Then the connection is opened again (the same host
key is verified) until the boot id has changed, and test_command succeeds, within reboot_timeout. A
connection made before the old system went down answers with the old boot id: it is dropped and tried again.
"""
from __future__ import annotations

import asyncio
import shlex
import time
from dataclasses import dataclass

import voluptuous as vol

from engine.build.taskmodule import Result, TaskContext, TaskModule

from modules.tasks._remote import WHOAMI_SH, failure, first, maybe, not_root, quiet, seconds, tagged, tail, text

BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
REBOOT = "systemctl reboot || reboot"
PROBE_TIMEOUT = 30      # one command on a system that has just booted


def start_sh(boot_time_command: str, reboot_command: str, pre_reboot_delay: float, msg: str | None) -> str:
    """Print the boot id, then start the reboot detached, so this command returns first."""
    wall = f"command -v wall >/dev/null 2>&1 && wall {shlex.quote(msg)} 2>/dev/null; " if msg else ""
    inner = f"sleep {max(1.0, pre_reboot_delay):g}; {wall}{reboot_command}"
    return (WHOAMI_SH + '[ "$(id -u)" = 0 ] || exit 0\n'
            f"b=$({boot_time_command}) || exit\nprintf 'boot %s\\n' \"$b\"\n"
            f"nohup sh -c {shlex.quote(inner)} >/dev/null 2>&1 &\n")


class Reboot(TaskModule, name="reboot"):
    description = "Reboot the target and wait until it is back (a new boot id, test_command succeeding)"
    schema = {
        vol.Optional("reboot_timeout", default=600): seconds,
        vol.Optional("pre_reboot_delay", default=0): seconds,
        vol.Optional("post_reboot_delay", default=0): seconds,
        vol.Optional("msg", default="Reboot initiated by recipe"): maybe(text),
        vol.Optional("test_command", default="true"): text,
        vol.Optional("reboot_command", default=REBOOT): text,
        vol.Optional("boot_time_command", default=BOOT_ID): text,
    }

    @dataclass(frozen=True)
    class Params:
        reboot_timeout: float = 600
        pre_reboot_delay: float = 0
        post_reboot_delay: float = 0
        msg: str | None = "Reboot initiated by recipe"
        test_command: str = "true"
        reboot_command: str = REBOOT
        boot_time_command: str = BOOT_ID

    async def run(self, p: Params, ctx: TaskContext) -> Result:
        if ctx.check:
            return Result(changed=True, msg="would reboot")
        res = await quiet(ctx, start_sh(p.boot_time_command, p.reboot_command, p.pre_reboot_delay, p.msg))
        if not res.ok:
            return failure("could not read the boot id", res)
        tags, _ = tagged(res.stdout)
        refusal = not_root(tags, "reboot")
        if refusal:
            return refusal
        before = first(tags, "boot") or ""
        started = time.monotonic()
        deadline = started + p.reboot_timeout
        await asyncio.sleep(p.pre_reboot_delay + p.post_reboot_delay)
        problem = "the boot id did not change"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                elapsed = round(time.monotonic() - started)
                return Result(failed=True, changed=True, data={"elapsed": elapsed},
                              msg=f"the target did not come back within {p.reboot_timeout:g}s: {problem}")
            try:
                await ctx.connection.reconnect(remaining)
                res = await ctx.connection.run(f"{p.boot_time_command} && {p.test_command}", become=ctx.become,
                                               timeout=min(PROBE_TIMEOUT, max(1.0, deadline - time.monotonic())))
            except Exception as exc:   # not up yet, or the old system going down under us: try again
                problem = str(exc) or type(exc).__name__
                await asyncio.sleep(1)
                continue
            boot = res.stdout.splitlines()[0].strip() if res.stdout.strip() else ""
            if boot and boot != before and res.ok:
                break
            problem = ("the boot id did not change" if not boot or boot == before else
                       f"test_command failed: {tail(res.stderr) or tail(res.stdout) or f'exit status {res.rc}'}")
            await asyncio.sleep(1)
        elapsed = round(time.monotonic() - started)
        return Result(changed=True, msg=f"rebooted in {elapsed}s", data={"elapsed": elapsed})

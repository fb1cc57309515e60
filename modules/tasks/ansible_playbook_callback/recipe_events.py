"""An Ansible callback plug-in that recipe's `ansible_playbook` task ships: each task of the playbook becomes a
recipe task event.

ansible-playbook loads it from this folder (ANSIBLE_CALLBACK_PLUGINS) beside the user's own callbacks and stdout
callback, which it leaves alone (CALLBACK_NEEDS_ENABLED is False, so no callbacks_enabled setting is replaced).
It writes one JSON line per task start and per task result on the file descriptor named by RECIPE_EVENTS_FD, a
pipe recipe reads while the playbook runs. A task with no_log gives its name and status only.

This file is not a module of recipe's: Ansible imports it, in ansible-playbook's own Python.
"""
from __future__ import annotations

import json
import os
import time

from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: recipe_events
    type: notification
    short_description: task starts and results as JSON lines, for recipe's ansible_playbook task
    description: writes one JSON line per task start and result to the file descriptor RECIPE_EVENTS_FD
"""

MSG_LIMIT = 2000


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "recipe_events"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self) -> None:
        super().__init__()
        fd = os.environ.get("RECIPE_EVENTS_FD", "")
        self._stream = os.fdopen(int(fd), "w", encoding="utf-8", buffering=1) if fd.isdigit() else None
        self._started: dict[str, float] = {}
        self._play = ""

    def _write(self, line: dict) -> None:
        if self._stream is not None:
            self._stream.write(json.dumps(line, default=str, sort_keys=True) + "\n")

    def _name(self, task) -> str:
        return task.get_name().strip() or task.action

    def v2_playbook_on_play_start(self, play) -> None:
        self._play = play.get_name().strip()

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._started[task._uuid] = time.monotonic()
        self._write({"event": "start", "task": self._name(task), "play": self._play, "where": task.get_path() or ""})

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _result(self, result, status: str, ignored: bool = False) -> None:
        task = result._task
        data = result._result
        hidden = bool(task.no_log) or bool(data.get("_ansible_no_log"))
        msg = "" if hidden else str(data.get("msg") or data.get("stderr") or "")[:MSG_LIMIT]
        line = {"event": "end", "task": self._name(task), "play": self._play, "host": result._host.get_name(),
                "status": status, "where": task.get_path() or "", "handler": isinstance(task, Handler),
                "msg": msg, "hidden": hidden, "ignored": ignored,
                "duration": round(time.monotonic() - self._started.get(task._uuid, time.monotonic()), 3)}
        self._write(line)

    def v2_runner_on_ok(self, result) -> None:
        self._result(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._result(result, "failed", ignored=bool(ignore_errors))

    def v2_runner_on_skipped(self, result) -> None:
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result) -> None:
        self._result(result, "unreachable")

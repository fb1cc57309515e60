"""An Ansible notification callback for the differential tests: one JSON line per task result.

Enabled by ansible.cfg (`callbacks_enabled = oracle_events`, `callback_plugins` = this folder); writes to
the file named by $ORACLE_EVENTS. Each line: the play's name, the host, the task's name, its status
(ok/changed/skipped/failed/unreachable), whether it is a handler, the loop item's label for an item
(or `loop: true` for a loop's summary), and, with $ORACLE_RESULTS=1, the result itself. A task with
`register:` adds a line with the registered value.
"""
from __future__ import annotations

import json
import os

from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: oracle_events
    type: notification
    short_description: task statuses as JSON lines, for recipe's differential tests
    description: writes one JSON line per task result to the file named by ORACLE_EVENTS
"""


def _in_rescue_or_always(task) -> bool:
    """Whether the task is in a block's rescue or always, at any depth (by uuid: tasks run as copies)."""
    node, parent = task, getattr(task, "_parent", None)
    while parent is not None:
        sections = (getattr(parent, "rescue", None) or []) + (getattr(parent, "always", None) or [])
        if any(getattr(entry, "_uuid", None) == getattr(node, "_uuid", "") for entry in sections):
            return True
        node, parent = parent, getattr(parent, "_parent", None)
    return False


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "oracle_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._play = ""
        self._path = os.environ.get("ORACLE_EVENTS", "")
        self._with_results = os.environ.get("ORACLE_RESULTS") == "1"

    def _write(self, result, status: str, item: bool = False) -> None:
        data = dict(result.result)
        task = result.task
        # the task's own name, as recipe reports it: without Ansible's "role : " prefix
        line = {"play": self._play, "host": result.host.get_name(), "task": task.name or task.action,
                "role": task._role.get_name() if task._role else "", "status": status,
                "handler": isinstance(task, Handler), "action": task.action}
        if item:
            line["item"] = str(self._get_item_label(data))
        elif "results" in data and isinstance(data["results"], list):
            line["loop"] = True      # the summary of a loop: its items were written one by one
            line["items"] = len(data["results"])
        if status == "failed":
            line["msg"] = str(data.get("msg", ""))[:500]
            line["ignored"] = bool(task.ignore_errors)
        if _in_rescue_or_always(task):
            line["cleanup"] = True   # what runs for a host after its failure, which ends its play all the same
        if self._with_results:
            line["result"] = data
        self._append(line)
        if not item and result.task.register:
            # what `register:` stores: the differential tests compare it with recipe's
            self._append({"event": "registered", "play": self._play, "name": result.task.register, "value": data})

    def _append(self, line: dict) -> None:
        if not self._path:
            return
        with open(self._path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(line, default=str, sort_keys=True) + "\n")

    def v2_playbook_on_play_start(self, play) -> None:
        self._play = play.get_name()
        self._append({"event": "play", "play": self._play})

    def v2_playbook_on_stats(self, stats) -> None:
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            self._append({"event": "stats", "host": host, "failures": summary["failures"],
                          "unreachable": summary["unreachable"]})

    def v2_runner_on_ok(self, result) -> None:
        self._write(result, "changed" if result.result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._write(result, "failed")

    def v2_runner_on_skipped(self, result) -> None:
        self._write(result, "skipped")

    def v2_runner_on_unreachable(self, result) -> None:
        self._write(result, "unreachable")

    def v2_runner_item_on_ok(self, result) -> None:
        self._write(result, "changed" if result.result.get("changed") else "ok", item=True)

    def v2_runner_item_on_failed(self, result) -> None:
        self._write(result, "failed", item=True)

    def v2_runner_item_on_skipped(self, result) -> None:
        self._write(result, "skipped", item=True)

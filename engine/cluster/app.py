"""The Celery app both sides share: how builds are queued, delivered and acknowledged.

- JSON only, both ways: a worker never unpickles what the broker hands it.
- Late acknowledgement, and a message whose pool process dies is rejected back to its queue
  (reject_on_worker_lost): a build is acknowledged only once it has ended, so a build whose worker dies is
  delivered again. A worker that dies whole (SIGKILL, a lost host) stops refreshing its deliveries
  (engine.cluster.visibility), and Redis hands them out again after `visibility_timeout`.
- One message per free slot (prefetch 1): a worker does not sit on builds another could start.
- No result backend: results (without secrets) go to recipe's own key; nothing keeps a task's arguments.
- No remote control: the broadcast commands (shutdown, pool restarts, ...) are off, so a broker client can
  only queue builds.
- Only recipe's task: the worker registers it alone, and drops Celery's built-in tasks (engine.cluster.worker).
"""
from __future__ import annotations

from celery import Celery

from engine.cluster.broker import Broker

BUILD_TASK = "recipe.build"
ALLOWED_TASKS = frozenset({BUILD_TASK})
UNACKED_INDEX = "unacked_index"      # kombu's Redis sorted set of delivered, unacknowledged messages (by time)
HIDDEN = "(a recipe build ticket)"   # what logs and events show of a task's arguments


def make_app(broker: Broker, visibility_timeout: float = 60.0, restore_every: float = 10.0) -> Celery:
    app = Celery("recipe", broker=broker.url, set_as_current=False)
    app.conf.update(
        task_serializer="json", accept_content=["json"], result_serializer="json",
        result_accept_content=["json"], event_serializer="json",
        task_acks_late=True, task_reject_on_worker_lost=True, task_ignore_result=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False, worker_send_task_events=False, task_send_sent_event=False,
        worker_hijack_root_logger=False, worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True, broker_connection_max_retries=None,
        broker_transport_options={"visibility_timeout": visibility_timeout,
                                  "unacked_index_key": UNACKED_INDEX,
                                  "unacked_restore_interval": restore_every, "unacked_restore_throttle": 1,
                                  "socket_timeout": 30, "socket_connect_timeout": 10, "socket_keepalive": True,
                                  "health_check_interval": 15},
        broker_use_ssl=broker.celery_ssl(),
    )
    return app

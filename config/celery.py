"""The Celery app. Queues: default, segments, imports, dispatch (see settings)."""

import os

from celery import Celery, Task
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class HeraldTask(Task):
    """Reliable defaults for every task: bounded retries with exponential backoff.

    A task retries only the exceptions it lists in `autoretry_for` (temporary failures);
    everything else fails at once, with the error recorded by the service that ran.
    """

    max_retries = 5
    retry_backoff = 5
    retry_backoff_max = 600
    retry_jitter = True
    acks_late = True
    reject_on_worker_lost = True


app = Celery("herald", task_cls=HeraldTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [
    Queue(name, Exchange(name), routing_key=name)
    for name in ("default", "segments", "imports", "dispatch")
]
app.autodiscover_tasks()

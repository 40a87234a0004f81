"""What Herald does without, counted: when Redis (the broker, the rate limit counters)
does not answer, requests are served and writes kept anyway ("fail open"), and each time
is counted here so /healthz says so (rate limits not enforced, tasks not queued).

Counts live in the database (Redis is what is down) and are written at most every few
seconds per process and kind, so an outage does not add a write to every request.
"""

import logging
import threading
import time
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

log = logging.getLogger(__name__)

RATE_LIMITS = "rate_limits"  # API rate limits not enforced (config.api)
TASK_QUEUE = "task_queue"  # a task not sent: its job row waits for the beat sweep
FLUSH_SECONDS = 5.0

_lock = threading.Lock()
_pending: dict[str, list] = {}  # kind -> [count, last error, last flush (monotonic)]


def note(kind: str, error: Exception | str) -> None:
    """One fail-open event of `kind` (written now or with the next ones)."""
    now = time.monotonic()
    with _lock:
        entry = _pending.setdefault(kind, [0, "", -FLUSH_SECONDS])
        entry[0] += 1
        entry[1] = str(error)[:500]
        if now - entry[2] < FLUSH_SECONDS:
            return
        count, message = entry[0], entry[1]
        entry[0], entry[2] = 0, now
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO accounts_degradation (kind, count, last_at, last_error) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (kind) DO UPDATE SET "
                "count = accounts_degradation.count + EXCLUDED.count, "
                "last_at = EXCLUDED.last_at, last_error = EXCLUDED.last_error",
                [kind, count, timezone.now(), message],
            )
    except Exception:  # noqa: BLE001 - counting must never fail the request it is about
        log.warning("could not count a %s fail-open event", kind, exc_info=True)


def send_after_commit(task, *args) -> None:
    """task.delay(*args) once the transaction commits; with the broker down the request
    still succeeds (its job row is there), the failure is logged and counted, and a beat
    sweep sends the job again."""

    def send():
        try:
            task.apply_async(args=args, retry=False)
        except Exception as e:  # noqa: BLE001 - any broker failure: the job row waits
            log.warning("could not queue %s%r: %s", task.name, args, e)
            note(TASK_QUEUE, e)

    transaction.on_commit(send)


def degradations(*, since_seconds: int = 3600) -> dict[str, dict]:
    """{kind: {"count", "last_at"}} of the kinds that happened in the last hour."""
    from accounts.models import Degradation

    since = timezone.now() - timedelta(seconds=since_seconds)
    return {
        d.kind: {"count": d.count, "last_at": d.last_at.isoformat()}
        for d in Degradation.objects.filter(last_at__gte=since)
    }

"""What every import job (contacts, audiences) shares: the lock one attempt holds."""

import logging
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


@contextmanager
def attempt_lock(key: int):
    """A session-level advisory lock held while one attempt works on a job; yields whether
    this attempt got it.

    Celery re-delivers a task whose worker died (acks_late); the lock tells a re-delivery
    whether the first attempt is still alive (lock taken: leave it alone) or dead (its
    session ended, so the lock is free: redo the job from scratch, which is safe because
    nothing commits before the job's one merge transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:
                # A broken connection: the lock went with its session.
                logger.warning("could not release the job lock %s", key)

"""What every import job (contacts, audiences) shares: storing the upload, and the lock
one attempt holds."""

import logging
from contextlib import contextmanager
from pathlib import Path

from django.core.files.move import file_move_safe
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


class UploadEmpty(ValueError):
    """The upload holds no byte."""


class UploadTooLarge(ValueError):
    """The upload is over the limit; `size` is its size when known before reading it."""

    def __init__(self, size: int | None):
        super().__init__(size)
        self.size = size


def store_upload(file, target: Path, *, limit: int) -> int:
    """Put an uploaded file at `target` (Django's temporary file is moved there, an
    in-memory one streamed in chunks) and return its size. Raises UploadEmpty or
    UploadTooLarge, leaving nothing on disk."""
    size = file.size
    if size is not None and size > limit:
        raise UploadTooLarge(size)
    if size == 0:
        raise UploadEmpty()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = getattr(file, "temporary_file_path", None)
    if temporary is not None:
        file_move_safe(temporary(), str(target))
        return size
    written = 0
    try:
        with open(target, "wb") as out:
            for chunk in file.chunks():
                written += len(chunk)
                if written > limit:
                    raise UploadTooLarge(None)
                out.write(chunk)
        if not written:
            raise UploadEmpty()
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return written

"""The job kernel: every long job (the contact and audience imports; launches, syncs and
exports next) is a row of a model built on Job, moved through its life by these functions.

A job is queued -> running -> done | failed:

    job_claim      starts an attempt with a conditional update, at most MAX_ATTEMPTS times
    attempt_lock   held while an attempt works: a re-delivered task (acks_late) tells a live
                   attempt (leave it alone) from a dead one (claim it again, redo it)
    job_progress   moves the progress bar, outside any transaction
    job_done       marks the job done inside its final transaction: "done" means committed
    job_fail       failed, saying why; a finished job is never touched
    job_give_up    failed, when every attempt killed its worker

The files of a job live under MEDIA_ROOT (media_path): store_upload puts an uploaded file
there, ErrorReport writes the line-numbered CSV of the rows a job could not take.
Each job keeps its own stages and its own messages.
"""

import csv
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.move import file_move_safe
from django.db import DatabaseError, close_old_connections, connection, models
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from accounts import csv_safe
from accounts.models import WorkspaceOwned

logger = logging.getLogger(__name__)

# Sent by job_done inside the job's final transaction, with the model as sender and the
# finished rows' pks: a higher app builds on a lower app's job (a channel's CSV upload on
# the audience import) without the lower app knowing of it.
job_finished = Signal()

MAX_ATTEMPTS = 3  # deliveries of one job (or one stage of it) that may start running it


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED = (JobStatus.DONE, JobStatus.FAILED)


class Job(WorkspaceOwned):
    """A long job of a workspace as a row: who asked, its status, progress and outcome."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total_rows = models.BigIntegerField(default=0)
    processed_rows = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0)
    error_report = models.CharField(max_length=500, blank=True, default="")
    detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # Deliveries that started running the job (or its current stage): a worker that dies
    # mid-job (out of memory, restarted) leaves the message to be delivered again, at most
    # MAX_ATTEMPTS.
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def progress_percent(self) -> int:
        if not self.total_rows:
            return 100 if self.status == JobStatus.DONE else 0
        return min(100, int(100 * self.processed_rows / self.total_rows))


class ImportJob(Job):
    """A job that reads a file a user uploaded (stored by store_upload)."""

    original_name = models.CharField(max_length=255)
    file = models.CharField(max_length=500, help_text="Path of the stored upload.")
    file_size = models.BigIntegerField(default=0)

    class Meta(Job.Meta):
        abstract = True


# --- the life of a job row -----------------------------------------------------------
# Each function takes `jobs`, a queryset selecting the one job row (and, for a job with
# stages, its stage): `ContactImport.objects.unscoped().filter(pk=pk, stage=stage)`.


def job_claim(jobs, *, now, **reset) -> bool:
    """Start an attempt: queued -> running, or running -> running when the previous
    attempt died, at most MAX_ATTEMPTS times. Call it holding the job's attempt_lock, so
    no live attempt works on it; the conditional update keeps out a finished job and one
    out of attempts: of two claimers, the second gets nothing. `reset` sets the fields a
    fresh attempt starts from (its counts, its detail)."""
    return bool(
        jobs.filter(status__in=UNFINISHED, attempts__lt=MAX_ATTEMPTS).update(
            attempts=F("attempts") + 1,
            status=JobStatus.RUNNING,
            started_at=now,
            finished_at=None,
            processed_rows=0,
            **reset,
        )
    )


def job_give_up(jobs, *, now, detail: str) -> bool:
    """A job still running after MAX_ATTEMPTS deliveries killed its worker each time (a
    file that takes more memory or time than a worker has): it fails, saying so in
    `detail`, rather than being delivered for ever. Returns whether it was given up."""
    return bool(
        jobs.filter(status=JobStatus.RUNNING, attempts__gte=MAX_ATTEMPTS).update(
            status=JobStatus.FAILED, finished_at=now, detail=detail
        )
    )


def job_progress(jobs, processed: int) -> None:
    # Outside any transaction: commits at once, so the progress bar moves.
    jobs.update(processed_rows=processed)


def job_done(jobs, **outcome) -> bool:
    """running -> done with the job's outcome. Call it inside the job's final transaction,
    so a job that says done has committed; False when the job was finished or changed by
    someone else meanwhile (the caller then rolls its transaction back).

    audit: "<job>.done" (e.g. "contact_import.done"), in that same transaction, with the
    outcome's counts: attributed to the user who started the job, run by its worker. A
    dry run changes nothing and records nothing."""
    pks = list(jobs.filter(status=JobStatus.RUNNING).values_list("pk", flat=True))
    done = bool(
        jobs.filter(status=JobStatus.RUNNING).update(
            status=JobStatus.DONE, finished_at=timezone.now(), **outcome
        )
    )
    if done:
        _audit_done(jobs, outcome)
        # in the same transaction: what builds on a job's result commits with it
        job_finished.send(sender=jobs.model, pks=pks)
    return done


def _audit_done(jobs, outcome: dict) -> None:
    from accounts.audit import Actor, audit_record

    model = jobs.model
    fields = {f.name for f in model._meta.concrete_fields}
    columns = ["pk", "workspace_id", "created_by_id"] + (["dry_run"] if "dry_run" in fields else [])
    for row in jobs.values(*columns):
        if row.get("dry_run"):
            continue
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", model.__name__).lower()
        # counts only: lists (e.g. the audiences an import created) count their items
        summary = {
            key: (len(value) if isinstance(value, list | tuple) else value)
            for key, value in outcome.items()
            if isinstance(value, int | list | tuple) and not isinstance(value, bool)
        }
        user = None
        if row["created_by_id"]:
            user = get_user_model()(pk=row["created_by_id"])
        audit_record(
            workspace=row["workspace_id"],
            actor=Actor(user=user, system=f"{name} worker"),
            action=f"{name}.done",
            object_type=name.replace("_", ""),
            object_id=row["pk"],
            summary=summary,
        )


def job_fail(jobs, *, detail: str, reword: bool = False, **fields) -> None:
    """Mark a job that has not finished as failed, saying why (with `reword`, also say it
    better for one already failed). A finished job is never touched. Survives a broken
    database connection (the error that ended the job may have broken it)."""
    statuses = [*UNFINISHED, JobStatus.FAILED] if reword else list(UNFINISHED)

    def update():
        jobs.filter(status__in=statuses).update(
            status=JobStatus.FAILED, detail=detail, finished_at=timezone.now(), **fields
        )

    try:
        update()
    except DatabaseError:
        connection.close()
        close_old_connections()
        update()


@contextmanager
def attempt_lock(key: int):
    """A session-level advisory lock held while one attempt works on a job; yields whether
    this attempt got it. `key` is the job's own namespace plus its id.

    Celery re-delivers a task whose worker died (acks_late); the lock tells a re-delivery
    whether the first attempt is still alive (lock taken: leave it alone) or dead (its
    session ended, so the lock is free: redo the job from scratch, which is safe because
    nothing commits before the job's one final transaction)."""
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


# --- the files of a job ----------------------------------------------------------------


def media_path(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


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


REPORT_HEADER = ("line", "reason", "raw")
MAX_RAW = 2000  # characters of a raw line written to a report


class ErrorReport:
    """The error report of a job: a CSV of (line, reason, raw line), one row per line the
    job could not take, written as they come, every cell CSV-safe (accounts.csv_safe).
    Keeps the first `keep_first` rows in memory (for a page to show) and the count.

    The file is written beside its final name (<MEDIA_ROOT>/<relative>) and moved into
    place by close(), so a reader never sees half a report; discard() leaves nothing.
    As a context manager: closed when the block ends, discarded when it raises."""

    def __init__(self, relative: str, *, keep_first: int = 0):
        self.relative = relative
        self.path = media_path(relative)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(self.path.name + ".part")
        self._file = open(self._partial, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv_safe.writer(self._file)
        self._writer.writerow(REPORT_HEADER)
        self._keep_first = keep_first
        self.count = 0
        self.first: list[dict] = []

    def add(self, line: int, reason: str, raw: str) -> None:
        self.count += 1
        if len(self.first) < self._keep_first:
            self.first.append({"line": line, "reason": reason})
        if len(raw) > MAX_RAW:
            raw = raw[:MAX_RAW] + "…"
        self._writer.writerow([line, reason, raw])

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        os.replace(self._partial, self.path)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
        else:
            self.discard()


@dataclass(frozen=True)
class ReportRow:
    line: int
    reason: str
    raw: str


def report_rows(relative: str, *, limit: int) -> list[ReportRow]:
    """The first `limit` rows of the error report at `relative`, as they stood in the
    job's file (unescaped); none when there is no such report."""
    path = media_path(relative) if relative else None
    if path is None or not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        lines = csv.reader(f)
        next(lines, None)  # the header
        for row in lines:
            if len(row) != len(REPORT_HEADER):
                continue
            line, reason, raw = row
            rows.append(
                ReportRow(int(line), csv_safe.unescape_cell(reason), csv_safe.unescape_cell(raw))
            )
            if len(rows) >= limit:
                break
    return rows

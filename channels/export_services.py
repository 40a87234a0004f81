"""Exports of Meta channel audiences to their custom audiences: a job row per export.

Lifecycle of a MetaExport: queued -> running -> done | failed. The worker counts the
audience's people Meta can be sent (an email or a phone, on neither Do Not Contact list),
then streams them from one server-side cursor through channels.meta.export(), one batch
of at most 10,000 hashed rows at a time, moving the progress bar after each batch.

Invariant: nobody on email or SMS Do Not Contact is ever sent to Meta: the one query that
reads the people carries the condition. From Herald's side an export is all-or-nothing
per batch: the first batch Meta refuses ends it, and the job names that batch (and, for
a replace, what Meta keeps of the half-done session: Meta does not roll a replace back).
"""

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from math import ceil

from django.db import transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.jobs import (
    MAX_ATTEMPTS,
    UNFINISHED,
    JobStatus,
    attempt_lock,
    job_claim,
    job_done,
    job_fail,
    job_give_up,
    job_progress,
)
from channels import meta
from channels.list_services import ListConflict
from channels.models import ChannelAudience, MetaExport, ProviderKind
from channels.secrets import SecretsUnreadable, unseal
from channels.selectors import audience_count, audience_people, find_provider, reachable_condition

logger = logging.getLogger(__name__)

_LOCK_NAMESPACE = 0x484D_4558 << 32  # "HMEX": advisory lock keys of Meta export jobs
BATCH_SIZE = meta.MAX_BATCH  # people a request to Meta carries (Meta's own maximum)
READ_CHUNK = 10_000  # rows fetched from the server-side cursor at a time
RECONNECT = (
    "connect the Meta account again: set the Meta channel's provider with a new access token "
    "(a system user's token with ads_management on the ad account)"
)


def _enqueue(job: MetaExport) -> None:
    from channels.tasks import meta_export_run_task

    transaction.on_commit(lambda: meta_export_run_task.delay(job.pk))


def meta_export_start(
    *, audience: ChannelAudience, actor: Actor, replace: bool = False
) -> MetaExport:
    """Queue the export of a Meta audience's people (hashed) to its custom audience.
    Refused (ListConflict) for an audience of another channel, one without a Meta
    audience id, a workspace without a `meta` provider, or while an export of the same
    audience is under way. audit: "meta_export.start"."""
    if audience.channel != "meta":
        raise ListConflict("Only audiences of the Meta channel are exported to Meta.")
    if not audience.meta_audience_id:
        raise ListConflict("Give the audience its Meta custom audience id first.")
    if find_provider(workspace=audience.workspace_id, channel="meta") is None:
        raise ListConflict("Connect the Meta ad account first (the channel's meta provider).")
    with transaction.atomic():
        running = (
            MetaExport.objects.for_workspace(audience.workspace_id)
            .select_for_update()
            .filter(audience=audience, status__in=UNFINISHED)
            .first()
        )
        if running is not None:
            raise ListConflict("An export of this audience is already under way: wait for it.")
        job = MetaExport.objects.create(
            workspace_id=audience.workspace_id, audience=audience, replace=replace,
            created_by=actor.user, status=JobStatus.QUEUED,
            detail="Waiting for a worker to start the export…",
        )  # fmt: skip
        audit_record(workspace=audience.workspace_id, actor=actor, action="meta_export.start",
                     obj=job, summary={"audience": audience.pk, "replace": replace})  # fmt: skip
        _enqueue(job)
    return job


# --- the worker's side -------------------------------------------------------------------


class ExportRefused(Exception):
    """The export cannot start (the audience or the account is not ready); the message
    says what to fix. Nothing was sent."""


@dataclass
class Timings:
    """Where an export's time went, in seconds: reading the people from the database
    (the count and the cursor), normalizing and hashing them, sending the batches."""

    reading: float = 0.0
    hashing: float = 0.0
    sending: float = 0.0
    elapsed: float = 0.0


def _jobs(export_id: int):
    return MetaExport.objects.unscoped().filter(pk=export_id)


def _claim(export_id: int, *, now) -> bool:
    """Start an attempt (the caller holds the job lock), at most MAX_ATTEMPTS times."""
    return job_claim(
        _jobs(export_id), now=now, total_rows=0, batches=0, sent=0, invalid=0, skipped=0,
        failed_batch=None, session_id="", detail="Starting…",
    )  # fmt: skip


def _give_up(export_id: int, *, now) -> None:
    job_give_up(
        _jobs(export_id),
        now=now,
        detail=(
            f"The export stopped its worker {MAX_ATTEMPTS} times (the worker was killed or "
            "restarted while it ran), so it was given up. Meta kept the batches it had "
            "taken; run the export again, and if it fails this way again tell your "
            f"administrator (Meta export #{export_id})."
        ),
    )


def _client(job: MetaExport) -> meta.MetaClient:
    """The Graph API client of the workspace's meta provider (ExportRefused when the
    account is missing or its token cannot be read)."""
    provider = find_provider(workspace=job.workspace_id, channel="meta")
    if provider is None or provider.kind != ProviderKind.META:
        raise ExportRefused(
            "The Meta channel has no ad account any more: connect the Meta account again, "
            "then run the export."
        )
    try:
        token = unseal(provider.secrets).get("access_token", "")
    except SecretsUnreadable:
        raise ExportRefused(
            "The Meta access token stored for this workspace cannot be read (the key it was "
            f"encrypted with is gone): {RECONNECT}. Nothing was sent."
        ) from None
    if not token:
        raise ExportRefused(f"The Meta account has no access token: {RECONNECT}.")
    base_url = (provider.settings or {}).get("base_url") or meta.GRAPH_API
    return meta.MetaClient(token, base_url=base_url)


def _check_audience(audience: ChannelAudience) -> None:
    if audience.channel != "meta":
        raise ExportRefused("Only audiences of the Meta channel are exported to Meta.")
    if not audience.meta_audience_id:
        raise ExportRefused(
            "The audience no longer names its Meta custom audience: give it its Meta custom "
            "audience id, then run the export."
        )


def _timed(rows: Iterable, timings: Timings) -> Iterator:
    """`rows` as they come, the time spent fetching them added to `timings.reading` (per
    chunk, not per row); the underlying cursor is closed however the export ends."""
    source = iter(rows)
    try:
        while True:
            began = time.perf_counter()
            chunk = list(islice(source, READ_CHUNK))
            timings.reading += time.perf_counter() - began
            if not chunk:
                return
            yield from chunk
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _done_detail(result: meta.ExportResult, *, left_out: int) -> str:
    if not result.batches:
        words = "Nobody in the audience has an email or phone Meta can match: nothing was sent."
    else:
        verb = "Replaced the Meta audience's members with" if result.replace else "Sent"
        words = (
            f"{verb} {_count(result.sent, 'person', 'people')} in "
            f"{_count(result.batches, 'batch', 'batches')}."
        )
    if result.skipped_unusable:
        words += (
            f" {_count(result.skipped_unusable, 'person', 'people')} had no email or phone "
            "Meta can match (a phone needs its country code)."
        )
    if result.invalid:
        words += f" Meta found {_count(result.invalid, 'entry', 'entries')} invalid."
    if left_out:
        words += (
            f" {_count(left_out, 'person', 'people')} of the audience left out: on email or "
            "SMS Do Not Contact, or with neither an email nor a phone."
        )
    return words


def _failed_detail(result: meta.ExportResult) -> str:
    words = result.error
    if result.error_kind == "flagged" and meta.FLAGGED not in words:
        words = f"The {meta.FLAGGED}. {words}"
    if result.error_kind == "token":
        words += f" To go on, {RECONNECT}."
    if result.batches:
        words += (
            f" Meta took {_count(result.batches, 'batch', 'batches')} "
            f"({_count(result.sent, 'person', 'people')}) before batch {result.failed_batch}."
        )
    if result.note:
        words += " " + result.note
    elif result.retryable:
        words += " This may pass by itself: run the export again in a while."
    return words


def _export(job: MetaExport, *, now, timings: Timings) -> None:
    """Run the claimed job `job` to done or failed."""
    jobs = _jobs(job.pk).filter(status=JobStatus.RUNNING)
    audience = ChannelAudience.objects.unscoped().get(pk=job.audience_id)
    _check_audience(audience)
    client = _client(job)
    with client:
        began = time.perf_counter()
        counts = audience_count(audience=audience, now=now)
        timings.reading += time.perf_counter() - began
        total = counts.reachable
        planned = max(1, ceil(total / BATCH_SIZE))
        jobs.update(
            total_rows=total,
            detail=f"Sending {_count(total, 'person', 'people')} to Meta in about "
            f"{_count(planned, 'batch', 'batches')}…",
        )
        people = (
            audience_people(audience=audience, now=now)
            .filter(reachable_condition(workspace=audience.workspace_id, channel="meta"))
            .order_by()
            .values_list("email", "phone", "external_id")
            .iterator(chunk_size=READ_CHUNK)
        )
        sent_batches = 0

        def progress(done: int, _total: int) -> None:
            nonlocal sent_batches
            sent_batches += 1
            job_progress(jobs, done)
            jobs.update(detail=f"Sent batch {sent_batches} of {max(planned, sent_batches)}…")

        fetching = Timings()
        rows = _timed(people, fetching)
        try:
            result = meta.export(
                client, audience.meta_audience_id, rows, total=total, replace=job.replace,
                progress=progress, batch_size=BATCH_SIZE,
            )  # fmt: skip
        finally:
            rows.close()
    # export() pulls the rows as it hashes them: its hashing time holds the fetching
    timings.reading += fetching.reading
    timings.hashing += max(0.0, result.hashing_seconds - fetching.reading)
    timings.sending += result.sending_seconds
    outcome = {
        "batches": result.batches, "sent": result.sent, "invalid": result.invalid,
        "skipped": result.skipped_unusable, "session_id": str(result.session_id),
    }  # fmt: skip
    if not result.ok:
        logger.warning("Meta export %s failed: %s", job.pk, result.error)
        job_fail(jobs, detail=_failed_detail(result), failed_batch=result.failed_batch,
                 **outcome)  # fmt: skip
        return
    read = result.sent + result.skipped_unusable  # people may have changed since the count
    with transaction.atomic():
        # job_done picks the running row itself (and reads it back, done, for the audit)
        if not job_done(_jobs(job.pk), total_rows=read, processed_rows=read, failed_batch=None,
                        detail=_done_detail(result, left_out=max(0, counts.people - read)),
                        **outcome):  # fmt: skip
            logger.warning("Meta export %s was changed by someone else while it ran", job.pk)


def meta_export_run(*, export_id: int, now=None) -> MetaExport | None:
    """The worker's side of meta_export_start: claim the job (an attempt, at most
    MAX_ATTEMPTS; a re-delivery whose first attempt is alive leaves it alone) and export.
    Ends done with the counts, or failed with a `detail` saying what to do (the failed
    batch named); an unexpected error marks it failed and is raised again for the
    worker's log. Where the time went is logged (the record's `timings`, a Timings).
    Returns the job, or None when another live attempt holds it.
    audit: "meta_export.done" (job_done)."""
    now = now or timezone.now()
    timings = Timings()
    with attempt_lock(_LOCK_NAMESPACE + export_id) as got:
        if not got:
            logger.info("Meta export %s: another attempt is running it", export_id)
            return None
        if not _claim(export_id, now=now):
            _give_up(export_id, now=now)
            return _jobs(export_id).first()
        job = _jobs(export_id).get()
        began = time.perf_counter()
        try:
            _export(job, now=now, timings=timings)
        except ExportRefused as e:
            job_fail(_jobs(export_id), detail=str(e))
        except Exception as e:
            logger.exception("Meta export %s failed", export_id)
            job_fail(
                _jobs(export_id),
                detail=(
                    f"The export stopped on an unexpected error ({type(e).__name__}). Meta "
                    "kept the batches it had taken; run the export again, and if it fails "
                    f"again tell your administrator (Meta export #{export_id})."
                ),
            )
            raise
        finally:
            timings.elapsed = time.perf_counter() - began
        logger.info(
            "Meta export %s: %.1fs (reading %.1fs, hashing %.1fs, sending %.1fs)",
            export_id, timings.elapsed, timings.reading, timings.hashing, timings.sending,
            extra={"timings": timings},
        )  # fmt: skip
    return _jobs(export_id).get()

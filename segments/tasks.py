"""Celery doors into segment services: scheduled query refreshes (beat) and one queued
refresh (a job row, segments.services.segment_recount_start)."""

from celery import shared_task


@shared_task(name="segments.tasks.refresh_due_segments_task")
def refresh_due_segments_task() -> int:
    """Beat, every minute: queue a refresh for each query segment that is due, and deliver
    again the refreshes that lost their message or worker."""
    from accounts.audit import Actor
    from segments.models import Segment
    from segments.services import claim_due_segments, reclaim_stale_refreshes, segment_recount_start

    due = claim_due_segments()
    actor = Actor(system=refresh_due_segments_task.name)
    for segment in Segment.objects.unscoped().filter(pk__in=due):
        segment_recount_start(segment=segment, actor=actor)
    reclaim_stale_refreshes()
    return len(due)


@shared_task(name="segments.tasks.segment_refresh_task")
def segment_refresh_task(refresh_id: int) -> None:
    from segments.services import segment_refresh_run

    segment_refresh_run(refresh_id)


@shared_task(name="segments.tasks.evaluate_changes_task")
def evaluate_changes_task() -> int:
    """After a write commits (people.changes): evaluate the real-time outbox."""
    from segments.realtime import evaluate_pending

    return evaluate_pending()


@shared_task(name="segments.tasks.realtime_clock_task")
def realtime_clock_task() -> int:
    """Beat, every 30 seconds: the outbox rows no task took (a broker that was down), then
    the real-time segments that time changes ("in the last 30 days")."""
    from segments.realtime import evaluate_pending, recheck_time_windows

    evaluate_pending()
    return recheck_time_windows()

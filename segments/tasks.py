"""Celery doors into segment services: scheduled query refreshes (beat) and one refresh."""

from celery import shared_task


@shared_task(name="segments.tasks.refresh_due_segments_task")
def refresh_due_segments_task() -> int:
    """Beat, every minute: enqueue a refresh for each query segment that is due."""
    from segments.services import claim_due_segments

    due = claim_due_segments()
    for segment_id in due:
        segment_refresh_task.delay(segment_id)
    return len(due)


@shared_task(name="segments.tasks.segment_refresh_task")
def segment_refresh_task(segment_id: int) -> None:
    from accounts.audit import Actor
    from segments.models import Segment
    from segments.services import segment_refresh

    segment = Segment.objects.unscoped().filter(pk=segment_id).select_related("workspace").first()
    if segment is not None and segment.rules:
        segment_refresh(segment=segment, actor=Actor(system=segment_refresh_task.name))

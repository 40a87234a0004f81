"""Celery tasks of people: thin doors into the services (imported inside each task)."""

from celery import shared_task


@shared_task(name="people.tasks.contact_import_analyze_task", acks_late=True)
def contact_import_analyze_task(import_id: int):
    """Analyze an uploaded contact CSV (queue `imports`)."""
    from people.imports.services import contact_import_analyze
    from people.models import ContactImport

    job = ContactImport.objects.unscoped().filter(pk=import_id).first()
    if job is not None:
        contact_import_analyze(contact_import=job)


@shared_task(name="people.tasks.contact_import_run_task", acks_late=True)
def contact_import_run_task(import_id: int):
    """Run a confirmed contact import (queue `imports`). Re-delivery after a worker crash
    is safe: the service claims the job and redoes it from scratch if its attempt died."""
    from people.imports.services import contact_import_run

    contact_import_run(import_id=import_id)


@shared_task(name="people.tasks.tracked_messages_expire_task")
def tracked_messages_expire_task() -> int:
    """Beat, daily: forget the messageIds of the Segment-compatible API older than
    TRACKED_MESSAGE_DAYS (a client retries within minutes; the table must not grow
    forever). Returns how many were deleted."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from people.models import TrackedMessage

    cutoff = timezone.now() - timedelta(days=settings.TRACKED_MESSAGE_DAYS)
    deleted, _ = TrackedMessage.objects.unscoped().filter(received_at__lt=cutoff).delete()
    return deleted

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

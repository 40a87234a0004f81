"""Celery tasks of audiences: thin doors into the services (imported inside each task)."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded


@shared_task(
    name="audiences.tasks.audience_import_run_task", acks_late=True, reject_on_worker_lost=True
)
def audience_import_run_task(import_id: int):
    """Run an audience import or dry run (queue `imports`).

    Acknowledged when it ends, so a worker that dies mid-job leaves the message to be
    delivered again; the service then finds the job `running` with no live attempt and
    runs it again from scratch, which is safe because nothing commits before its single
    merge transaction. A job that raises is marked failed with a detail to act on."""
    from audiences.import_services import audience_import_fail, audience_import_run

    try:
        audience_import_run(import_id=import_id)
    except SoftTimeLimitExceeded:
        audience_import_fail(
            import_id=import_id,
            reword=True,
            detail=(
                "The import took longer than the time limit of an import job and was "
                "stopped; nothing was changed. Split the file into smaller files."
            ),
        )


@shared_task(name="audiences.tasks.audience_import_files_expire_task")
def audience_import_files_expire_task():
    """Delete the files of audience imports finished more than
    AUDIENCE_IMPORT_RETENTION_DAYS ago (daily, from beat)."""
    from accounts.audit import Actor
    from audiences.import_services import audience_import_files_expire

    return audience_import_files_expire(actor=Actor(system=audience_import_files_expire_task.name))

"""Celery tasks of channels: thin doors into the services (imported inside each task).
Syncs and exports are long jobs and run on the `imports` queue (config.settings)."""

from celery import shared_task


@shared_task(name="channels.tasks.channel_sync_run_task", acks_late=True,
             reject_on_worker_lost=True)  # fmt: skip
def channel_sync_run_task(sync_id: int):
    """Run a sync of a channel's segments from its source (Klaviyo)."""
    from channels.sync_services import channel_sync_run

    channel_sync_run(sync_id=sync_id)


@shared_task(name="channels.tasks.channel_syncs_due_task")
def channel_syncs_due_task():
    """Start the syncs whose schedule is due (every minute, from beat)."""
    from channels.sync_services import channel_syncs_start_due

    return channel_syncs_start_due()


@shared_task(name="channels.tasks.meta_export_run_task", acks_late=True,
             reject_on_worker_lost=True)  # fmt: skip
def meta_export_run_task(export_id: int):
    """Push a Meta channel audience's people to its custom audience."""
    from channels.export_services import meta_export_run

    meta_export_run(export_id=export_id)

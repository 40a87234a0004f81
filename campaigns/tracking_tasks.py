"""The tracking flush as a Celery task (campaigns.tracking): beat runs it every few
seconds, and a tracking view enqueues it when the hits list grows long. Imported by
campaigns.apps so the task registers with the worker."""

from celery import shared_task


@shared_task(name="campaigns.tracking_tasks.tracking_flush_task", ignore_result=True)
def tracking_flush_task():
    """Apply the queued opens and clicks to the ledger, batch after batch (one flush at a
    time: a second one returns at once)."""
    from campaigns.tracking import flush

    return flush()

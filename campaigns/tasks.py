"""Celery tasks of campaigns: thin doors into the services (queue `dispatch`)."""

from celery import shared_task


@shared_task(name="campaigns.tasks.campaign_dispatch_task", acks_late=True,
             reject_on_worker_lost=True)  # fmt: skip
def campaign_dispatch_task(campaign_id: int):
    """One worker's share of a sending campaign: batches until none is due."""
    from campaigns.dispatch.send import dispatch

    dispatch(campaign_id)


@shared_task(name="campaigns.tasks.campaign_launch_run_task", acks_late=True,
             reject_on_worker_lost=True)  # fmt: skip
def campaign_launch_run_task(launch_id: int):
    """Freeze a launched campaign's recipients into the ledger, then start its senders."""
    from campaigns.services import campaign_launch_run

    campaign_launch_run(launch_id=launch_id)


@shared_task(name="campaigns.tasks.campaigns_due_task")
def campaigns_due_task():
    """Every minute (beat): launch scheduled campaigns that are due, reclaim the
    deliveries of dead workers, choose the winners of A/B tests that are due, and start a
    worker for campaigns with retries due."""
    from campaigns.dispatch.send import reclaim
    from campaigns.models import Campaign, CampaignStatus
    from campaigns.services import (
        banners_due,
        campaign_launches_resume,
        campaigns_decide_due,
        campaigns_launch_due,
    )

    launched = campaigns_launch_due()
    banners = banners_due()
    decided = campaigns_decide_due()
    resumed = campaign_launches_resume()
    reclaimed = reclaim()
    sending = Campaign.objects.unscoped().filter(status=CampaignStatus.SENDING)
    for pk in sending.values_list("pk", flat=True):
        campaign_dispatch_task.delay(pk)
    return {"launched": launched, "launches_resumed": resumed, "winners": decided,
            "banners": banners, **reclaimed}  # fmt: skip


@shared_task(name="campaigns.tasks.banner_events_flush_task")
def banner_events_flush_task():
    """Every 5 s (beat): the queued banner impressions and clicks written as counts."""
    from campaigns.banners import flush_events

    return flush_events()

"""Changes to campaigns: drafts, launch (the recipients frozen into the ledger), the
lifecycle (pause, resume, cancel), test sends. Every transition is audited
("campaign.<status>"); every send goes through the ledger (campaigns.dispatch)."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from campaigns.dispatch.freeze import NoRecipients, freeze
from campaigns.dispatch.send import _transition
from campaigns.models import (
    EDITABLE,
    Campaign,
    CampaignChannel,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    SkipReason,
)
from campaigns.templating import clean_content
from segments.models import Segment

WORKERS_PER_CAMPAIGN = 2  # dispatch tasks started side by side at launch


class CampaignConflict(ValueError):
    """A change the campaign's status forbids (HTTP 409): the message says why."""


def campaign_create(*, workspace, name: str, channel: str, content: dict, actor: Actor,
                    include=(), exclude=(), everyone: bool = False, audience=None,
                    expires_at: datetime | None = None) -> Campaign:  # fmt: skip
    """A draft. Choosing an audience copies its include and exclude segments in (the
    campaign's own lists from then on). audit: "campaign.create"."""
    if channel not in CampaignChannel.values or channel == CampaignChannel.BANNER:
        raise ValidationError({"channel": "A campaign is sent by email, SMS or push."})
    name = " ".join(str(name or "").split())
    if not name or len(name) > 200:
        raise ValidationError({"name": "Give the campaign a name (at most 200 characters)."})
    if audience is not None and audience.channel != channel:
        raise ValidationError({"audience": f"Choose an audience of the {channel} channel."})
    cleaned = clean_content(channel, content)
    include, exclude = list(include), list(exclude)
    if audience is not None:
        include += [e.segment for e in audience.include.all()]
        exclude += [e.segment for e in audience.exclude.all()]
    for segment in (*include, *exclude):
        if segment.workspace_id != getattr(workspace, "pk", workspace):
            raise ValidationError({"include": "No such segment in this workspace."})
    with transaction.atomic():
        campaign = Campaign.objects.create(
            workspace=workspace, name=name, channel=channel, content=cleaned,
            audience=audience, everyone=everyone, expires_at=expires_at,
            created_by=actor.user,
        )  # fmt: skip
        campaign.include.set(include)
        campaign.exclude.set(exclude)
        audit_record(workspace=workspace, actor=actor, action="campaign.create", obj=campaign,
                     summary={"channel": channel, "include": len(include),
                              "exclude": len(exclude)})  # fmt: skip
    return campaign


def _enqueue_dispatch(campaign: Campaign) -> None:
    from campaigns.tasks import campaign_dispatch_task

    for _ in range(WORKERS_PER_CAMPAIGN):
        transaction.on_commit(lambda: campaign_dispatch_task.delay(campaign.pk))


def campaign_launch(*, campaign: Campaign, actor: Actor, send_at: datetime | None = None,
                    now: datetime | None = None) -> Campaign:  # fmt: skip
    """Launch now (recipients frozen into the ledger in one statement, workers started)
    or schedule for `send_at` (frozen when due). A campaign already past its expiry never
    sends. audit: "campaign.scheduled" / "campaign.sending"."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status not in EDITABLE:
            raise CampaignConflict(f"The campaign is {locked.get_status_display().lower()}: "
                                   "only a draft or a scheduled campaign is launched.")  # fmt: skip
        if locked.expires_at and locked.expires_at <= now:
            _transition(locked, CampaignStatus.EXPIRED, reason="It expired before it was sent: "
                        "nothing was sent.", now=now)  # fmt: skip
            return locked
        if send_at and send_at > now:
            Campaign.objects.filter(pk=locked.pk).update(send_at=send_at)
            _transition(locked, CampaignStatus.SCHEDULED, now=now)
            return locked
        try:
            queued, skipped = freeze(locked, now=now)
        except NoRecipients as e:
            raise ValidationError({"include": str(e)}) from None
        Campaign.objects.filter(pk=locked.pk).update(launched_at=now)
        _transition(locked, CampaignStatus.SENDING, now=now)
        audit_record(workspace=locked.workspace_id, actor=actor, action="campaign.launch",
                     obj=locked, summary={"queued": queued, "skipped": skipped})  # fmt: skip
        _enqueue_dispatch(locked)
    locked.refresh_from_db()
    return locked


def campaigns_launch_due(*, now: datetime | None = None) -> int:
    """Scheduled campaigns whose time has come (beat): launched, or expired when their
    expiry passed while Herald was down."""
    now = now or timezone.now()
    due = Campaign.objects.unscoped().filter(status=CampaignStatus.SCHEDULED, send_at__lte=now)
    started = 0
    for campaign in due:
        Campaign.objects.unscoped().filter(pk=campaign.pk).update(status=CampaignStatus.DRAFT)
        campaign.status = CampaignStatus.DRAFT
        campaign_launch(campaign=campaign, actor=Actor.of_system("campaign schedule"), now=now)
        started += 1
    return started


def campaign_pause(*, campaign: Campaign, actor: Actor) -> Campaign:
    """Workers stop at their next batch; nothing queued is lost. audit: "campaign.paused"."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != CampaignStatus.SENDING:
            raise CampaignConflict("Only a sending campaign can be paused.")
        _transition(locked, CampaignStatus.PAUSED)
    return locked


def campaign_resume(*, campaign: Campaign, actor: Actor) -> Campaign:
    """Sending again from where it stopped: the ledger keeps who was sent, so nobody gets
    it twice. audit: "campaign.sending"."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != CampaignStatus.PAUSED:
            raise CampaignConflict("Only a paused campaign can be resumed.")
        _transition(locked, CampaignStatus.SENDING)
        _enqueue_dispatch(locked)
    return locked


def campaign_cancel(*, campaign: Campaign, actor: Actor) -> Campaign:
    """Nothing more is sent; what was queued is recorded as skipped `cancelled`.
    audit: "campaign.cancelled"."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status in (CampaignStatus.SENT, CampaignStatus.CANCELLED,
                             CampaignStatus.EXPIRED, CampaignStatus.FAILED):  # fmt: skip
            raise CampaignConflict("The campaign is finished: there is nothing to cancel.")
        Delivery.objects.filter(campaign=locked, is_test=False,
                                status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.SKIPPED, reason=SkipReason.CANCELLED)  # fmt: skip
        _transition(locked, CampaignStatus.CANCELLED)
    return locked


def campaign_test_send(*, campaign: Campaign, actor: Actor, segment: Segment | None = None,
                       people=None, now: datetime | None = None) -> dict:  # fmt: skip
    """Send the campaign now to a test segment or chosen people, through the real
    transport and the same ledger and suppression check (rows marked as tests, outside
    the stats). {"sent", "skipped": [(person external id, reason)]}. audit: "campaign.test"."""
    from campaigns.dispatch.freeze import blocked, test_segment_people
    from campaigns.dispatch.send import send_batch
    from campaigns.templating import compile_content
    from channels.providers import get_transport
    from people.models import Person

    now = now or timezone.now()
    if segment is not None:
        targets = test_segment_people(segment, now=now)
    else:
        targets = Person.objects.for_workspace(campaign.workspace_id).filter(pk__in=people or [])
    targets = targets.annotate(is_blocked=blocked(campaign.channel))[:1000]
    with transaction.atomic():
        rows = [Delivery(workspace_id=campaign.workspace_id, campaign=campaign, person=p,
                         is_test=True, status=DeliveryStatus.SENDING, attempts=1,
                         lease_until=now) for p in targets]  # fmt: skip
        Delivery.objects.bulk_create(rows)
    compiled = compile_content(campaign.channel, campaign.content)
    with get_transport(campaign.channel, campaign.workspace) as transport:
        result = send_batch(campaign, transport, compiled, [r.pk for r in rows], now=now)
    skipped = list(
        Delivery.objects.filter(pk__in=[r.pk for r in rows], status=DeliveryStatus.SKIPPED)
        .values_list("person__external_id", "reason")
    )
    audit_record(workspace=campaign.workspace_id, actor=actor, action="campaign.test",
                 obj=campaign, summary={"sent": result.sent, "skipped": len(skipped)})  # fmt: skip
    return {"sent": result.sent, "skipped": skipped}

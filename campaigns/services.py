"""Changes to campaigns: drafts, launch (the recipients frozen into the ledger), the
lifecycle (pause, resume, cancel), test sends. Every transition is audited
("campaign.<status>"); every send goes through the ledger (campaigns.dispatch)."""

import logging
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.jobs import UNFINISHED, attempt_lock, job_claim, job_done, job_fail, job_give_up
from campaigns.dispatch.freeze import NoRecipients, first_zone_moment, freeze, unknown_zones
from campaigns.dispatch.send import _transition as _system_transition
from campaigns.models import (
    EDITABLE,
    Campaign,
    CampaignChannel,
    CampaignLaunch,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    QuietHours,
    SkipReason,
)
from campaigns.templating import clean_content
from campaigns.variants import clean_test, clean_variants, pick_winner
from segments.models import Segment

logger = logging.getLogger(__name__)

# a campaign sent in recipients' time zones launches when the first zone (UTC+14) reaches
# its local time: up to 26 h before send_at (a workspace at UTC-12)
LOCAL_SEND_LEAD = timedelta(hours=27)
WORKERS_PER_CAMPAIGN = 2  # dispatch tasks started side by side at launch


class CampaignConflict(ValueError):
    """A change the campaign's status forbids (HTTP 409): the message says why."""


def campaign_create(*, workspace, name: str, channel: str, content: dict, actor: Actor,
                    include=(), exclude=(), everyone: bool = False, audience=None,
                    expires_at: datetime | None = None) -> Campaign:  # fmt: skip
    """A draft. Choosing an audience copies its include and exclude segments in (the
    campaign's own lists from then on). audit: "campaign.create"."""
    if channel not in CampaignChannel.values:
        raise ValidationError({"channel": "A campaign is sent by email, SMS or push, or shown "
                               "as an in-app banner."})  # fmt: skip
    name = _clean_name(name)
    if audience is not None and audience.channel != channel:
        raise ValidationError({"audience": f"Choose an audience of the {channel} channel."})
    cleaned = clean_content(channel, content, draft=True)
    if channel == CampaignChannel.BANNER:
        _check_placement(workspace, cleaned)
        if audience is not None:
            raise ValidationError({"audience": "Banners have no channel audiences: target "
                                   "segments or Everyone."})  # fmt: skip
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


def _transition(
    campaign: Campaign, status: str, *, actor: Actor | None = None, reason: str = "", now=None
) -> None:
    """The dispatcher's transition (audited "campaign.<status>"), attributed to `actor`
    when a person or key asked for it."""
    _system_transition(campaign, status, reason=reason, now=now, actor=actor)


_UNSET = object()


def campaign_update(*, campaign: Campaign, actor: Actor, name=_UNSET, content=_UNSET,
                    audience=_UNSET, include=_UNSET, exclude=_UNSET, everyone=_UNSET,
                    people=_UNSET, send_at=_UNSET, expires_at=_UNSET, test_segment=_UNSET,
                    tracking=_UNSET, in_recipient_time_zone=_UNSET,
                    transactional=_UNSET, quiet_hours=_UNSET, variants=_UNSET,
                    ab_test=_UNSET) -> Campaign:  # fmt: skip
    """Change a draft or scheduled campaign (409 otherwise). Choosing another audience
    without giving `include` / `exclude` copies its lists in; giving them sets the
    campaign's own lists (the audience is unchanged). `people`: a queryset of people who
    become the campaign's ad-hoc recipients (its static segment), [] to drop them.
    `variants`: the A/B variants ([] for none, campaigns.variants.clean_variants);
    `ab_test`: {"percent", "metric", "decide_after_hours"} of the test phase (None: none).
    audit: "campaign.update" naming the fields changed."""
    changed = []
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status not in EDITABLE:
            raise CampaignConflict(f"The campaign is {locked.get_status_display().lower()}: "
                                   "only a draft or a scheduled campaign changes.")  # fmt: skip
        fields = {}
        if name is not _UNSET:
            fields["name"] = _clean_name(name)
        if content is not _UNSET:
            fields["content"] = clean_content(locked.channel, content, draft=True)
            if locked.channel == CampaignChannel.BANNER:
                _check_placement(locked.workspace_id, fields["content"])
        if audience is not _UNSET:
            if audience is not None and audience.channel != locked.channel:
                raise ValidationError({"audience": f"Choose an audience of the "
                                       f"{locked.channel} channel."})  # fmt: skip
            fields["audience"] = audience
            if audience is not None and include is _UNSET and exclude is _UNSET:
                include = [e.segment for e in audience.include.all()]
                exclude = [e.segment for e in audience.exclude.all()]
        if everyone is not _UNSET:
            fields["everyone"] = bool(everyone)
        if expires_at is not _UNSET:
            fields["expires_at"] = expires_at
        if send_at is not _UNSET:
            fields["send_at"] = send_at
        if test_segment is not _UNSET:
            _same_workspace(locked, [test_segment] if test_segment else [], "test_segment")
            fields["test_segment"] = test_segment
        if tracking is not _UNSET:
            fields["tracking"] = bool(tracking)
        if in_recipient_time_zone is not _UNSET:
            fields["in_recipient_time_zone"] = bool(in_recipient_time_zone)
        if transactional is not _UNSET:  # exempt from (and not counted toward) caps
            fields["transactional"] = bool(transactional)
        if quiet_hours is not _UNSET:
            if quiet_hours not in QuietHours.values:
                raise ValidationError({"quiet_hours": "Choose “wait” (until the quiet hours "
                                       "end) or “skip”."})  # fmt: skip
            fields["quiet_hours"] = quiet_hours
        content_now = fields.get("content", locked.content)
        if variants is not _UNSET:
            fields["variants"] = clean_variants(locked.channel, content_now, variants)
        elif "content" in fields and locked.variants:  # each variant's message re-checked
            fields["variants"] = clean_variants(locked.channel, content_now, locked.variants)
        if ab_test is not _UNSET:
            ab_test = ab_test or {"percent": 0}
            fields |= clean_test(
                channel=locked.channel, tracking=fields.get("tracking", locked.tracking),
                variants=fields.get("variants", locked.variants),
                percent=ab_test.get("percent", 0),
                metric=ab_test.get("metric", locked.ab_metric),
                hours=ab_test.get("decide_after_hours", locked.ab_decide_hours),
            )  # fmt: skip
        elif ("variants" in fields or "tracking" in fields) and locked.ab_test_percent:
            try:  # the test phase still holds with the new variants and tracking
                clean_test(channel=locked.channel, tracking=fields.get("tracking", locked.tracking),
                           variants=fields.get("variants", locked.variants),
                           percent=locked.ab_test_percent, metric=locked.ab_metric,
                           hours=locked.ab_decide_hours)  # fmt: skip
            except ValidationError:
                if fields.get("variants", locked.variants):
                    raise
                fields["ab_test_percent"] = 0  # no variants left: no test phase either
        for key, value in fields.items():
            setattr(locked, key, value)
        if fields:
            locked.save(update_fields=[*fields, "updated_at"])
            changed += list(fields)
        if include is not _UNSET:
            _same_workspace(locked, include, "include")
            locked.include.set(include)
            changed.append("include")
        if exclude is not _UNSET:
            _same_workspace(locked, exclude, "exclude")
            locked.exclude.set(exclude)
            changed.append("exclude")
        if people is not _UNSET:
            _set_people(locked, people, actor=actor)
            changed.append("people")
        audit_record(workspace=locked.workspace_id, actor=actor, action="campaign.update",
                     obj=locked, summary={"fields": sorted(set(changed))})  # fmt: skip
    locked.refresh_from_db()
    return locked


def _check_placement(workspace, content: dict) -> None:
    """A banner's placement is one of the workspace's (the built-in ones always are)."""
    from campaigns.banners import placements_for

    key = (content or {}).get("placement", "")
    if key and key not in {p.key for p in placements_for(workspace)}:
        raise ValidationError({"content.placement": f"No placement “{key}” in this "
                               "workspace: choose one of its placements."})  # fmt: skip


def _clean_name(name) -> str:
    name = " ".join(str(name or "").split())
    if not name or len(name) > 200:
        raise ValidationError({"name": "Give the campaign a name (at most 200 characters)."})
    return name


def _same_workspace(campaign: Campaign, segments, field: str) -> None:
    for segment in segments:
        if segment.workspace_id != campaign.workspace_id:
            raise ValidationError({field: "No such segment in this workspace."})


def _set_people(campaign: Campaign, people, *, actor: Actor) -> None:
    """The campaign's ad-hoc recipients as its own static segment (created when first
    needed, named after the campaign), members replaced set-based."""
    from segments.services import segment_create, static_members_replace

    segment = campaign.people_segment
    if segment is None:
        if people is None or (hasattr(people, "exists") and not people.exists()):
            return
        base = f"Recipients of campaign #{campaign.pk}"
        segment = segment_create(workspace=campaign.workspace, name=base, kind="static",
                                 actor=actor)  # fmt: skip
        Campaign.objects.filter(pk=campaign.pk).update(people_segment=segment)
        campaign.people_segment = segment
    static_members_replace(segment=segment, people=people, actor=actor)


def campaign_delete(*, campaign: Campaign, actor: Actor) -> None:
    """Delete a draft (409 otherwise), with its ad-hoc recipients' segment.
    audit: "campaign.delete"."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != CampaignStatus.DRAFT:
            raise CampaignConflict("Only a draft is deleted; a campaign that was scheduled or "
                                   "sent keeps its record (cancel it instead).")  # fmt: skip
        audit_record(workspace=locked.workspace_id, actor=actor, action="campaign.delete",
                     obj=locked, summary={"name": locked.name})  # fmt: skip
        people_segment = locked.people_segment
        locked.delete()
        if people_segment is not None:
            people_segment.delete()


def campaign_broadcast(*, workspace, channel: str, people, actor: Actor, name: str = ""
                       ) -> Campaign:  # fmt: skip
    """ "Add to communication -> Broadcast" from the People page: a draft of `channel`
    whose recipients are `people` (a queryset: the rows chosen, or all N matching), kept
    as the campaign's static segment. audit: "campaign.create" + "campaign.update"."""
    name = name or f"Broadcast of {timezone.localdate():%Y-%m-%d}"
    with transaction.atomic():
        campaign = campaign_create(workspace=workspace, name=name, channel=channel, content={},
                                   actor=actor)  # fmt: skip
        _set_people(campaign, people, actor=actor)
    campaign.refresh_from_db()
    return campaign


def _enqueue_dispatch(campaign: Campaign) -> None:
    from campaigns.tasks import campaign_dispatch_task

    for _ in range(WORKERS_PER_CAMPAIGN):
        transaction.on_commit(lambda: campaign_dispatch_task.delay(campaign.pk))


def campaign_launch(*, campaign: Campaign, actor: Actor, send_at: datetime | None = None,
                    now: datetime | None = None) -> Campaign:  # fmt: skip
    """Launch now or schedule for `send_at` (launched when due, by beat). Launching is a
    job row (CampaignLaunch): the campaign turns `sending` at once and a worker freezes
    the recipients into the ledger and starts the senders (campaign_launch_run). A
    campaign already past its expiry never sends; one with no recipients chosen is
    refused before anything changes. audit: "campaign.scheduled" / "campaign.sending",
    "campaign.launch"."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status not in EDITABLE:
            raise CampaignConflict(f"The campaign is {locked.get_status_display().lower()}: "
                                   "only a draft or a scheduled campaign is launched.")  # fmt: skip
        _check_sendable(locked)
        if locked.expires_at and locked.expires_at <= now:
            _transition(locked, CampaignStatus.EXPIRED, reason="It expired before it was sent: "
                        "nothing was sent.", now=now, actor=actor)  # fmt: skip
            return locked
        if locked.in_recipient_time_zone:
            send_at = send_at or locked.send_at
            if send_at is None:
                raise ValidationError({"in_recipient_time_zone": "Sending in each recipient's "
                                       "time zone needs a send time: choose one."})  # fmt: skip
            locked.send_at = send_at
        if locked.channel == CampaignChannel.BANNER:
            return _banner_launch(locked, actor=actor, send_at=send_at, now=now)
        start = first_zone_moment(locked) or send_at
        if send_at and start > now:
            if locked.expires_at and locked.expires_at <= send_at:
                raise ValidationError({"send_at": "The campaign would expire before it is "
                                       "sent: choose a time before its expiry."})  # fmt: skip
            Campaign.objects.filter(pk=locked.pk).update(send_at=send_at)
            locked.send_at = send_at
            _transition(locked, CampaignStatus.SCHEDULED, now=now, actor=actor)
            return locked
        # an A/B test phase's winner is chosen this long after the launch
        decide_at = now + timedelta(hours=locked.ab_decide_hours) if (
            locked.variants and locked.ab_test_percent) else None  # fmt: skip
        Campaign.objects.filter(pk=locked.pk).update(
            launched_at=now, send_at=locked.send_at, ab_decide_at=decide_at
        )
        locked.launched_at, locked.ab_decide_at = now, decide_at
        launch = CampaignLaunch.objects.create(
            workspace_id=locked.workspace_id, campaign=locked, created_by=actor.user,
            detail="Waiting for a worker to freeze the recipients…",
        )  # fmt: skip
        _transition(locked, CampaignStatus.SENDING, now=now, actor=actor)
        audit_record(workspace=locked.workspace_id, actor=actor, action="campaign.launch",
                     obj=locked, summary={"launch": launch.pk})  # fmt: skip
        transaction.on_commit(lambda: _enqueue_launch(launch.pk))
    return locked


def _check_sendable(campaign: Campaign) -> None:
    """Refuse, before anything changes, a launch that could only fail: no recipients
    chosen, or content that does not compile."""
    if not (campaign.everyone or campaign.people_segment_id or campaign.include.exists()):
        raise ValidationError({"include": "No recipients chosen: pick an audience, segments "
                               "or people, or choose Everyone."})  # fmt: skip
    _check_sendable_content(campaign)


def _banner_launch(campaign: Campaign, *, actor: Actor, send_at, now) -> Campaign:
    """A banner goes live now, or is scheduled for `send_at` (live when due: beat, and the
    serving cache reads the start itself). Nothing is sent: no ledger."""
    if campaign.expires_at and send_at and campaign.expires_at <= send_at:
        raise ValidationError({"send_at": "The banner would expire before it starts: choose "
                               "a start before its expiry."})  # fmt: skip
    if send_at and send_at > now:
        Campaign.objects.filter(pk=campaign.pk).update(send_at=send_at)
        campaign.send_at = send_at
        _transition(campaign, CampaignStatus.SCHEDULED, now=now, actor=actor)
        return campaign
    Campaign.objects.filter(pk=campaign.pk).update(launched_at=now, send_at=send_at)
    campaign.launched_at = now
    _transition(campaign, CampaignStatus.LIVE, now=now, actor=actor)
    return campaign


def banner_end(*, campaign: Campaign, actor: Actor, now: datetime | None = None) -> Campaign:
    """Take a live banner down (ended): no longer served, its stats kept. audit:
    "campaign.ended"."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.channel != CampaignChannel.BANNER or locked.status != CampaignStatus.LIVE:
            raise CampaignConflict("Only a live banner is ended.")
        Campaign.objects.filter(pk=locked.pk).update(finished_at=now)
        _transition(locked, CampaignStatus.ENDED, now=now, actor=actor)
    return locked


def banners_due(*, now: datetime | None = None) -> dict:
    """Beat: scheduled banners whose start has come go live; live or scheduled ones past
    their expiry expire (the serving cache already stopped them at the moment itself)."""
    now = now or timezone.now()
    system = Actor.of_system("banner schedule")
    banners = Campaign.objects.unscoped().filter(channel=CampaignChannel.BANNER)
    expired = 0
    for campaign in banners.filter(status__in=(CampaignStatus.LIVE, CampaignStatus.SCHEDULED),
                                   expires_at__lte=now):  # fmt: skip
        Campaign.objects.unscoped().filter(pk=campaign.pk).update(finished_at=now)
        _transition(campaign, CampaignStatus.EXPIRED, now=now, actor=system,
                    reason="Expired: no longer shown.")  # fmt: skip
        expired += 1
    started = 0
    for campaign in banners.filter(status=CampaignStatus.SCHEDULED, send_at__lte=now):
        Campaign.objects.unscoped().filter(pk=campaign.pk).update(launched_at=campaign.send_at)
        _transition(campaign, CampaignStatus.LIVE, now=now, actor=system)
        started += 1
    return {"live": started, "expired": expired}


def _check_sendable_content(campaign: Campaign) -> None:
    try:
        clean_content(campaign.channel, campaign.content)
    except ValidationError as e:
        raise ValidationError({f"content.{k}": v for k, v in e.message_dict.items()}) from None
    if campaign.variants:  # each variant's message complete too (its own fields named)
        clean_variants(campaign.channel, campaign.content, campaign.variants, draft=False)


def _enqueue_launch(launch_id: int) -> None:
    from campaigns.tasks import campaign_launch_run_task

    try:
        campaign_launch_run_task.delay(launch_id)
    except Exception:  # the broker is down: beat starts the launch when it is back
        logger.warning("campaign launch %s: the broker refused the task; beat will start it",
                       launch_id, exc_info=True)  # fmt: skip


_LOCK_NAMESPACE = 0x4843_4C41 << 32  # "HCLA": advisory lock keys of campaign launch jobs


def campaign_launch_run(*, launch_id: int, now: datetime | None = None) -> CampaignLaunch | None:
    """The worker's side of a launch: claim the job, freeze the recipients (one INSERT ...
    SELECT, idempotent: a person already in the ledger stays as they are, so a re-run
    after a dead worker adds nobody twice), mark it done in the same transaction, then
    start the senders. A campaign cancelled meanwhile freezes nobody. None when another
    live attempt holds the job. audit: "campaign_launch.done"."""
    now = now or timezone.now()
    jobs = CampaignLaunch.objects.unscoped().filter(pk=launch_id)
    with attempt_lock(_LOCK_NAMESPACE + launch_id) as got:
        if not got:
            return None
        if not job_claim(jobs, now=now, detail="Freezing the recipients…"):
            job_give_up(jobs, now=now, detail="The launch stopped its worker too many times; "
                        "nobody was sent anything. Launch the campaign again.")  # fmt: skip
            launch = jobs.first()
            if launch and launch.status == "failed":
                campaign = Campaign.objects.unscoped().get(pk=launch.campaign_id)
                if campaign.status == CampaignStatus.SENDING:
                    _transition(campaign, CampaignStatus.FAILED, reason=launch.detail)
            return launch
        launch = jobs.select_related("campaign", "campaign__workspace").get()
        campaign = launch.campaign
        try:
            with transaction.atomic():
                locked = Campaign.objects.unscoped().select_for_update().get(pk=campaign.pk)
                if locked.status != CampaignStatus.SENDING:
                    job_done(jobs, detail=f"Not frozen: the campaign is {locked.status}.")
                    return jobs.get()
                queued, skipped = freeze(locked, now=now)
                detail = f"{queued} queued, {skipped} skipped."
                if unknown := unknown_zones(locked):
                    detail += (f" {unknown} with a time zone not known: the workspace's "
                               "was used.")  # fmt: skip
                job_done(jobs, total_rows=queued + skipped, processed_rows=queued + skipped,
                         queued=queued, skipped=skipped, detail=detail)  # fmt: skip
                _enqueue_dispatch(locked)
        except NoRecipients as e:
            job_fail(jobs, detail=str(e))
            _transition(campaign, CampaignStatus.FAILED, reason=str(e))
        except Exception as e:
            logger.exception("campaign launch %s failed", launch_id)
            detail = (f"The launch stopped on an unexpected error ({type(e).__name__}); "
                      f"nobody was sent anything (campaign launch #{launch_id}).")  # fmt: skip
            job_fail(jobs, detail=detail)
            _transition(campaign, CampaignStatus.FAILED, reason=detail)
            raise
    launch = jobs.get()
    if launch.status == "done":
        # a launch whose every recipient was skipped is finished at once
        from campaigns.dispatch.send import finish_if_done

        finish_if_done(campaign)
    return launch


def campaign_launches_resume(*, now: datetime | None = None, stale=timedelta(minutes=2)) -> int:
    """Beat: launch jobs left unfinished (the broker lost the task, a worker died) are
    started again; the attempt lock keeps a live one alone."""
    now = now or timezone.now()
    pks = list(
        CampaignLaunch.objects.unscoped()
        .filter(status__in=UNFINISHED, created_at__lte=now - stale)
        .values_list("pk", flat=True)
    )
    for pk in pks:
        _enqueue_launch(pk)
    return len(pks)


def campaigns_launch_due(*, now: datetime | None = None) -> int:
    """Scheduled campaigns whose time has come (beat): launched, or expired when their
    expiry passed while Herald was down."""
    now = now or timezone.now()
    # in recipients' time zones: launched when the first zone reaches the local time
    local = Q(in_recipient_time_zone=True, send_at__lte=now + LOCAL_SEND_LEAD)
    due = (
        Campaign.objects.unscoped()
        .filter(Q(send_at__lte=now) | local, status=CampaignStatus.SCHEDULED)
        .exclude(channel=CampaignChannel.BANNER)  # banners_due starts those
        .select_related("workspace")
    )
    started = 0
    for campaign in due:
        if (first_zone_moment(campaign) or campaign.send_at) > now:
            continue
        try:
            campaign_launch(campaign=campaign, actor=Actor.of_system("campaign schedule"),
                            now=now)  # fmt: skip
        except ValidationError as e:  # its segments were deleted meanwhile, say
            reason = "; ".join(m for ms in e.message_dict.values() for m in ms)
            _transition(campaign, CampaignStatus.FAILED, reason=f"Not launched: {reason}")
        started += 1
    return started


def campaign_pause(*, campaign: Campaign, actor: Actor) -> Campaign:
    """Workers stop at their next batch; nothing queued is lost. audit: "campaign.paused"."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != CampaignStatus.SENDING:
            raise CampaignConflict("Only a sending campaign can be paused.")
        _transition(locked, CampaignStatus.PAUSED, actor=actor)
    return locked


def campaign_resume(*, campaign: Campaign, actor: Actor) -> Campaign:
    """Sending again from where it stopped: the ledger keeps who was sent, so nobody gets
    it twice. audit: "campaign.sending"."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != CampaignStatus.PAUSED:
            raise CampaignConflict("Only a paused campaign can be resumed.")
        _transition(locked, CampaignStatus.SENDING, actor=actor)
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
        _transition(locked, CampaignStatus.CANCELLED, actor=actor)
    return locked


def campaign_choose_winner(*, campaign: Campaign, actor: Actor, variant: str | None = None,
                           now: datetime | None = None) -> Campaign:  # fmt: skip
    """End the A/B test phase: the winner is `variant` when a person picks it, else the
    variant with the highest human open (or click) rate per message sent in the test
    (campaigns.variants.pick_winner); the held rest of the recipients are given it (one
    UPDATE) and sent. The test's figures are kept with the decision. 409 when there is no
    undecided test phase, or the campaign is finished. audit: "campaign.winner"."""
    from campaigns.selectors import variant_results

    now = now or timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not (locked.variants and locked.ab_test_percent):
            raise CampaignConflict("The campaign has no A/B test phase: every recipient "
                                   "already has a variant.")  # fmt: skip
        if locked.ab_winner:
            raise CampaignConflict(f"The winner was chosen already: {locked.ab_winner}.")
        if locked.status not in (CampaignStatus.SENDING, CampaignStatus.PAUSED):
            raise CampaignConflict(f"The campaign is {locked.get_status_display().lower()}: "
                                   "a winner is chosen while it sends.")  # fmt: skip
        keys = [v["key"] for v in locked.variants]
        results = variant_results(locked, test_only=True)
        results = {k: results.get(k, {"sent": 0, "opened": 0, "clicked": 0}) for k in keys}
        if variant is not None:
            if variant not in keys:
                raise ValidationError({"variant": f"No variant {variant}: choose one of "
                                       f"{', '.join(keys)}."})  # fmt: skip
            winner, why, by = variant, f"{variant} was chosen by hand.", "chosen"
        else:
            winner, why = pick_winner(results, locked.ab_metric)
            by = locked.ab_metric
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE campaigns_delivery SET variant = %s WHERE campaign_id = %s "
                "AND NOT is_test AND ab_rest AND variant = ''",
                [winner, locked.pk],
            )
            released = cursor.rowcount
        decision = {"by": by, "note": why, "rest": released,
                    "results": {k: {f: r[f] for f in ("sent", "opened", "clicked")}
                                for k, r in results.items()}}  # fmt: skip
        Campaign.objects.filter(pk=locked.pk).update(
            ab_winner=winner, ab_decided_at=now, ab_decision=decision
        )
        audit_record(workspace=locked.workspace_id, actor=actor, action="campaign.winner",
                     obj=locked, summary={"winner": winner, "by": by,
                                          "rest": released})  # fmt: skip
        if locked.status == CampaignStatus.SENDING:
            _enqueue_dispatch(locked)
    locked.refresh_from_db()
    return locked


def campaigns_decide_due(*, now: datetime | None = None) -> int:
    """Beat: A/B tests whose decision time has come get their winner (a paused campaign
    too: its rest is sent when it resumes)."""
    now = now or timezone.now()
    due = Campaign.objects.unscoped().filter(
        ab_winner="", ab_decide_at__lte=now,
        status__in=(CampaignStatus.SENDING, CampaignStatus.PAUSED),
    )  # fmt: skip
    decided = 0
    for campaign in due:
        try:
            campaign_choose_winner(campaign=campaign, actor=Actor.of_system("A/B test"), now=now)
        except CampaignConflict:  # decided meanwhile
            continue
        decided += 1
    return decided


class TestSendRefused(ValueError):
    """A test send that cannot happen (no provider on the channel): the message says why."""


TEST_SEND_LIMIT = 1000  # people in one test send


def campaign_test_send(*, campaign: Campaign, actor: Actor, segment: Segment | None = None,
                       people=None, variant: str | None = None,
                       now: datetime | None = None) -> dict:  # fmt: skip
    """Send the campaign now to a test segment or chosen people (at most TEST_SEND_LIMIT),
    through the real transport and the same ledger and suppression check (rows marked as
    tests, outside the stats). With A/B variants each person gets every variant, or only
    `variant`. Content must be complete (ValidationError otherwise); TestSendRefused
    without a provider. {"sent", "failed", "skipped": [(person external id, reason)]}.
    audit: "campaign.test"."""
    from campaigns.dispatch.freeze import blocked, test_segment_people
    from campaigns.dispatch.send import send_batch
    from campaigns.variants import compile_all
    from channels.providers import NoProvider, get_transport
    from people.models import Person

    now = now or timezone.now()
    _check_sendable_content(campaign)
    if segment is not None:
        targets = test_segment_people(segment, now=now)
    else:
        targets = Person.objects.for_workspace(campaign.workspace_id).filter(pk__in=people or [])
    targets = targets.annotate(is_blocked=blocked(campaign.channel)).order_by("id")
    targets = list(targets[:TEST_SEND_LIMIT])
    try:
        transport = get_transport(campaign.channel, campaign.workspace)
    except NoProvider as e:
        raise TestSendRefused(str(e)) from None
    keys = [v["key"] for v in campaign.variants or ()]
    if variant is not None and variant not in keys:
        choices = ", ".join(keys) or "none (the campaign has no variants)"
        raise ValidationError({"variant": f"No variant {variant}: choose one of {choices}."})
    sent_keys = [variant] if variant else (keys or [""])
    compiled = compile_all(campaign)
    with transaction.atomic():
        rows = [Delivery(workspace_id=campaign.workspace_id, campaign=campaign, person=p,
                         is_test=True, status=DeliveryStatus.SENDING, attempts=1,
                         lease_until=now, variant=key)
                for p in targets for key in sent_keys]  # fmt: skip
        Delivery.objects.bulk_create(rows)
    ids = [r.pk for r in rows]
    with transport:
        result = send_batch(campaign, transport, compiled, ids, now=now) if ids else None
    skipped = list(
        Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.SKIPPED)
        .values_list("person__external_id", "reason").order_by().distinct()
    )
    # a temporary error is not retried for a test: it is reported now
    Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None
    )
    failed = list(
        Delivery.objects.filter(pk__in=ids, status__in=(DeliveryStatus.FAILED,
                                                        DeliveryStatus.BOUNCED))
        .values_list("person__external_id", "error")
    )  # fmt: skip
    sent = result.sent if result else 0
    audit_record(workspace=campaign.workspace_id, actor=actor, action="campaign.test",
                 obj=campaign, summary={"sent": sent, "skipped": len(skipped),
                                        "failed": len(failed)})  # fmt: skip
    return {"sent": sent, "skipped": skipped, "failed": failed}


# --- Banner placements -----------------------------------------------------------------------


def placement_create(*, workspace, actor: Actor, key: str, name: str, description: str = "",
                     max_banners: int = 1):  # fmt: skip
    """A custom placement. audit: "placement.create"."""
    from campaigns.models import Placement

    key = (key or "").strip().lower()
    if not key or Placement.objects.for_workspace(workspace).filter(key=key).exists():
        raise ValidationError({"key": f"The workspace has a placement “{key}” already."})
    if not 1 <= int(max_banners) <= 10:
        raise ValidationError({"max_banners": "From 1 to 10 banners per page view."})
    with transaction.atomic():
        placement = Placement.objects.create(workspace=workspace, key=key, name=name.strip(),
                                             description=description.strip(),
                                             max_banners=max_banners)  # fmt: skip
        audit_record(workspace=workspace, actor=actor, action="placement.create",
                     obj=placement, summary={"key": key})  # fmt: skip
    return placement


def placement_delete(*, placement, actor: Actor) -> None:
    """Delete a custom placement no banner uses (a draft, scheduled or live one names it:
    409). audit: "placement.delete"."""
    if placement.builtin:
        raise CampaignConflict("A built-in placement stays.")
    users = Campaign.objects.for_workspace(placement.workspace_id).filter(
        channel=CampaignChannel.BANNER, content__placement=placement.key,
        status__in=(CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.LIVE),
    )  # fmt: skip
    if users.exists():
        names = ", ".join(f"“{c.name}”" for c in users[:3])
        raise CampaignConflict(f"The placement “{placement.key}” is in use by {names}: "
                               "change or end those banners first.")  # fmt: skip
    with transaction.atomic():
        audit_record(workspace=placement.workspace_id, actor=actor, action="placement.delete",
                     obj=placement, summary={"key": placement.key})  # fmt: skip
        placement.delete()

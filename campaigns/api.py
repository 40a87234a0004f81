"""Campaigns over the HTTP API (shared/API.md "Campaigns", exactly): drafts, the live
estimate, test sends, launch and the lifecycle, the per-recipient log, and what a person
was sent."""

from datetime import datetime
from typing import Annotated, Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.responses import Status

from accounts.audit import Actor
from campaigns import selectors, services
from campaigns.dispatch.freeze import NoRecipients
from campaigns.models import Campaign, DeliveryStatus
from channels.models import ChannelAudience
from config.api import CursorPagination, InputSchema, also_answers
from people.models import Person
from people.selectors import get_person_or_404
from segments.models import Segment
from segments.selectors import current_members

router = Router(tags=["Campaigns"])

CampaignChannelName = Literal["email", "sms", "push", "banner"]
QuietHoursName = Literal["wait", "skip"]
StatusName = Literal["draft", "scheduled", "sending", "sent", "paused", "cancelled", "expired",
                     "failed", "live", "ended"]  # fmt: skip
DeliveryStatusName = Literal["queued", "sending", "sent", "delivered", "failed", "bounced",
                             "skipped", "unknown"]  # fmt: skip
CampaignName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
PEOPLE_SHOWN = 1000  # external ids of the ad-hoc recipients in a campaign's answer


class CampaignSkipped(Schema):
    dnc: int = 0
    no_address: int = 0
    frequency_cap: int = 0
    quiet_hours: int = 0
    duplicate_address: int = 0
    expired: int = 0
    cancelled: int = 0


class CampaignStats(Schema):
    recipients: int = Field(description="Deliveries not skipped (tests apart).")
    queued: int
    sent: int = Field(description="Taken by the provider; `delivered` is a part of it.")
    delivered: int
    failed: int
    bounced: int
    unknown: int = Field(description="Handed to the provider, no answer recorded: never re-sent.")
    opened: int
    clicked: int
    unsubscribed: int
    skipped: CampaignSkipped


class VariantIn(InputSchema):
    key: str | None = Field(None, description="A, B, ... in order (may be left out).")
    name: Annotated[str, Field(max_length=60)] = ""
    percent: int = Field(ge=1, le=99, description="The variant's share, in whole percent; "
                         "the variants' add up to 100.")  # fmt: skip
    content: dict = Field({}, description="The fields this variant changes (email: subject, "
                          "preheader, from_name, text, html; sms: body; push: title, body, "
                          "image_url, url); the rest are the campaign's.")  # fmt: skip


class ABTestIn(InputSchema):
    percent: int = Field(ge=0, le=95, description="The share of the recipients in the test "
                         "phase (split among the variants); the rest are sent the winner. 0: "
                         "everyone is split, no winner.")  # fmt: skip
    metric: Literal["open", "click"] = "open"
    decide_after_hours: int = Field(4, ge=1, le=720, description="The winner is chosen this "
                                    "long after the launch.")  # fmt: skip


class VersusOut(Schema):
    difference: float = Field(description="This variant's rate minus A's, in points.")
    p_value: float | None = Field(description="Two-proportion z-test; null: too few to tell.")
    significant: bool
    note: str


class VariantStatsOut(Schema):
    recipients: int
    sent: int
    delivered: int
    bounced: int
    opened: int
    clicked: int
    unsubscribed: int
    open_rate: float | None
    click_rate: float | None
    versus_a: dict[str, VersusOut] | None = Field(description="open and click against A.")


class VariantOut(Schema):
    key: str
    name: str
    percent: int
    content: dict
    winner: bool
    stats: VariantStatsOut | None = Field(description="On the test phase's messages (all "
                                          "of the variant's without a test phase).")  # fmt: skip


class ABTestOut(Schema):
    percent: int
    metric: Literal["open", "click"]
    decide_after_hours: int
    decide_at: datetime | None = Field(description="Set at launch.")
    winner: str = Field(description="The winning key once chosen; the rest are sent it.")
    decided_at: datetime | None
    decision: dict = Field(description="What the winner was chosen on: by, note, results.")


class CampaignLaunchOut(Schema):
    id: int
    status: str
    queued: int
    skipped: int
    detail: str
    created_at: datetime
    finished_at: datetime | None


class CampaignAudienceChanges(Schema):
    include_added: list[int]
    include_removed: list[int]
    exclude_added: list[int]
    exclude_removed: list[int]


class CampaignOut(Schema):
    id: int
    name: str
    channel: str
    status: StatusName
    status_reason: str = Field(description="Why it failed or expired.")
    audience: int | None
    include: list[int]
    exclude: list[int]
    people: list[str] = Field(description=f"Ad-hoc recipients' external ids (the first "
                              f"{PEOPLE_SHOWN}; people_count is the total).")  # fmt: skip
    people_count: int
    everyone: bool
    content: dict
    send_at: datetime | None
    in_recipient_time_zone: bool
    expires_at: datetime | None
    test_segment: int | None
    tracking: bool
    transactional: bool = Field(
        description="Exempt from the workspace's frequency caps and "
        "not counted toward them (receipts, password resets)."
    )
    quiet_hours: QuietHoursName = Field(
        description="In the recipient's quiet hours (the "
        "workspace's): wait until they end, or skip."
    )
    variants: list[VariantOut] = Field(description="A/B variants (none: one message).")
    ab_test: ABTestOut | None = Field(description="The A/B test phase, when there is one.")
    stats: CampaignStats
    audience_changes: CampaignAudienceChanges | None = Field(
        description="The segments added to or removed from the audience's lists."
    )
    launch: CampaignLaunchOut | None = Field(description="The latest launch job.")
    created_at: datetime
    updated_at: datetime
    launched_at: datetime | None
    finished_at: datetime | None


class CampaignFilters(Schema):
    status: StatusName | None = None
    channel: CampaignChannelName | None = None
    limit: int = Field(50, ge=1, le=1000, description="Items per page (1-1000).")
    cursor: str | None = Field(None, description="next_cursor of the previous page.")


class CampaignIn(InputSchema):
    name: CampaignName
    channel: CampaignChannelName
    audience: int | None = Field(None, description="A channel audience of the same channel.")
    include: list[int] | None = Field(None, description="Segment ids (default: the audience's).")
    exclude: list[int] | None = None
    people: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        None, max_length=100_000, description="Ad-hoc recipients by external id."
    )
    everyone: bool = False
    content: dict = {}
    send_at: datetime | None = None
    in_recipient_time_zone: bool = False
    expires_at: datetime | None = None
    test_segment: int | None = None
    tracking: bool = True
    transactional: bool = False
    quiet_hours: QuietHoursName = "wait"
    variants: list[VariantIn] | None = Field(None, max_length=5)
    ab_test: ABTestIn | None = None


class CampaignPatch(InputSchema):
    name: CampaignName | None = None
    audience: int | None = None
    include: list[int] | None = None
    exclude: list[int] | None = None
    people: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        None, max_length=100_000
    )
    everyone: bool | None = None
    content: dict | None = None
    send_at: datetime | None = None
    in_recipient_time_zone: bool | None = None
    expires_at: datetime | None = None
    test_segment: int | None = None
    tracking: bool | None = None
    transactional: bool | None = None
    quiet_hours: QuietHoursName | None = None
    variants: list[VariantIn] | None = Field(None, max_length=5, description="[]: no variants.")
    ab_test: ABTestIn | None = Field(None, description="null: no test phase.")


class CampaignEstimateOut(Schema):
    recipients: int = Field(description="People who would be sent, not the skipped.")
    skipped: dict[str, int]


class CampaignTestIn(InputSchema):
    segment: int | None = None
    people: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        None, max_length=services.TEST_SEND_LIMIT
    )
    variant: str | None = Field(None, description="With A/B variants: only this one "
                                "(default: every variant to each person).")  # fmt: skip


class CampaignWinnerIn(InputSchema):
    variant: str | None = Field(None, description="The winner; null: by the test's metric.")


class CampaignTestSkipped(Schema):
    person: str
    reason: str


class CampaignTestOut(Schema):
    sent: int
    skipped: list[CampaignTestSkipped]
    failed: list[CampaignTestSkipped] = Field(description="Refused by the provider: its answer.")


class CampaignLaunchIn(InputSchema):
    send_at: datetime | None = None


class DeliveryOut(Schema):
    person: str
    address: str
    status: DeliveryStatusName
    reason: str = Field(description="The skip key when skipped; the provider's answer when "
                        "failed or bounced.")  # fmt: skip
    variant: str
    sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    error: str
    provider_message_id: str

    @staticmethod
    def resolve_person(obj):
        return obj.person.external_id

    @staticmethod
    def resolve_reason(obj):
        if obj.status in (DeliveryStatus.FAILED, DeliveryStatus.BOUNCED) and not obj.reason:
            return obj.error
        return obj.reason


class PersonMessageOut(Schema):
    campaign: int
    campaign_name: str
    channel: str
    status: DeliveryStatusName
    reason: str
    is_test: bool
    address: str
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None

    @staticmethod
    def resolve_campaign(obj):
        return obj.campaign_id

    @staticmethod
    def resolve_campaign_name(obj):
        return obj.campaign.name

    @staticmethod
    def resolve_channel(obj):
        return obj.campaign.channel


# --- helpers -------------------------------------------------------------------------


def _campaign(request, campaign_id: int) -> Campaign:
    try:
        return (
            Campaign.objects.for_workspace(request.workspace)
            .select_related("audience", "people_segment", "workspace")
            .get(pk=campaign_id)
        )
    except Campaign.DoesNotExist:
        raise Http404("No such campaign in this workspace.") from None


def _out(campaign: Campaign) -> dict:
    definition = selectors.campaign_definition(campaign)
    people, people_count = [], 0
    if campaign.people_segment_id:
        members = Person.objects.filter(
            pk__in=current_members(campaign.people_segment).values("person_id")
        )
        people_count = members.count()
        people = list(members.order_by("id").values_list("external_id", flat=True)[:PEOPLE_SHOWN])
    launch = campaign.launches.order_by("-created_at", "-id").first()
    changes = None
    if definition.audience is not None:
        changes = {
            key: [s.pk for s in getattr(definition, key)]
            for key in ("include_added", "include_removed", "exclude_added", "exclude_removed")
        }
    return {
        "id": campaign.pk, "name": campaign.name, "channel": campaign.channel,
        "status": campaign.status, "status_reason": campaign.status_reason,
        "audience": campaign.audience_id, "include": [s.pk for s in definition.include],
        "exclude": [s.pk for s in definition.exclude], "people": people,
        "people_count": people_count, "everyone": campaign.everyone,
        "content": campaign.content, "send_at": campaign.send_at,
        "in_recipient_time_zone": campaign.in_recipient_time_zone,
        "expires_at": campaign.expires_at, "test_segment": campaign.test_segment_id,
        "tracking": campaign.tracking, "transactional": campaign.transactional,
        "quiet_hours": campaign.quiet_hours,
        "variants": _variants_out(campaign), "ab_test": _ab_test_out(campaign),
        "stats": selectors.campaign_stats(campaign), "audience_changes": changes,
        "launch": launch, "created_at": campaign.created_at,
        "updated_at": campaign.updated_at, "launched_at": campaign.launched_at,
        "finished_at": campaign.finished_at,
    }  # fmt: skip


def _variants_out(campaign: Campaign) -> list[dict]:
    stats = selectors.variant_stats(campaign)
    if stats is None:
        return []
    out = []
    for variant, row in zip(campaign.variants, stats["rows"], strict=True):
        versus = None
        if row["versus"]:
            versus = {what: {k: v for k, v in vars(c).items() if k != "short"}
                      for what, c in row["versus"].items()}  # fmt: skip
        out.append({
            "key": variant["key"], "name": variant.get("name", ""),
            "percent": variant["percent"], "content": variant.get("content") or {},
            "winner": row["winner"],
            "stats": {**{k: row[k] for k in ("recipients", "sent", "delivered", "bounced",
                                             "opened", "clicked", "unsubscribed",
                                             "open_rate", "click_rate")},
                      "versus_a": versus},
        })  # fmt: skip
    return out


def _ab_test_out(campaign: Campaign) -> dict | None:
    if not (campaign.variants and campaign.ab_test_percent):
        return None
    return {
        "percent": campaign.ab_test_percent, "metric": campaign.ab_metric,
        "decide_after_hours": campaign.ab_decide_hours, "decide_at": campaign.ab_decide_at,
        "winner": campaign.ab_winner, "decided_at": campaign.ab_decided_at,
        "decision": campaign.ab_decision or {},
    }  # fmt: skip


def _invalid(field: str, message: str):
    raise ValidationError({field: message})


def _segments(request, ids, field: str) -> list[Segment]:
    if ids is None:
        return None
    found = {s.pk: s for s in Segment.objects.for_workspace(request.workspace).filter(pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        _invalid(field, f"No such segment in this workspace: {', '.join(map(str, missing))}.")
    return [found[i] for i in dict.fromkeys(ids)]


def _audience(request, pk, channel: str):
    if pk is None:
        return None
    audience = (
        ChannelAudience.objects.for_workspace(request.workspace)
        .prefetch_related("include__segment", "exclude__segment")
        .filter(pk=pk)
        .first()
    )
    if audience is None:
        _invalid("audience", "No such channel audience in this workspace.")
    if audience.channel != channel:
        _invalid("audience", f"Choose an audience of the {channel} channel (this one is "
                 f"{audience.channel}).")  # fmt: skip
    return audience


def _people(request, external_ids, field: str = "people"):
    """The people of `external_ids` as a queryset; every id must exist (422 names the
    unknown ones)."""
    if external_ids is None:
        return None
    wanted = list(dict.fromkeys(external_ids))
    people = Person.objects.for_workspace(request.workspace).filter(external_id__in=wanted)
    known = set(people.values_list("external_id", flat=True))
    unknown = [e for e in wanted if e not in known]
    if unknown:
        shown = ", ".join(repr(e) for e in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        _invalid(field, f"No person with external_id {shown}{more}.")
    return people


def _conflict(e: Exception):
    raise HttpError(409, str(e)) from None


# --- campaigns -----------------------------------------------------------------------


class CampaignPage(Schema):
    items: list[CampaignOut]
    next_cursor: str | None = None


@router.get("/campaigns", response=CampaignPage, summary="Campaigns, newest first")
def campaigns_list(request, filters: Query[CampaignFilters]):
    campaigns = selectors.campaigns_for(
        request.workspace, status=filters.status or "", channel=filters.channel or ""
    ).select_related("audience", "people_segment", "workspace")
    page = CursorPagination().paginate_queryset(
        campaigns, CursorPagination.Input(limit=filters.limit, cursor=filters.cursor)
    )
    return {"items": [_out(c) for c in page["items"]], "next_cursor": page["next_cursor"]}


@router.post("/campaigns", response={201: CampaignOut}, summary="Create a draft")
def campaigns_create(request, payload: CampaignIn):
    actor = Actor.from_request(request)
    audience = _audience(request, payload.audience, payload.channel)
    include = _segments(request, payload.include, "include")
    exclude = _segments(request, payload.exclude, "exclude")
    people = _people(request, payload.people)
    test_segment = None
    if payload.test_segment is not None:
        test_segment = _segments(request, [payload.test_segment], "test_segment")[0]
    with transaction.atomic():
        campaign = services.campaign_create(
            workspace=request.workspace, name=payload.name, channel=payload.channel,
            content=payload.content, actor=actor, audience=audience,
            include=include if include is not None else (),
            exclude=exclude if exclude is not None else (),
            everyone=payload.everyone, expires_at=payload.expires_at,
        )  # fmt: skip
        extra = {}
        if audience is not None and (include is not None or exclude is not None):
            # the lists given replace the audience's copied ones
            extra["include"] = include if include is not None else list(campaign.include.all())
            extra["exclude"] = exclude if exclude is not None else list(campaign.exclude.all())
        if people is not None:
            extra["people"] = people
        if (
            payload.send_at
            or test_segment
            or not payload.tracking
            or payload.transactional
            or payload.quiet_hours != "wait"
            or payload.in_recipient_time_zone
            or payload.variants
            or payload.ab_test
        ):
            extra.update(send_at=payload.send_at, test_segment=test_segment,
                         tracking=payload.tracking, transactional=payload.transactional,
                         quiet_hours=payload.quiet_hours,
                         in_recipient_time_zone=payload.in_recipient_time_zone)  # fmt: skip
            if payload.variants:
                extra["variants"] = [v.model_dump(exclude_unset=True) for v in payload.variants]
            if payload.ab_test:
                extra["ab_test"] = payload.ab_test.model_dump()
        if extra:
            campaign = services.campaign_update(campaign=campaign, actor=actor, **extra)
    return Status(201, _out(_campaign(request, campaign.pk)))


@router.get("/campaigns/{int:campaign_id}", response=CampaignOut, summary="One campaign")
def campaigns_get(request, campaign_id: int):
    return _out(_campaign(request, campaign_id))


@router.patch("/campaigns/{int:campaign_id}", response=CampaignOut,
              summary="Change a draft or scheduled campaign",
              openapi_extra=also_answers(409))  # fmt: skip
def campaigns_patch(request, campaign_id: int, payload: CampaignPatch):
    campaign = _campaign(request, campaign_id)
    given = payload.model_dump(exclude_unset=True)
    for flag in ("name", "everyone", "tracking", "content", "in_recipient_time_zone",
                 "transactional", "quiet_hours"):  # fmt: skip
        if flag in given and given[flag] is None:  # null: not a change
            del given[flag]
    changes = {}
    for key in ("name", "content", "everyone", "send_at", "expires_at", "tracking",
                "in_recipient_time_zone", "transactional", "quiet_hours"):  # fmt: skip
        if key in given:
            changes[key] = given[key]
    if "audience" in given:
        changes["audience"] = _audience(request, given["audience"], campaign.channel)
    for key in ("include", "exclude"):
        if key in given:
            changes[key] = _segments(request, given[key] or [], key)
    if "people" in given:
        changes["people"] = _people(request, given["people"] or [])
    if "variants" in given:
        changes["variants"] = [v.model_dump(exclude_unset=True) for v in payload.variants or []]
    if "ab_test" in given:
        changes["ab_test"] = payload.ab_test.model_dump() if payload.ab_test else None
    if "test_segment" in given:
        changes["test_segment"] = (
            _segments(request, [given["test_segment"]], "test_segment")[0]
            if given["test_segment"] is not None else None
        )  # fmt: skip
    try:
        services.campaign_update(campaign=campaign, actor=Actor.from_request(request), **changes)
    except services.CampaignConflict as e:
        _conflict(e)
    return _out(_campaign(request, campaign_id))


@router.delete("/campaigns/{int:campaign_id}", response={204: None},
               summary="Delete a draft", openapi_extra=also_answers(409))  # fmt: skip
def campaigns_delete(request, campaign_id: int):
    campaign = _campaign(request, campaign_id)
    try:
        services.campaign_delete(campaign=campaign, actor=Actor.from_request(request))
    except services.CampaignConflict as e:
        _conflict(e)
    return Status(204, None)


@router.get("/campaigns/{int:campaign_id}/estimate", response=CampaignEstimateOut,
            summary="Who a launch now would reach")  # fmt: skip
def campaigns_estimate(request, campaign_id: int):
    campaign = _campaign(request, campaign_id)
    try:
        return selectors.campaign_estimate(campaign)
    except NoRecipients as e:
        _invalid("include", str(e))


@router.post("/campaigns/{int:campaign_id}/test", response=CampaignTestOut,
             summary="Send now to a test segment or chosen people")  # fmt: skip
def campaigns_test(request, campaign_id: int, payload: CampaignTestIn):
    campaign = _campaign(request, campaign_id)
    if (payload.segment is None) == (payload.people is None):
        _invalid("segment", "Give either a segment or people to send the test to.")
    segment = people = None
    if payload.segment is not None:
        segment = _segments(request, [payload.segment], "segment")[0]
    else:
        people = list(_people(request, payload.people).values_list("pk", flat=True))
    try:
        answer = services.campaign_test_send(campaign=campaign, actor=Actor.from_request(request),
                                             segment=segment, people=people,
                                             variant=payload.variant)  # fmt: skip
    except services.TestSendRefused as e:
        _invalid("channel", str(e))
    return {
        "sent": answer["sent"],
        "skipped": [{"person": p, "reason": r} for p, r in answer["skipped"]],
        "failed": [{"person": p, "reason": r} for p, r in answer["failed"]],
    }


@router.post("/campaigns/{int:campaign_id}/launch", response={202: CampaignOut},
             summary="Send now, or schedule", openapi_extra=also_answers(409))  # fmt: skip
def campaigns_launch(request, campaign_id: int, payload: CampaignLaunchIn | None = None):
    campaign = _campaign(request, campaign_id)
    send_at = payload.send_at if payload else None
    if send_at is None:
        send_at = campaign.send_at
    try:
        services.campaign_launch(campaign=campaign, actor=Actor.from_request(request),
                                 send_at=send_at)  # fmt: skip
    except services.CampaignConflict as e:
        _conflict(e)
    return Status(202, _out(_campaign(request, campaign_id)))


def _lifecycle(name: str, service):
    @router.post(f"/campaigns/{{int:campaign_id}}/{name}", response=CampaignOut,
                 summary=f"{name.capitalize()} the campaign", operation_id=f"campaigns_{name}",
                 openapi_extra=also_answers(409))  # fmt: skip
    def view(request, campaign_id: int):
        campaign = _campaign(request, campaign_id)
        try:
            service(campaign=campaign, actor=Actor.from_request(request))
        except services.CampaignConflict as e:
            _conflict(e)
        return _out(_campaign(request, campaign_id))

    view.__name__ = f"campaigns_{name}"
    return view


@router.post("/campaigns/{int:campaign_id}/winner", response=CampaignOut,
             summary="End the A/B test phase: the winner is sent to the rest",
             openapi_extra=also_answers(409))  # fmt: skip
def campaigns_winner(request, campaign_id: int, payload: CampaignWinnerIn | None = None):
    campaign = _campaign(request, campaign_id)
    try:
        services.campaign_choose_winner(campaign=campaign, actor=Actor.from_request(request),
                                        variant=payload.variant if payload else None)  # fmt: skip
    except services.CampaignConflict as e:
        _conflict(e)
    return _out(_campaign(request, campaign_id))


campaigns_pause = _lifecycle("pause", services.campaign_pause)
campaigns_resume = _lifecycle("resume", services.campaign_resume)
campaigns_cancel = _lifecycle("cancel", services.campaign_cancel)
campaigns_end = _lifecycle("end", services.banner_end)  # a live banner taken down


@router.get("/campaigns/{int:campaign_id}/deliveries", response=list[DeliveryOut],
            summary="The per-recipient log")  # fmt: skip
@paginate(CursorPagination, ordering="id")
def campaigns_deliveries(request, campaign_id: int, status: DeliveryStatusName | None = None,
                         reason: str | None = None, q: str | None = None):  # fmt: skip
    campaign = _campaign(request, campaign_id)
    return selectors.deliveries_for(campaign, status=status or "", reason=reason or "",
                                    search=q or "")  # fmt: skip


@router.get("/people/{external_id}/messages", response=list[PersonMessageOut],
            tags=["People"], summary="What the person was sent")  # fmt: skip
@paginate(CursorPagination, ordering=("-created_at", "-id"))
def person_messages(request, external_id: str):
    person = get_person_or_404(workspace=request.workspace, external_id=external_id)
    return selectors.person_messages(person)


# --- banners: the workspace's allowed origins (the public API's CORS) ------------------------


class BannerSettings(Schema):
    allowed_origins: list[str] = Field(description="Web origins (https://shop.example.com) "
                                       "whose pages may call /public/v1/banners.")  # fmt: skip


class BannerSettingsIn(InputSchema):
    allowed_origins: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        max_length=100
    )


@router.get("/banners/settings", response=BannerSettings, tags=["Banners"],
            summary="The origins allowed to call the public banner API")  # fmt: skip
def banner_settings_get(request):
    return {"allowed_origins": request.workspace.banner_allowed_origins or []}


@router.put("/banners/settings", response=BannerSettings, tags=["Banners"],
            summary="Set the origins allowed to call the public banner API")  # fmt: skip
def banner_settings_put(request, payload: BannerSettingsIn):
    from accounts.forms import clean_origins
    from accounts.models import Workspace
    from accounts.services import workspace_update

    try:
        origins = clean_origins(payload.allowed_origins)
    except ValueError as e:
        _invalid("allowed_origins", str(e))
    workspace = Workspace.objects.get(pk=request.workspace.pk)
    workspace_update(workspace=workspace, name=workspace.name, time_zone=workspace.time_zone,
                     banner_allowed_origins=origins, actor=Actor.from_request(request))  # fmt: skip
    return {"allowed_origins": origins}

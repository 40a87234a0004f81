"""Segments of the HTTP API (shared/API.md, exactly)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from django.http import Http404
from django.utils import timezone
from ninja import Field, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.responses import Status
from pydantic import WithJsonSchema

from accounts.audit import Actor
from config.api import CursorPagination, InputSchema, also_answers, component_ref, error_response
from people.schemas import PeopleRef, PersonOut, with_person_related
from people.selectors import get_person_or_404, person_list, person_ref
from segments import selectors, services
from segments.rules import RuleError, parse_rules
from segments.services import MAX_REFRESH_MINUTES, MIN_REFRESH_MINUTES

router = Router(tags=["Segments"])


class SegmentOut(Schema):
    id: int
    name: str
    kind: str
    rules: dict[str, Any] | None
    refresh_every_minutes: int | None
    predefined: bool
    people_count: int
    computed_at: datetime | None
    created_at: datetime
    refresh_status: str
    refresh_error: str

    @staticmethod
    def resolve_predefined(obj):
        return bool(obj.predefined)


# A rule tree: checked by segments.rules.parse_rules (a 422 with the path of the bad
# node), documented as the RuleNode schema (segments.rules.openapi).
RuleTree = Annotated[dict[str, Any], WithJsonSchema(component_ref("RuleNode"))]
SegmentName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class SegmentIn(InputSchema):
    name: SegmentName
    kind: Literal["snapshot", "realtime", "static", "query", "everyone"]
    rules: RuleTree | None = Field(None, description="Required for snapshot, realtime, query.")
    refresh_every_minutes: int | None = Field(
        None, ge=MIN_REFRESH_MINUTES, le=MAX_REFRESH_MINUTES, description="Query segments only."
    )


class SegmentPatch(InputSchema):
    name: SegmentName | None = None
    rules: RuleTree | None = None
    refresh_every_minutes: int | None = Field(None, ge=MIN_REFRESH_MINUTES, le=MAX_REFRESH_MINUTES)


class PreviewIn(InputSchema):
    rules: RuleTree


class PreviewOut(Schema):
    count: int
    sample: list[PersonOut]


class CountOut(Schema):
    count: int
    computed_at: datetime | None


class ContainsOut(Schema):
    member: bool


class ToAudienceIn(InputSchema):
    audience: str = Field(
        ...,
        min_length=1,
        max_length=200,
        pattern=r"\S",
        description="Audience name (created when adding).",
    )
    action: Literal["add", "remove"]


class Changed(Schema):
    changed: int


class MembersChanged(Schema):
    changed: int
    unknown: list[str]


def _rule_error(request, e: RuleError, prefix=("body", "rules")):
    loc = (
        [*prefix, *e.loc]
        if e.path not in {"name", "kind", "refresh_every_minutes"}
        else ["body", e.path]
    )
    return error_response(
        request, 422, f"{e.path or 'rules'}: {e.message}", [{"loc": loc, "msg": e.message}]
    )


@router.get("/segments", response=list[SegmentOut], summary="List segments")
@paginate(CursorPagination)
def segments_list(request, q: str | None = None, kind: str | None = None):
    return selectors.segment_list(workspace=request.workspace, q=q, kind=kind)


@router.post(
    "/segments",
    response={201: SegmentOut},
    summary="Create a segment",
    openapi_extra=also_answers(409),
)
def segments_create(request, payload: SegmentIn):
    try:
        segment = services.segment_create(
            workspace=request.workspace,
            name=payload.name,
            kind=payload.kind,
            rules=payload.rules,
            refresh_every_minutes=payload.refresh_every_minutes,
            actor=Actor.from_request(request),
        )
    except RuleError as e:
        return _rule_error(request, e)
    except services.SegmentConflict as e:
        raise HttpError(409, str(e)) from None
    return Status(201, segment)


@router.post("/segments/preview", response=PreviewOut, summary="Count and sample a rule tree")
def segments_preview(request, payload: PreviewIn):
    try:
        parse_rules(payload.rules, workspace=request.workspace)
        people = selectors.rules_people(
            workspace=request.workspace, rules=payload.rules, now=timezone.now()
        )
        count = people.count()
        sample = list(with_person_related(people.order_by("-id"))[:20])
    except RuleError as e:
        return _rule_error(request, e)
    return {"count": count, "sample": sample}


@router.get("/segments/{int:segment_id}", response=SegmentOut, summary="One segment")
def segments_get(request, segment_id: int):
    return selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)


@router.patch(
    "/segments/{int:segment_id}",
    response=SegmentOut,
    summary="Change a segment",
    openapi_extra=also_answers(409),
)
def segments_patch(request, segment_id: int, payload: SegmentPatch):
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    try:
        return services.segment_update(
            segment=segment,
            name=payload.name,
            rules=payload.rules,
            refresh_every_minutes=payload.refresh_every_minutes,
            actor=Actor.from_request(request),
        )
    except RuleError as e:
        return _rule_error(request, e)
    except services.SegmentConflict as e:
        raise HttpError(409, str(e)) from None


@router.delete(
    "/segments/{int:segment_id}",
    response={204: None},
    summary="Delete a segment",
    openapi_extra=also_answers(409),
)
def segments_delete(request, segment_id: int):
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    try:
        services.segment_delete(segment=segment, actor=Actor.from_request(request))
    except services.SegmentConflict as e:
        raise HttpError(409, str(e)) from None
    return Status(204, None)


@router.get("/segments/{int:segment_id}/count", response=CountOut, summary="How many people")
def segments_count(request, segment_id: int):
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    if not segment.stores_members:
        try:
            services.segment_count(segment=segment)
        except RuleError as e:
            return _rule_error(request, e)
    return {"count": segment.people_count, "computed_at": segment.computed_at}


@router.get("/segments/{int:segment_id}/members", response=list[PersonOut], summary="People in it")
@paginate(CursorPagination)
def segments_members(request, segment_id: int):
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    try:
        people = selectors.segment_people(segment=segment, now=timezone.now())
    except RuleError as e:  # stored rules that cannot be compiled (any more)
        raise HttpError(422, f"{e.path or 'rules'}: {e.message}") from None
    return with_person_related(people)


@router.get(
    "/segments/{int:segment_id}/contains/{external_id}",
    response=ContainsOut,
    summary="Is this person in it?",
)
def segments_contains(request, segment_id: int, external_id: str):
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    person = get_person_or_404(workspace=request.workspace, external_id=external_id)
    try:
        member = selectors.segment_contains(segment=segment, person=person, now=timezone.now())
    except RuleError as e:
        return _rule_error(request, e)
    return {"member": member}


class PersonSegmentOut(Schema):
    id: int
    name: str
    kind: str
    entered_at: datetime | None


class PersonSegmentsOut(Schema):
    items: list[PersonSegmentOut]


@router.get(
    "/people/{external_id}/segments",
    response=PersonSegmentsOut,
    summary="The segments a person is in now",
    description="Read from stored membership (real-time, query, static), everyone and the "
    "built-in segments: for experiments and feature flags.",
)
def people_segments(request, external_id: str):
    person = person_ref(workspace=request.workspace, external_id=external_id)
    if person is None:
        raise Http404(f"No person with external_id {external_id!r}.")
    found = selectors.person_segments(
        workspace=request.workspace, person=person, now=timezone.now()
    )
    return {
        "items": [{"id": s.pk, "name": s.name, "kind": s.kind, "entered_at": at} for s, at in found]
    }


def _static_change(request, segment_id, payload, add: bool):
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    wanted = list(dict.fromkeys(payload.people))
    people = person_list(workspace=request.workspace).filter(external_id__in=wanted)
    known = set(people.values_list("external_id", flat=True))
    try:
        changed = services.static_members_change(
            segment=segment, people=people, add=add, actor=Actor.from_request(request)
        )
    except services.SegmentConflict as e:
        raise HttpError(409, str(e)) from None
    return {"changed": changed, "unknown": [e for e in wanted if e not in known]}


@router.post(
    "/segments/{int:segment_id}/members",
    response=MembersChanged,
    summary="Add to a static segment",
    openapi_extra=also_answers(409),
)
def segments_members_add(request, segment_id: int, payload: PeopleRef):
    return _static_change(request, segment_id, payload, add=True)


@router.delete(
    "/segments/{int:segment_id}/members",
    response=MembersChanged,
    summary="Remove from a static segment",
    openapi_extra=also_answers(409),
)
def segments_members_remove(request, segment_id: int, payload: PeopleRef):
    return _static_change(request, segment_id, payload, add=False)


@router.post(
    "/segments/{int:segment_id}/to-audience", response=Changed, summary="Into a target audience"
)
def segments_to_audience(request, segment_id: int, payload: ToAudienceIn):
    segment = selectors.get_segment_or_404(workspace=request.workspace, pk=segment_id)
    try:
        changed = services.segment_to_audience(
            segment=segment,
            audience_name=payload.audience,
            action=payload.action,
            actor=Actor.from_request(request),
        )
    except RuleError as e:
        return _rule_error(request, e, prefix=("body",))
    except ValueError as e:
        raise HttpError(422, str(e)) from None
    return {"changed": changed}

"""People, Events, Tags and Do Not Contact of the HTTP API (shared/API.md, exactly)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from django.utils import timezone
from ninja import Field, Path, Query, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.responses import Status

from accounts.audit import Actor
from config.api import CursorPagination, InputSchema, also_answers, error_response
from people import selectors
from people.erasure import erase_person
from people.models import ContactChannel, DncSource, TagSource
from people.normalize import InvalidAddress, normalize_address
from people.schemas import PeopleRef, PersonOut, PushTokenSchema, with_person_related
from people.services import dnc as dnc_services
from people.services import events as event_services
from people.services import people as person_services
from people.services import tags as tag_services
from segments.selectors import get_segment_or_404, segment_people

router = Router()

# --- Schemas ----------------------------------------------------------------------------


class PersonIn(InputSchema):
    """Every field is optional on update: fields not sent are kept."""

    email: str | None = None
    phone: str | None = Field(None, description="Any format with country code; stored E.164.")
    first_name: str | None = None
    last_name: str | None = None
    gender: str | None = None
    country: str | None = None
    city: str | None = None
    address: str | None = None
    company: str | None = None
    time_zone: str | None = Field(
        None,
        description="IANA name such as Europe/Paris (any letter case; stored canonically); "
        "empty or null: the workspace's time zone. An unknown name is a 422.",
    )
    attributes: dict[str, Any] | None = Field(
        None, description="Custom attributes; null clears one. Types are enforced once known."
    )
    push_tokens: list[PushTokenSchema] | None = Field(
        None, description="Replaces the person's push tokens."
    )


class PersonBatchItem(PersonIn):
    external_id: str


class BatchIn(InputSchema):
    people: list[dict[str, Any]] = Field(
        ..., description="Up to 1000 people (PersonIn plus external_id).", max_length=1000
    )


class BatchError(Schema):
    index: int
    msg: str


class BatchOut(Schema):
    created: int
    updated: int
    errors: list[BatchError]


class PeopleFilters(Schema):
    q: str | None = Field(None, description="Name, email, phone or external id.")
    tag: str | None = None
    audience: str | None = None
    segment: int | None = None


def _person_out(workspace, external_id):
    return with_person_related(selectors.person_list(workspace=workspace)).get(
        external_id=external_id
    )


def _input_error(request, e: person_services.PersonInputError, loc_prefix=("body",)):
    return error_response(
        request,
        422,
        f"{e.field}: {e.message}",
        [{"loc": [*loc_prefix, *e.field.split(".")], "msg": e.message}],
    )


# --- People -----------------------------------------------------------------------------


# /people/batch is declared before /people/{external_id} so that it is matched first.
@router.post(
    "/people/batch", response=BatchOut, tags=["People"], summary="Upsert up to 1000 people"
)
def people_batch(request, payload: BatchIn):
    result = person_services.person_upsert_batch(
        workspace=request.workspace, items=payload.people, actor=Actor.from_request(request)
    )
    return {
        "created": result.created,
        "updated": result.updated,
        "errors": [{"index": e["index"], "msg": _error_msg(e)} for e in result.errors],
    }


@router.put(
    "/people/{external_id}",
    response={200: PersonOut, 201: PersonOut},
    tags=["People"],
    summary="Create or update one person",
)
def person_put(request, external_id: str, payload: PersonIn):
    external_id = external_id.strip()
    if not 1 <= len(external_id) <= 255:
        raise HttpError(422, "external_id must be 1-255 characters.")
    try:
        _person, created = person_services.person_upsert(
            workspace=request.workspace,
            external_id=external_id,
            data=payload.model_dump(exclude_unset=True),
            actor=Actor.from_request(request),
        )
    except person_services.PersonInputError as e:
        return _input_error(request, e)
    return Status(201 if created else 200, _person_out(request.workspace, external_id))


def _error_msg(error: dict) -> str:
    return f"{error['field']}: {error['msg']}" if error.get("field") else error["msg"]


@router.get("/people/{external_id}", response=PersonOut, tags=["People"], summary="One person")
def person_get(request, external_id: str):
    selectors.get_person_or_404(workspace=request.workspace, external_id=external_id)
    return _person_out(request.workspace, external_id)


@router.delete(
    "/people/{external_id}", response={204: None}, tags=["People"], summary="Erase a person"
)
def person_delete(request, external_id: str):
    person = selectors.get_person_or_404(workspace=request.workspace, external_id=external_id)
    erase_person(person=person, actor=Actor.from_request(request))
    return Status(204, None)


@router.get(
    "/people",
    response=list[PersonOut],
    tags=["People"],
    summary="List people",
    openapi_extra=also_answers(404),  # ?segment= names no segment of the workspace
)
@paginate(CursorPagination)
def people_list(request, filters: Query[PeopleFilters]):
    people = selectors.person_list(
        workspace=request.workspace, q=filters.q, tags=[filters.tag] if filters.tag else None
    )
    if filters.audience is not None:
        people = people.filter(
            audience_memberships__audience__name__iexact=filters.audience,
            audience_memberships__workspace=request.workspace,
        )
    if filters.segment is not None:
        segment = get_segment_or_404(workspace=request.workspace, pk=filters.segment)
        people = people.filter(
            pk__in=segment_people(segment=segment, now=timezone.now()).values("pk")
        )
    return with_person_related(people)


# --- Events -----------------------------------------------------------------------------


class EventsIn(InputSchema):
    events: list[dict[str, Any]] = Field(
        ...,
        max_length=1000,
        description='Up to 1000 of {"person": external_id, "name", "occurred_at", "properties"}.',
    )


class EventsAccepted(Schema):
    accepted: int
    errors: list[BatchError]


class EventOut(Schema):
    id: int
    name: str
    occurred_at: datetime
    properties: dict[str, Any]


class EventFilters(Schema):
    name: str | None = None


@router.post("/events", response={202: EventsAccepted}, tags=["Events"], summary="Ingest events")
def events_ingest(request, payload: EventsIn):
    result = event_services.event_ingest_batch(
        workspace=request.workspace, items=payload.events, actor=Actor.from_request(request)
    )
    return Status(202, {"accepted": result.accepted, "errors": result.errors})


@router.get(
    "/people/{external_id}/events",
    response=list[EventOut],
    tags=["Events"],
    summary="A person's events",
)
@paginate(CursorPagination, ordering=("-occurred_at", "-id"))
def person_events(request, external_id: str, filters: Query[EventFilters]):
    person = selectors.get_person_or_404(workspace=request.workspace, external_id=external_id)
    return selectors.event_list(workspace=request.workspace, person=person, name=filters.name)


# --- Tags -------------------------------------------------------------------------------


class TagOut(Schema):
    name: str
    people_count: int


class TagList(Schema):
    items: list[TagOut]


class TagIn(InputSchema):
    name: str = Field(..., min_length=1, max_length=100, pattern=r"\S")


# A tag's name in a path: what a tag name may be (tag_services.tag_create).
TagName = Annotated[str, Path(..., min_length=1, max_length=100, pattern=r"\S")]


class TagAssigned(Schema):
    assigned: int
    unknown: list[str]


class TagRemoved(Schema):
    removed: int
    unknown: list[str]


@router.get("/tags", response=TagList, tags=["Tags"], summary="Every tag with its number of people")
def tags_list(request):
    return {"items": list(selectors.tag_list(workspace=request.workspace))}


@router.post(
    "/tags",
    response={201: TagOut},
    tags=["Tags"],
    summary="Create a tag",
    openapi_extra=also_answers(409),
)
def tags_create(request, payload: TagIn):
    try:
        tag = tag_services.tag_create(
            workspace=request.workspace, name=payload.name, actor=Actor.from_request(request)
        )
    except tag_services.TagExists as e:
        raise HttpError(409, str(e)) from None
    except ValueError as e:
        raise HttpError(422, str(e)) from None
    return Status(201, {"name": tag.name, "people_count": 0})


@router.delete("/tags/{name}", response={204: None}, tags=["Tags"], summary="Delete a tag")
def tags_delete(request, name: TagName):
    tag_services.tag_delete(
        tag=selectors.get_tag_or_404(workspace=request.workspace, name=name),
        actor=Actor.from_request(request),
    )
    return Status(204, None)


@router.post("/tags/{name}/people", response=TagAssigned, tags=["Tags"], summary="Tag people")
def tags_assign(request, name: TagName, payload: PeopleRef):
    try:
        changed, unknown = tag_services.tag_people_by_external_ids(
            workspace=request.workspace,
            name=name,
            external_ids=payload.people,
            source=TagSource.API,
            actor=Actor.from_request(request),
        )
    except ValueError as e:
        raise HttpError(422, str(e)) from None
    return {"assigned": changed, "unknown": unknown}


@router.delete("/tags/{name}/people", response=TagRemoved, tags=["Tags"], summary="Untag people")
def tags_unassign(request, name: TagName, payload: PeopleRef):
    selectors.get_tag_or_404(workspace=request.workspace, name=name)
    changed, unknown = tag_services.tag_people_by_external_ids(
        workspace=request.workspace,
        name=name,
        external_ids=payload.people,
        remove=True,
        actor=Actor.from_request(request),
    )
    return {"removed": changed, "unknown": unknown}


# --- Do Not Contact ---------------------------------------------------------------------


class DncIn(InputSchema):
    channel: Literal["email", "sms", "push"]
    address: str = Field(..., min_length=1, max_length=512)
    reason: str = Field("", max_length=255)
    source: Literal["manual", "import", "flow", "unsubscribe", "bounce", "api"] = "api"


class DncOut(Schema):
    channel: str
    address: str
    reason: str
    source: str
    created_at: datetime


class DncFilters(Schema):
    channel: Literal["email", "sms", "push"] | None = None
    q: str | None = None


class DncCheckIn(Schema):
    channel: Literal["email", "sms", "push"]
    address: str


class Blocked(Schema):
    blocked: bool


@router.get(
    "/dnc", response=list[DncOut], tags=["Do Not Contact"], summary="List or search entries"
)
@paginate(CursorPagination)
def dnc_list(request, filters: Query[DncFilters]):
    return selectors.dnc_list(workspace=request.workspace, channel=filters.channel, q=filters.q)


@router.post(
    "/dnc", response={200: DncOut, 201: DncOut}, tags=["Do Not Contact"], summary="Add one address"
)
def dnc_add(request, payload: DncIn):
    try:
        entry, created = dnc_services.dnc_add(
            workspace=request.workspace,
            channel=payload.channel,
            address=payload.address,
            reason=payload.reason,
            source=payload.source or DncSource.API,
            actor=Actor.from_request(request),
        )
    except InvalidAddress as e:
        return error_response(request, 422, str(e), [{"loc": ["body", "address"], "msg": str(e)}])
    return Status(201 if created else 200, entry)


@router.get(
    "/dnc/check", response=Blocked, tags=["Do Not Contact"], summary="Is an address blocked?"
)
def dnc_check(request, params: Query[DncCheckIn]):
    try:
        normalize_address(params.channel, params.address)
    except InvalidAddress as e:
        return error_response(request, 422, str(e), [{"loc": ["query", "address"], "msg": str(e)}])
    blocked = selectors.dnc_is_blocked(
        workspace=request.workspace, channel=params.channel, address=params.address
    )
    return {"blocked": blocked}


@router.delete(
    "/dnc/{channel}/{address}",
    response={204: None},
    tags=["Do Not Contact"],
    summary="Remove an address",
)
def dnc_delete(request, channel: str, address: str):
    if channel not in ContactChannel.values:
        raise HttpError(404, f"“{channel}” is not a channel (email, sms or push).")
    try:
        normalized = normalize_address(channel, address)
    except InvalidAddress:
        raise HttpError(404, "That address is not on the list.") from None
    entry = (
        selectors.dnc_list(workspace=request.workspace, channel=channel)
        .filter(address=normalized)
        .first()
    )
    if entry is None:
        raise HttpError(404, "That address is not on the list.")
    dnc_services.dnc_remove(entry=entry, actor=Actor.from_request(request))
    return Status(204, None)

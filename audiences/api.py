"""Target audiences of the HTTP API (shared/API.md, exactly). Imports: audiences/import_api.py."""

from datetime import datetime
from typing import Literal

from ninja import Field, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.responses import Status
from pydantic import StrictInt

from accounts.audit import Actor
from audiences import selectors, services
from audiences.models import MemberSource
from config.api import CursorPagination, InputSchema, also_answers
from people.schemas import PersonOut, with_person_related

router = Router(tags=["Target audiences"])


class AudienceOut(Schema):
    id: int
    name: str
    people_count: int
    created_at: datetime


class AudienceIn(InputSchema):
    name: str = Field(..., min_length=1, max_length=200, pattern=r"\S")


class MembersIn(InputSchema):
    people: list[str | StrictInt] = Field(
        ..., max_length=10000, description="External ids, ids, emails or phones (identifier)."
    )
    identifier: Literal["external_id", "id", "email", "phone"] = "external_id"


class MembersChanged(Schema):
    changed: int
    unknown: list[str]


@router.get("/audiences", response=list[AudienceOut], summary="List audiences")
@paginate(CursorPagination)
def audiences_list(request, q: str | None = None):
    return selectors.audience_list(workspace=request.workspace, q=q)


@router.post(
    "/audiences",
    response={201: AudienceOut},
    summary="Create an audience",
    openapi_extra=also_answers(409),
)
def audiences_create(request, payload: AudienceIn):
    try:
        audience = services.audience_create(
            workspace=request.workspace, name=payload.name, actor=Actor.from_request(request)
        )
    except services.AudienceExists as e:
        raise HttpError(409, str(e)) from None
    except ValueError as e:
        raise HttpError(422, str(e)) from None
    return Status(201, audience)


@router.get("/audiences/{int:audience_id}", response=AudienceOut, summary="One audience")
def audiences_get(request, audience_id: int):
    return selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)


@router.delete("/audiences/{int:audience_id}", response={204: None}, summary="Delete an audience")
def audiences_delete(request, audience_id: int):
    audience = selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)
    services.audience_delete(audience=audience, actor=Actor.from_request(request))
    return Status(204, None)


@router.get(
    "/audiences/{int:audience_id}/members", response=list[PersonOut], summary="People in it"
)
@paginate(CursorPagination, ordering=("-member_person_id",))
def audiences_members(request, audience_id: int):
    audience = selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)
    return with_person_related(selectors.audience_members(audience=audience))


@router.post("/audiences/{int:audience_id}/members", response=MembersChanged, summary="Add people")
def audiences_members_add(request, audience_id: int, payload: MembersIn):
    audience = selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)
    people, unknown = services.resolve_identifiers(
        workspace=request.workspace, identifier=payload.identifier, values=payload.people
    )
    changed = services.audience_add_people(
        audience=audience, people=people, source=MemberSource.API, actor=Actor.from_request(request)
    )
    return {"changed": changed, "unknown": unknown}


@router.delete(
    "/audiences/{int:audience_id}/members", response=MembersChanged, summary="Remove people"
)
def audiences_members_remove(request, audience_id: int, payload: MembersIn):
    audience = selectors.get_audience_or_404(workspace=request.workspace, pk=audience_id)
    people, unknown = services.resolve_identifiers(
        workspace=request.workspace, identifier=payload.identifier, values=payload.people
    )
    return {
        "changed": services.audience_remove_people(
            audience=audience, people=people, actor=Actor.from_request(request)
        ),
        "unknown": unknown,
    }

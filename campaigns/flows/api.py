"""Flows over the HTTP API (shared/API.md "Flows"): drafts validated naming the bad step,
publish (a new version), the lifecycle, people added now, and the runs with their log."""

from datetime import datetime
from typing import Annotated, Literal

from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.responses import Status

from accounts.audit import Actor
from campaigns.flows import services
from campaigns.flows.entry import source_people
from campaigns.flows.selectors import flow_counts
from campaigns.models import Flow, FlowRun
from config.api import CursorPagination, InputSchema, also_answers

router = Router(tags=["Flows"])

FlowStatusName = Literal["draft", "live", "paused", "archived"]
RunStatusName = Literal["active", "waiting", "done", "exited", "failed"]
ReentryName = Literal["never", "after_exit", "always"]
FlowName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class StepCount(Schema):
    step: str
    type: str
    at: int = Field(description="People at this step now (active or waiting).")
    through: int = Field(description="Runs that went through it.")


class FlowOut(Schema):
    id: int
    name: str
    status: FlowStatusName
    entry: dict
    steps: list[dict]
    reentry: ReentryName
    version: int = Field(description="The newest published version (0: never published).")
    counts: list[StepCount] = Field(description="Per step of the newest version.")
    runs: dict[str, int] = Field(description="Runs by status.")
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None


class FlowIn(InputSchema):
    name: FlowName
    entry: dict = {}
    steps: list[dict] = Field([], max_length=200)
    reentry: ReentryName = "never"


class FlowPatch(InputSchema):
    name: FlowName | None = None
    entry: dict | None = None
    steps: list[dict] | None = Field(None, max_length=200)
    reentry: ReentryName | None = None


class FlowPeopleIn(InputSchema):
    people: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        None, max_length=100_000
    )
    segment: int | None = None
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = None
    audience: int | None = None
    companies: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None


class FlowPeopleOut(Schema):
    started: int = Field(description="Runs started (the re-entry rule may keep some out).")


class RunLogOut(Schema):
    step: str
    type: str
    outcome: str
    at: datetime


class RunOut(Schema):
    id: int
    person: str
    version: int
    step: str
    status: RunStatusName
    error: str
    wake_at: datetime
    entered_at: datetime
    updated_at: datetime
    log: list[RunLogOut]

    @staticmethod
    def resolve_person(obj):
        return obj.person.external_id

    @staticmethod
    def resolve_version(obj):
        return obj.version.number

    @staticmethod
    def resolve_log(obj):
        return list(obj.log.all())


class FlowFilters(Schema):
    status: FlowStatusName | None = None
    limit: int = Field(50, ge=1, le=1000)
    cursor: str | None = None


def _flow(request, flow_id: int) -> Flow:
    try:
        return Flow.objects.for_workspace(request.workspace).get(pk=flow_id)
    except Flow.DoesNotExist:
        raise Http404("No such flow in this workspace.") from None


def _out(flow: Flow) -> dict:
    runs = dict(
        FlowRun.objects.filter(flow=flow).values("status").annotate(n=Count("id"))
        .values_list("status", "n")
    )  # fmt: skip
    return {
        "id": flow.pk, "name": flow.name, "status": flow.status, "entry": flow.entry,
        "steps": flow.steps, "reentry": flow.reentry, "version": flow.version,
        "counts": flow_counts(flow), "runs": runs, "created_at": flow.created_at,
        "updated_at": flow.updated_at, "published_at": flow.published_at,
    }  # fmt: skip


def _conflict(e: Exception):
    raise HttpError(409, str(e)) from None


class FlowPage(Schema):
    items: list[FlowOut]
    next_cursor: str | None = None


@router.get("/flows", response=FlowPage, summary="Flows, newest first")
def flows_list(request, filters: Query[FlowFilters]):
    flows = Flow.objects.for_workspace(request.workspace)
    if filters.status:
        flows = flows.filter(status=filters.status)
    page = CursorPagination().paginate_queryset(
        flows, CursorPagination.Input(limit=filters.limit, cursor=filters.cursor)
    )
    return {"items": [_out(f) for f in page["items"]], "next_cursor": page["next_cursor"]}


@router.post("/flows", response={201: FlowOut}, summary="Create a draft")
def flows_create(request, payload: FlowIn):
    flow = services.flow_create(
        workspace=request.workspace, name=payload.name, entry=payload.entry,
        steps=payload.steps, reentry=payload.reentry, actor=Actor.from_request(request),
    )  # fmt: skip
    return Status(201, _out(flow))


@router.get("/flows/{int:flow_id}", response=FlowOut, summary="One flow, with per-step counts")
def flows_get(request, flow_id: int):
    return _out(_flow(request, flow_id))


@router.patch("/flows/{int:flow_id}", response=FlowOut, summary="Change the draft",
              openapi_extra=also_answers(409))  # fmt: skip
def flows_patch(request, flow_id: int, payload: FlowPatch):
    flow = _flow(request, flow_id)
    given = {k: v for k, v in payload.model_dump(exclude_unset=True).items() if v is not None}
    try:
        flow = services.flow_update(flow=flow, actor=Actor.from_request(request), **given)
    except services.FlowConflict as e:
        _conflict(e)
    return _out(flow)


def _lifecycle(name: str, service):
    @router.post(f"/flows/{{int:flow_id}}/{name}", response=FlowOut,
                 summary=f"{name.capitalize()} the flow", operation_id=f"flows_{name}",
                 openapi_extra=also_answers(409))  # fmt: skip
    def view(request, flow_id: int):
        flow = _flow(request, flow_id)
        try:
            service(flow=flow, actor=Actor.from_request(request))
        except services.FlowConflict as e:
            _conflict(e)
        return _out(_flow(request, flow_id))

    view.__name__ = f"flows_{name}"
    return view


flows_publish = _lifecycle("publish", services.flow_publish)
flows_pause = _lifecycle("pause", services.flow_pause)
flows_resume = _lifecycle("resume", services.flow_resume)
flows_archive = _lifecycle("archive", services.flow_archive)


@router.post("/flows/{int:flow_id}/people", response=FlowPeopleOut,
             summary="Let people in now", openapi_extra=also_answers(409))  # fmt: skip
def flows_people(request, flow_id: int, payload: FlowPeopleIn):
    from audiences.models import TargetAudience
    from segments.models import Segment

    flow = _flow(request, flow_id)
    given = {k: v for k, v in payload.model_dump().items() if v is not None}
    if len(given) != 1:
        raise ValidationError({"people": "Give one of people, segment, tags, audience or "
                               "companies."})  # fmt: skip
    key, value = next(iter(given.items()))
    workspace = request.workspace
    if key == "segment" and not Segment.objects.for_workspace(workspace).filter(pk=value).exists():
        raise ValidationError({"segment": "No such segment in this workspace."})
    if key == "audience" and not TargetAudience.objects.for_workspace(workspace).filter(
            pk=value).exists():  # fmt: skip
        raise ValidationError({"audience": "No such target audience in this workspace."})
    people = source_people(workspace.pk, {key: value})
    if key == "people":
        known = set(people.values_list("external_id", flat=True))
        unknown = [e for e in value if e not in known]
        if unknown:
            shown = ", ".join(repr(e) for e in unknown[:10])
            raise ValidationError({"people": f"No person with external_id {shown}."})
    try:
        started = services.flow_add_people(flow=flow, people=people, source="api",
                                           actor=Actor.from_request(request))  # fmt: skip
    except services.FlowConflict as e:
        _conflict(e)
    return {"started": started}


@router.get("/flows/{int:flow_id}/runs", response=list[RunOut], summary="The runs and their log")
@paginate(CursorPagination, ordering="-id")
def flows_runs(request, flow_id: int, person: str | None = None,
               status: RunStatusName | None = None):  # fmt: skip
    flow = _flow(request, flow_id)
    runs = FlowRun.objects.filter(flow=flow).select_related("person", "version").prefetch_related(
        "log")  # fmt: skip
    if person:
        runs = runs.filter(Q(person__external_id=person) | Q(person__email__iexact=person))
    if status:
        runs = runs.filter(status=status)
    return runs

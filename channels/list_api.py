"""Channel segment lists, channel audiences, segment sources and their jobs in the HTTP
API (shared/API.md "Channel audiences", exactly)."""

from datetime import datetime
from typing import Annotated, Literal

from django.conf import settings
from django.utils import timezone
from ninja import Field, File, Form, Router, Schema
from ninja.errors import HttpError
from ninja.files import UploadedFile
from ninja.pagination import paginate
from ninja.responses import Status

from accounts.audit import Actor
from audiences.import_api import ImportUploadAuth
from audiences.import_services import ImportTooLarge
from channels import export_services, list_services, selectors, sync_services
from channels.secrets import SecretsUnreadable, unseal
from config.api import CursorPagination, InputSchema, also_answers, error_response
from segments.selectors import get_segment_or_404

router = Router(tags=["Channel audiences"])

AudienceChannel = Literal["email", "sms", "push", "meta"]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class ChannelSegmentOut(Schema):
    id: int
    segment: int = Field(description="The Herald segment's id.")
    external_id: str
    name: str
    link: str
    source: Literal["herald", "klaviyo", "csv"]
    active: bool
    people_count: int

    @staticmethod
    def resolve_segment(obj):
        return obj.segment_id

    @staticmethod
    def resolve_people_count(obj):
        return obj.segment.people_count


class ChannelSegmentIn(InputSchema):
    segment: int


class ChannelSegmentPatch(InputSchema):
    name: Name | None = None
    external_id: str | None = Field(None, max_length=255)
    link: str | None = Field(None, max_length=500)
    active: bool | None = None


class ChannelJobCreated(Schema):
    id: int


class ChannelAudienceOut(Schema):
    id: int
    name: str
    estimated_volume: int | None
    include: list[int]
    exclude: list[int]
    meta_audience_id: str
    definition: str = Field(description="The audience in words.")
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_include(obj):
        return [e.pk for e in obj.include.all()]

    @staticmethod
    def resolve_exclude(obj):
        return [e.pk for e in obj.exclude.all()]

    @staticmethod
    def resolve_definition(obj):
        return selectors.audience_in_words(obj)


class ChannelAudienceDetailOut(ChannelAudienceOut):
    people_count: int = Field(description="Live: in any include, in none of the excludes.")
    reachable_count: int = Field(
        description="Of them, reachable on the channel and not on Do Not Contact."
    )


class ChannelAudienceIn(InputSchema):
    name: Name
    estimated_volume: int | None = Field(None, ge=0)
    include: list[int] = []
    exclude: list[int] = []
    meta_audience_id: str | None = Field(None, max_length=64)


class ChannelAudiencePatch(InputSchema):
    name: Name | None = None
    estimated_volume: int | None = Field(None, ge=0)
    include: list[int] | None = None
    exclude: list[int] | None = None
    meta_audience_id: str | None = Field(None, max_length=64)


class ChannelAudienceCloneIn(InputSchema):
    name: Name


class MetaExportIn(InputSchema):
    replace: bool = False


class SegmentSourceIn(InputSchema):
    kind: Literal["klaviyo"]
    settings: dict[str, int | str | None] = {}
    secrets: dict[str, str] = {}


class SegmentSourceOut(Schema):
    kind: str
    settings: dict
    secrets_set: list[str]
    last_full_sync_at: datetime | None
    last_sync_at: datetime | None


class ChannelSyncOut(Schema):
    id: int
    status: str
    full: bool
    groups: int
    entries_created: int
    profiles: int
    people_created: int
    processed_rows: int
    total_rows: int
    detail: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class MetaExportOut(Schema):
    id: int
    audience: int
    status: str
    replace: bool
    batches: int
    sent: int
    invalid: int
    skipped: int
    failed_batch: int | None
    session_id: str = Field(description="Meta's upload session of the export.")
    processed_rows: int
    total_rows: int
    detail: str
    created_at: datetime
    finished_at: datetime | None

    @staticmethod
    def resolve_audience(obj):
        return obj.audience_id


def _conflict(e: Exception):
    raise HttpError(409, str(e)) from None


# --- segment lists ---------------------------------------------------------------------


@router.get("/channels/{channel}/segments", response=list[ChannelSegmentOut],
            summary="The channel's segments")  # fmt: skip
@paginate(CursorPagination)
def channel_segments_list(request, channel: AudienceChannel, q: str | None = None,
                          active: bool | None = None):  # fmt: skip
    return selectors.channel_segments(
        workspace=request.workspace, channel=channel, q=q or "", active=active
    )


@router.post("/channels/{channel}/segments", response={201: ChannelSegmentOut},
             summary="Load a Herald segment into the channel",
             openapi_extra=also_answers(409))  # fmt: skip
def channel_segments_add(request, channel: AudienceChannel, payload: ChannelSegmentIn):
    segment = get_segment_or_404(workspace=request.workspace, pk=payload.segment)
    try:
        entry = list_services.channel_segment_add(
            workspace=request.workspace, channel=channel, segment=segment,
            actor=Actor.from_request(request),
        )  # fmt: skip
    except list_services.ListConflict as e:
        _conflict(e)
    return Status(201, entry)


@router.post(
    "/channels/{channel}/segments/upload",
    auth=ImportUploadAuth(),
    response={202: ChannelJobCreated},
    summary="Upload a CSV of identifiers as a static segment of the channel",
    openapi_extra=also_answers(413),
    description="Multipart: `file` (one identifier per line), `name`, `identifier` (id, "
    "external_id, email or phone). The import job (GET /audiences/imports/{id}) fills the "
    "segment; 422 for a bad field or a file that is not text.",
)
def channel_segments_upload(
    request,
    channel: AudienceChannel,
    file: File[UploadedFile],
    name: Form[str],
    identifier: Form[Literal["id", "external_id", "email", "phone"]] = "external_id",
):
    over = getattr(request, "upload_over_limit", None)
    if over:
        limit = settings.AUDIENCE_IMPORT_MAX_BYTES
        return error_response(request, 413, ImportTooLarge(over, limit).message_dict["file"][0])
    try:
        _, job = list_services.channel_segment_upload(
            workspace=request.workspace, channel=channel, file=file, name=name,
            identifier=identifier, actor=Actor.from_request(request),
        )  # fmt: skip
    except ImportTooLarge as e:
        return error_response(request, 413, e.message_dict["file"][0])
    return Status(202, {"id": job.pk})


@router.patch("/channels/{channel}/segments/{int:entry_id}", response=ChannelSegmentOut,
              summary="Change an entry's name, ID, link or active flag")  # fmt: skip
def channel_segments_patch(request, channel: AudienceChannel, entry_id: int,
                           payload: ChannelSegmentPatch):  # fmt: skip
    entry = selectors.get_channel_segment_or_404(
        workspace=request.workspace, channel=channel, pk=entry_id
    )
    changes = payload.model_dump(exclude_unset=True)
    for flag in ("name", "active"):  # null: not a change
        if changes.get(flag, "") is None:
            del changes[flag]
    return list_services.channel_segment_update(
        entry=entry, changes=changes, actor=Actor.from_request(request)
    )


@router.delete("/channels/{channel}/segments/{int:entry_id}", response={204: None},
               summary="Remove a segment from the channel",
               openapi_extra=also_answers(409))  # fmt: skip
def channel_segments_delete(request, channel: AudienceChannel, entry_id: int):
    entry = selectors.get_channel_segment_or_404(
        workspace=request.workspace, channel=channel, pk=entry_id
    )
    try:
        list_services.channel_segment_delete(entry=entry, actor=Actor.from_request(request))
    except list_services.ListConflict as e:
        _conflict(e)
    return Status(204, None)


# --- the segment source and its syncs --------------------------------------------------


def _source_out(source) -> dict:
    try:
        secrets_set = sorted(unseal(source.secrets))
    except SecretsUnreadable:
        secrets_set = []
    return {
        "kind": source.kind, "settings": source.settings, "secrets_set": secrets_set,
        "last_full_sync_at": source.last_full_sync_at, "last_sync_at": source.last_sync_at,
    }  # fmt: skip


@router.get("/channels/{channel}/source", response=SegmentSourceOut,
            summary="The channel's segment source")  # fmt: skip
def channel_source_get(request, channel: AudienceChannel):
    source = selectors.segment_source(workspace=request.workspace, channel=channel)
    if source is None:
        raise HttpError(404, f"The {channel} channel has no segment source.")
    return _source_out(source)


@router.put("/channels/{channel}/source", response=SegmentSourceOut,
            summary="Set the channel's segment source (Klaviyo)")  # fmt: skip
def channel_source_put(request, channel: AudienceChannel, payload: SegmentSourceIn):
    source = list_services.segment_source_set(
        workspace=request.workspace, channel=channel, kind=payload.kind,
        settings=payload.settings, secrets=payload.secrets, actor=Actor.from_request(request),
    )  # fmt: skip
    return _source_out(source)


@router.post("/channels/{channel}/sync", response={202: ChannelJobCreated},
             summary="Sync the channel's segments from its source",
             openapi_extra=also_answers(409))  # fmt: skip
def channel_sync_start(request, channel: AudienceChannel):
    try:
        job = sync_services.channel_sync_start(
            workspace=request.workspace, channel=channel, actor=Actor.from_request(request)
        )
    except list_services.ListConflict as e:
        _conflict(e)
    return Status(202, {"id": job.pk})


@router.get("/channels/{channel}/syncs/{int:sync_id}", response=ChannelSyncOut,
            summary="One sync of the channel")  # fmt: skip
def channel_sync_get(request, channel: AudienceChannel, sync_id: int):
    return selectors.get_channel_sync_or_404(
        workspace=request.workspace, channel=channel, pk=sync_id
    )


# --- audiences -------------------------------------------------------------------------


def _detail(audience):
    """The audience with its live counts (read by ChannelAudienceDetailOut)."""
    counted = selectors.audience_count(audience=audience, now=timezone.now())
    audience.people_count, audience.reachable_count = counted.people, counted.reachable
    return audience


def _with_meta_id(audience, meta_audience_id, request):
    if meta_audience_id is not None:
        list_services.channel_audience_set_meta_id(
            audience=audience, meta_audience_id=meta_audience_id,
            actor=Actor.from_request(request),
        )  # fmt: skip


@router.get("/channels/{channel}/audiences", response=list[ChannelAudienceOut],
            summary="The channel's audiences")  # fmt: skip
@paginate(CursorPagination)
def channel_audiences_list(request, channel: AudienceChannel):
    return selectors.channel_audiences(workspace=request.workspace, channel=channel)


@router.post("/channels/{channel}/audiences", response={201: ChannelAudienceDetailOut},
             summary="Create a channel audience")  # fmt: skip
def channel_audiences_create(request, channel: AudienceChannel, payload: ChannelAudienceIn):
    data = payload.model_dump(exclude={"meta_audience_id"})
    audience = list_services.channel_audience_create(
        workspace=request.workspace, channel=channel, data=data, actor=Actor.from_request(request)
    )
    _with_meta_id(audience, payload.meta_audience_id, request)
    return Status(201, _detail(audience))


def _audience(request, channel, channel_audience_id):
    return selectors.get_channel_audience_or_404(
        workspace=request.workspace, channel=channel, pk=channel_audience_id
    )


ONE_AUDIENCE = "/channels/{channel}/audiences/{int:channel_audience_id}"


@router.get(ONE_AUDIENCE, response=ChannelAudienceDetailOut,
            summary="One channel audience, counted live")  # fmt: skip
def channel_audiences_get(request, channel: AudienceChannel, channel_audience_id: int):
    return _detail(_audience(request, channel, channel_audience_id))


@router.patch(ONE_AUDIENCE, response=ChannelAudienceDetailOut,
              summary="Change a channel audience")  # fmt: skip
def channel_audiences_patch(request, channel: AudienceChannel, channel_audience_id: int,
                            payload: ChannelAudiencePatch):  # fmt: skip
    audience = _audience(request, channel, channel_audience_id)
    data = payload.model_dump(exclude_unset=True, exclude={"meta_audience_id"})
    if data:
        audience = list_services.channel_audience_update(
            audience=audience, data=data, actor=Actor.from_request(request)
        )
    _with_meta_id(audience, payload.meta_audience_id, request)
    return _detail(_audience(request, channel, channel_audience_id))


@router.delete(ONE_AUDIENCE, response={204: None},
               summary="Delete a channel audience",
               openapi_extra=also_answers(409))  # fmt: skip
def channel_audiences_delete(request, channel: AudienceChannel, channel_audience_id: int):
    audience = _audience(request, channel, channel_audience_id)
    try:
        list_services.channel_audience_delete(audience=audience, actor=Actor.from_request(request))
    except list_services.ListConflict as e:
        _conflict(e)
    return Status(204, None)


@router.post(f"{ONE_AUDIENCE}/clone", response={201: ChannelAudienceDetailOut},
             summary="Copy a channel audience")  # fmt: skip
def channel_audiences_clone(request, channel: AudienceChannel, channel_audience_id: int,
                            payload: ChannelAudienceCloneIn):  # fmt: skip
    copy = list_services.channel_audience_clone(
        audience=_audience(request, channel, channel_audience_id), name=payload.name,
        actor=Actor.from_request(request),
    )  # fmt: skip
    return Status(201, _detail(copy))


@router.post(
    "/channels/meta/audiences/{int:channel_audience_id}/export",
    response={202: ChannelJobCreated},
    summary="Push the audience's people to its Meta custom audience",
    openapi_extra=also_answers(409),
)
def meta_export_start(request, channel_audience_id: int, payload: MetaExportIn | None = None):
    audience = _audience(request, "meta", channel_audience_id)
    try:
        job = export_services.meta_export_start(
            audience=audience, replace=bool(payload and payload.replace),
            actor=Actor.from_request(request),
        )  # fmt: skip
    except list_services.ListConflict as e:
        _conflict(e)
    return Status(202, {"id": job.pk})


@router.get("/channels/meta/exports/{int:export_id}", response=MetaExportOut,
            summary="One export to Meta")  # fmt: skip
def meta_export_get(request, export_id: int):
    return selectors.get_meta_export_or_404(workspace=request.workspace, pk=export_id)

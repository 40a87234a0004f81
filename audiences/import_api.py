"""Audience CSV imports of the HTTP API (shared/API.md, "Target audiences", exactly):
POST /audiences/imports (multipart) and GET /audiences/imports/{id}, plus the error report
as text/csv at GET /audiences/imports/{id}/report.

Registered before the audiences router, so /audiences/imports is never read as
/audiences/{id}.
"""

from datetime import datetime
from typing import Literal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from ninja import Field, File, Form, Router, Schema
from ninja.errors import HttpError
from ninja.files import UploadedFile
from ninja.responses import Status

from accounts.audit import Actor
from accounts.jobs import FINISHED
from audiences import selectors
from audiences.import_services import ImportTooLarge, audience_import_start
from audiences.imports.report import first_problems, report_response
from audiences.imports.uploads import declared_over_limit, limit_uploads
from audiences.models import AudienceImport
from config.api import ApiKeyAuth, also_answers, error_response

router = Router(tags=["Target audiences"])


class ImportUploadAuth(ApiKeyAuth):
    """The API key, then the upload limit, before ninja reads the body: a body declared
    larger than the limit is answered 413 at once, and a file that turns out larger is
    cut off as it arrives (and answered 413 by the endpoint)."""

    def authenticate(self, request, token):
        key = super().authenticate(request, token)
        if key is not None:
            limit = settings.AUDIENCE_IMPORT_MAX_BYTES
            declared = declared_over_limit(request, limit)
            if declared:
                raise HttpError(413, ImportTooLarge(declared, limit).message_dict["file"][0])
            limit_uploads(request, limit)
        return key


class ImportCreated(Schema):
    id: int
    status: str
    url: str = Field(..., description="Where to follow the job (GET).")


class ProblemOut(Schema):
    line: int
    reason: str
    raw: str


class ImportOut(Schema):
    id: int
    status: str = Field(..., description="queued, running, done or failed")
    dry_run: bool
    total_rows: int
    processed_rows: int
    matched: int
    unmatched: int
    invalid: int
    audiences_created: list[str]
    error_report: str | None = Field(
        None, description="URL of the error report (text/csv, same API key), or null."
    )
    detail: str
    mode: str
    identifier: str
    audience: str | None = None
    replace: bool
    original_name: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    problems: list[ProblemOut] = Field(
        default_factory=list, description="The first rows of the error report."
    )


def _out(request, job: AudienceImport) -> dict:
    report = None
    if job.error_report:
        report = request.build_absolute_uri(
            reverse("api:audience_import_report", kwargs={"audience_import_id": job.pk})
        )
    finished = job.status in FINISHED
    return {
        "id": job.pk,
        "status": job.status,
        "dry_run": job.dry_run,
        "total_rows": job.total_rows,
        "processed_rows": job.processed_rows,
        "matched": job.matched,
        "unmatched": job.unmatched,
        "invalid": job.invalid,
        "audiences_created": list(job.audiences_created or []),
        "error_report": report,
        "detail": job.detail,
        "mode": job.mode,
        "identifier": job.identifier,
        "audience": job.audience_name or None,
        "replace": job.replace,
        "original_name": job.original_name,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "problems": [p.__dict__ for p in first_problems(job)] if finished else [],
    }


@router.post(
    "/audiences/imports",
    auth=ImportUploadAuth(),
    response={202: ImportCreated},
    summary="Import a CSV file into audiences",
    openapi_extra=also_answers(413),
    description=(
        "Multipart: `file`; `mode` single (one identifier per line, all into `audience`, "
        "created if new) or per_row (`identifier;audience name`, audiences created as "
        "needed); `identifier` id, external_id, email or phone; `dry_run` to only analyze; "
        "`replace` to make the file the audiences' whole membership. 413 over the size "
        "limit, 422 for a bad field or a file that is not UTF-8/UTF-16 text."
    ),
)
def audience_imports_create(
    request,
    file: File[UploadedFile],
    mode: Form[Literal["single", "per_row"]],
    identifier: Form[Literal["id", "external_id", "email", "phone"]] = "external_id",
    audience: Form[str] = "",
    dry_run: Form[bool] = False,
    replace: Form[bool] = False,
):
    limit = settings.AUDIENCE_IMPORT_MAX_BYTES
    over = getattr(request, "upload_over_limit", None)
    if over:
        return error_response(request, 413, ImportTooLarge(over, limit).message_dict["file"][0])
    try:
        job = audience_import_start(
            workspace=request.workspace,
            uploaded_by=None,
            file=file,
            mode=mode,
            identifier=identifier,
            audience_name=audience,
            replace=replace,
            dry_run=dry_run,
            actor=Actor.from_request(request),
        )
    except ImportTooLarge as e:
        return error_response(request, 413, e.message_dict["file"][0])
    except ValidationError:
        raise  # 422 with each field's message (config.api)
    url = request.build_absolute_uri(
        reverse("api:audience_import_get", kwargs={"audience_import_id": job.pk})
    )
    return Status(202, {"id": job.pk, "status": job.status, "url": url})


@router.get(
    "/audiences/imports/{int:audience_import_id}",
    response=ImportOut,
    url_name="audience_import_get",
    summary="One audience import",
)
def audience_imports_get(request, audience_import_id: int):
    job = selectors.get_audience_import_or_404(workspace=request.workspace, pk=audience_import_id)
    return _out(request, job)


@router.get(
    "/audiences/imports/{int:audience_import_id}/report",
    url_name="audience_import_report",
    summary="The error report of an audience import (text/csv)",
    response={200: None},
    openapi_extra={
        "responses": {200: {"description": "CSV: line, reason, raw", "content": {"text/csv": {}}}}
    },
)
def audience_imports_report(request, audience_import_id: int):
    job = selectors.get_audience_import_or_404(workspace=request.workspace, pk=audience_import_id)
    return report_response(job)

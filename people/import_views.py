"""UI of the contact import: upload -> analyze screen -> confirm -> progress -> result.

Every page needs the ops role (MANAGE_PEOPLE) or above; another workspace's import is a
404. The progress fragment is a template partial polled by htmx every second.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRefresh

from accounts.audit import Actor
from accounts.jobs import FINISHED, JobStatus, media_path
from accounts.permissions import MANAGE_PEOPLE, role_required
from audiences.imports.uploads import limit_uploads
from people.imports import selectors, services
from people.imports.forms import AnalyzeForm, UploadForm
from people.imports.rows import FIELD_LABELS
from people.models import ContactImport

TEMPLATE = "people/imports/detail.html"


@role_required(MANAGE_PEOPLE)  # refuses without reading the body
@csrf_exempt  # checked by _contact_import_new, once the upload limit is in place
def contact_import_new(request):
    """The role is checked before the body is read: CsrfViewMiddleware would read (and
    store) the whole upload to find its token, so the CSRF check comes after the size
    limit, CONTACT_IMPORT_MAX_BYTES, which applies while the body is read."""
    if request.method == "POST":
        limit_uploads(request, settings.CONTACT_IMPORT_MAX_BYTES)
    return _contact_import_new(request)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MB"


@csrf_protect
def _contact_import_new(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    over = getattr(request, "upload_over_limit", None)
    if over:
        form.is_valid()
        form.errors.pop("file", None)
        form.add_error(
            "file",
            f"The file is {_megabytes(over)}; contact imports take files up to "
            f"{_megabytes(settings.CONTACT_IMPORT_MAX_BYTES)}. Split it into smaller files.",
        )
        return _render_new(request, form, status=413)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.contact_import_create(
                workspace=request.workspace,
                uploaded_by=request.user,
                file=form.cleaned_data["file"],
                actor=Actor.from_request(request),
            )
        except ValidationError as e:
            form.add_error("file", e)
        else:
            return redirect("contact_import_detail", import_id=job.id)
    return _render_new(request, form)


def _render_new(request, form, status=200):
    return render(
        request,
        "people/imports/new.html",
        {
            "form": form,
            "imports": selectors.contact_import_list(workspace=request.workspace),
            "max_mb": settings.CONTACT_IMPORT_MAX_BYTES // (1024 * 1024),
        },
        status=status,
    )


def _phase(job: ContactImport) -> str:
    """Which screen the import is at."""
    if job.stage == ContactImport.Stage.UPLOADED:
        return "analysis_failed" if job.status == JobStatus.FAILED else "analyzing"
    if job.stage == ContactImport.Stage.ANALYZED:
        return "analyzed"
    if job.status in FINISHED:
        return "finished"
    return "running"


def _took(job: ContactImport) -> str:
    if not (job.started_at and job.finished_at):
        return ""
    seconds = (job.finished_at - job.started_at).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} seconds"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def _context(request, job: ContactImport, form=None) -> dict:
    phase = _phase(job)
    context = {
        "took": _took(job),
        "job": job,
        "phase": phase,
        "polling": phase in ("analyzing", "running"),
        "analysis": job.analysis or {},
        "counts": (job.analysis or {}).get("counts") or {},
        "result": selectors.contact_import_result(job),
        "field_labels": FIELD_LABELS,
    }
    if phase in ("analyzed", "analysis_failed"):
        definitions = selectors.attribute_types(workspace=request.workspace)
        context["form"] = form or AnalyzeForm(job, definitions)
    return context


@role_required(MANAGE_PEOPLE)
def contact_import_detail(request, import_id: int):
    """The import's page, whatever its stage; POST is the analyze screen's form."""
    job = selectors.get_contact_import_or_404(workspace=request.workspace, import_id=import_id)
    form = None
    if request.method == "POST":
        if _phase(job) not in ("analyzed", "analysis_failed"):
            return redirect("contact_import_detail", import_id=job.id)
        definitions = selectors.attribute_types(workspace=request.workspace)
        form = AnalyzeForm(job, definitions, request.POST)
        if form.is_valid():
            options = form.options()
            confirm = request.POST.get("action") == "confirm" and _phase(job) == "analyzed"
            try:
                if confirm and services.analysis_is_current(job, options):
                    services.contact_import_confirm(
                        contact_import=job, options=options, actor=Actor.from_request(request)
                    )
                    return redirect("contact_import_detail", import_id=job.id)
                services.contact_import_reanalyze(
                    contact_import=job, options=options, actor=Actor.from_request(request)
                )
            except ValidationError as e:
                form.add_error(None, e)
            else:
                if confirm:
                    messages.info(
                        request,
                        "You changed the mapping or the file settings: the numbers are being "
                        "counted again. Check them, then confirm.",
                    )
                return redirect("contact_import_detail", import_id=job.id)
    return render(request, TEMPLATE, _context(request, job, form))


@require_GET
@role_required(MANAGE_PEOPLE)
def contact_import_progress(request, import_id: int):
    """The progress fragment, polled by htmx while the analysis or the import runs."""
    job = selectors.get_contact_import_or_404(workspace=request.workspace, import_id=import_id)
    if not request.htmx:
        return redirect("contact_import_detail", import_id=job.id)
    phase = _phase(job)
    if phase in ("analyzed", "analysis_failed"):
        return HttpResponseClientRefresh()  # the analysis is over: show the analyze screen
    return render(request, f"{TEMPLATE}#progress", _context(request, job))


@require_GET
@role_required(MANAGE_PEOPLE)
def contact_import_errors(request, import_id: int):
    """The error report (line, reason, raw line) as a CSV download."""
    job = selectors.get_contact_import_or_404(workspace=request.workspace, import_id=import_id)
    stem = job.original_name.rsplit(".", 1)[0] or "contacts"
    filename = f"{stem}-errors.csv"
    path = media_path(job.error_report) if job.error_report else None
    if path is not None and path.is_file():
        return FileResponse(
            open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
            as_attachment=True,
            filename=filename,
            content_type="text/csv; charset=utf-8",
        )
    # No row in error (or not analyzed yet): the report is its header line.
    response = HttpResponse("line,reason,raw\r\n", content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response

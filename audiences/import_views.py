"""UI of the audience CSV import: the import page, a job's page with its progress bar
(polled with htmx), the error report download, and "Import for real" after a dry run."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import Actor
from accounts.jobs import FINISHED, MAX_ATTEMPTS, JobStatus
from accounts.permissions import MANAGE_AUDIENCES, role_required
from audiences import import_services, selectors
from audiences.imports.report import first_problems, report_response
from audiences.imports.results import created_audiences, recent_imports
from audiences.imports.uploads import limit_uploads
from audiences.models import AudienceImport, Identifier

SINGLE = AudienceImport.Mode.SINGLE
PER_ROW = AudienceImport.Mode.PER_ROW
ADD, REPLACE = "add", "replace"
# The form's field for each key of the service's ValidationError.
SERVICE_FIELDS = {
    "file": "file",
    "mode": "mode",
    "identifier": "identifier",
    "audience": "audience",
}


class AudienceImportForm(forms.Form):
    mode = forms.ChoiceField(
        label="What the file holds",
        choices=[
            (SINGLE, "One audience for every person in the file"),
            (PER_ROW, "Each row names its audience: identifier; audience name"),
        ],
        widget=forms.RadioSelect,
        initial=SINGLE,
    )
    audience = forms.ModelChoiceField(
        label="Existing audience",
        queryset=None,
        required=False,
        empty_label="— choose an audience —",
    )
    new_audience = forms.CharField(label="or a new audience", max_length=200, required=False)
    identifier = forms.ChoiceField(
        label="Identifier used in the file",
        choices=Identifier.choices,
        initial=Identifier.EXTERNAL_ID,
    )
    action = forms.ChoiceField(
        label="Members",
        choices=[(ADD, "Add to the audience"), (REPLACE, "Replace its members with the file")],
        widget=forms.RadioSelect,
        initial=ADD,
    )
    file = forms.FileField(label="CSV file")

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["audience"].queryset = selectors.audience_list(workspace=workspace)
        self.workspace = workspace

    def clean(self):
        data = super().clean()
        if data.get("mode") == SINGLE:
            existing, new = data.get("audience"), " ".join(data.get("new_audience", "").split())
            if existing and new and existing.name.lower() != new.lower():
                self.add_error(
                    "new_audience", "Choose an existing audience or type a new name, not both."
                )
            elif not existing and not new:
                self.add_error("audience", "Choose the audience, or type the name of a new one.")
            else:
                data["audience_name"] = existing.name if existing else new
        else:
            data["audience_name"] = ""
        return data


def _form_with_service_errors(form, error: ValidationError):
    if hasattr(error, "error_dict"):
        for key, errors in error.message_dict.items():
            for message in errors:
                form.add_error(SERVICE_FIELDS.get(key), message)
    else:
        for message in error.messages:
            form.add_error(None, message)


def _render_new(request, form, status=200):
    context = {
        "form": form,
        "max_bytes": settings.AUDIENCE_IMPORT_MAX_BYTES,
        "max_label": import_services.megabytes(settings.AUDIENCE_IMPORT_MAX_BYTES),
        "recent": recent_imports(workspace=request.workspace),
    }
    return render(request, "audiences/imports/new.html", context, status=status)


@role_required(MANAGE_AUDIENCES)
@csrf_exempt  # checked by _audience_import_new, after the upload limit is in place
def audience_import_new(request):
    if request.method == "POST":
        limit_uploads(request, settings.AUDIENCE_IMPORT_MAX_BYTES)
    return _audience_import_new(request)


@csrf_protect
def _audience_import_new(request):
    ws = request.workspace
    if request.method != "POST":
        initial = {}
        audience = request.GET.get("audience")
        if audience:
            chosen = selectors.get_audience_or_404(workspace=ws, pk=audience)
            initial = {"mode": SINGLE, "audience": chosen.pk}
        return _render_new(request, AudienceImportForm(workspace=ws, initial=initial))
    form = AudienceImportForm(request.POST, request.FILES, workspace=ws)
    over = getattr(request, "upload_over_limit", None)
    if over:
        form.is_valid()
        error = import_services.ImportTooLarge(over, settings.AUDIENCE_IMPORT_MAX_BYTES)
        form.add_error("file", error.message_dict["file"][0])
        return _render_new(request, form, status=413)
    if not form.is_valid():
        return _render_new(request, form)
    data = form.cleaned_data
    try:
        job = import_services.audience_import_start(
            workspace=ws,
            uploaded_by=request.user,
            file=data["file"],
            mode=data["mode"],
            identifier=data["identifier"],
            audience_name=data["audience_name"],
            replace=data["action"] == REPLACE,
            dry_run=request.POST.get("run") != "import",
            actor=Actor.from_request(request),
        )
    except ValidationError as e:
        _form_with_service_errors(form, e)
        return _render_new(request, form)
    return redirect("audience_import_detail", audience_import_id=job.pk)


def _job_context(job: AudienceImport) -> dict:
    finished = job.status in FINISHED
    files_removed = job.files_removed_at is not None
    return {
        "job": job,
        "finished": finished,
        "files_removed": files_removed,
        "files_kept_days": import_services.files_kept_days(job) if files_removed else None,
        "retention_days": settings.AUDIENCE_IMPORT_RETENTION_DAYS,
        "created": created_audiences(job) if finished else [],
        "problems": first_problems(job) if finished else [],
        "max_attempts": MAX_ATTEMPTS,
        "merging": job.status == JobStatus.RUNNING
        and job.total_rows
        and job.processed_rows >= job.total_rows,
    }


@role_required(MANAGE_AUDIENCES)
@require_GET
def audience_import_detail(request, audience_import_id):
    job = selectors.get_audience_import_or_404(workspace=request.workspace, pk=audience_import_id)
    return render(request, "audiences/imports/detail.html", _job_context(job))


@role_required(MANAGE_AUDIENCES)
@require_GET
def audience_import_progress(request, audience_import_id):
    """The status part of the job page, polled every second while the job runs."""
    job = selectors.get_audience_import_or_404(workspace=request.workspace, pk=audience_import_id)
    return render(request, "audiences/imports/detail.html#progress", _job_context(job))


@role_required(MANAGE_AUDIENCES)
@require_GET
def audience_import_report(request, audience_import_id):
    job = selectors.get_audience_import_or_404(workspace=request.workspace, pk=audience_import_id)
    return report_response(job)


@role_required(MANAGE_AUDIENCES)
@require_POST
def audience_import_confirm(request, audience_import_id):
    """ "Import for real": the analyzed file, same options, dry run off."""
    job = selectors.get_audience_import_or_404(workspace=request.workspace, pk=audience_import_id)
    try:
        new = import_services.audience_import_repeat(
            audience_import=job, uploaded_by=request.user, actor=Actor.from_request(request)
        )
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return redirect("audience_import_detail", audience_import_id=job.pk)
    return redirect("audience_import_detail", audience_import_id=new.pk)

"""Use cases of the audience CSV import: start (upload), repeat a dry run for real, run.

Lifecycle of an AudienceImport: queued -> running -> done | failed. A dry run ends done
like an import does, having changed nothing; "Import for real" starts a new job on the
same stored file. AUDIENCE_IMPORT_RETENTION_DAYS after a job finished, its upload and
error report are deleted (files_removed_at).

Invariant: an import either commits what its job row says or nothing. The job row is
marked done inside the merge transaction; a job that fails or dies before that changed
nothing, and a re-delivered job whose attempt died is run again from scratch.
"""

import logging
import os
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.degraded import send_after_commit
from accounts.jobs import (
    FINISHED,
    MAX_ATTEMPTS,
    JobStatus,
    UploadEmpty,
    UploadTooLarge,
    attempt_lock,
    job_claim,
    job_fail,
    job_give_up,
    media_path,
    store_upload,
)
from audiences.imports.reader import NAME_MAX, ImportRefused, clean_name, sniff
from audiences.imports.report import report_relative_path
from audiences.imports.run import JobTaken, run_job
from audiences.models import AudienceImport, Identifier

logger = logging.getLogger(__name__)

UPLOADS_DIR = "audience-imports"  # under MEDIA_ROOT: uploads and error reports
_LOCK_NAMESPACE = 0x4841_5544 << 32  # "HAUD": advisory lock keys of audience import jobs


class ImportTooLarge(ValidationError):
    """The upload is over settings.AUDIENCE_IMPORT_MAX_BYTES (the API answers 413)."""

    def __init__(self, size: int | None, limit: int):
        self.size = size
        self.limit = limit
        message = f"The file is {megabytes(size)}; " if size else "The file is too large; "
        message += (
            f"audience imports take files up to {megabytes(limit)}. Split it into smaller "
            "files and import each one (in “replace” mode, import the first file with "
            "“replace” and the others with “add”)."
        )
        super().__init__({"file": [message]})


def megabytes(size: int) -> str:
    """'250 MB', '1.5 MB', '117 KB'."""
    if size < 1024 * 1024:
        return f"{size / 1024:,.0f} KB"
    return f"{size / (1024 * 1024):,.1f} MB".replace(".0 MB", " MB")


def _clean_options(*, mode, identifier, audience_name, replace, dry_run) -> dict:
    errors: dict[str, list[str]] = {}
    if mode not in AudienceImport.Mode.values:
        errors["mode"] = [
            f"“{mode}” is not a mode: use “single” (one audience for every person in the "
            "file) or “per_row” (each row: identifier; audience name)."
        ]
    if identifier not in Identifier.values:
        errors["identifier"] = [
            f"“{identifier}” is not an identifier type: use one of "
            + ", ".join(f"“{value}”" for value in Identifier.values)
            + "."
        ]
    name = clean_name(audience_name or "")
    if mode == AudienceImport.Mode.SINGLE:
        if not name:
            errors["audience"] = ["Name the audience (an existing one, or a new name)."]
        elif len(name) > NAME_MAX:
            errors["audience"] = [f"An audience name has at most {NAME_MAX} characters."]
    elif mode == AudienceImport.Mode.PER_ROW and name:
        errors["audience"] = [
            "The audience is named by each row in “per_row” mode: leave `audience` out, "
            "or use mode “single”."
        ]
    if errors:
        raise ValidationError(errors)
    return {
        "mode": mode,
        "identifier": identifier,
        "audience_name": name,
        "replace": bool(replace),
        "dry_run": bool(dry_run),
    }


def _store_upload(*, workspace, file) -> tuple[str, int]:
    """The upload, stored at MEDIA_ROOT/audience-imports/<workspace_id>/: (path, size)."""
    relative = f"{UPLOADS_DIR}/{workspace.id}/{uuid.uuid4().hex}.csv"
    limit = settings.AUDIENCE_IMPORT_MAX_BYTES
    try:
        return relative, store_upload(file, media_path(relative), limit=limit)
    except UploadTooLarge as e:
        raise ImportTooLarge(e.size, limit) from None
    except UploadEmpty:
        raise ValidationError(
            {"file": ["The file is empty: it needs one identifier per line."]}
        ) from None


def _enqueue(job: AudienceImport) -> None:
    from audiences.tasks import audience_import_run_task

    send_after_commit(audience_import_run_task, job.id)


def audience_import_start(*, workspace, uploaded_by, file, mode: str, identifier: str,
                          actor: Actor, audience_name: str = "", replace: bool = False,
                          dry_run: bool = False) -> AudienceImport:  # fmt: skip
    """Store the uploaded file and queue its import (or, with dry_run, its analysis).

    Refuses with a ValidationError keyed by field (file, mode, identifier, audience): bad
    options, an empty file, a file over AUDIENCE_IMPORT_MAX_BYTES (ImportTooLarge), one
    that is not text or not UTF-8/UTF-16 (read from its first 64 KB; the rest is checked
    by the job). Changes no audience. audit: "audience_import.start"; its outcome is
    "audience_import.done" (accounts.jobs.job_done)."""
    options = _clean_options(
        mode=mode,
        identifier=identifier,
        audience_name=audience_name,
        replace=replace,
        dry_run=dry_run,
    )
    relative, size = _store_upload(workspace=workspace, file=file)
    try:
        sniff(str(media_path(relative)))
    except ImportRefused as e:
        media_path(relative).unlink(missing_ok=True)
        raise ValidationError({"file": [str(e)]}) from None
    name = os.path.basename(file.name or "") or "audiences.csv"
    with transaction.atomic():
        job = AudienceImport.objects.create(
            workspace=workspace,
            created_by=uploaded_by,
            original_name=name[:255],
            file=relative,
            file_size=size,
            status=JobStatus.QUEUED,
            detail="Waiting for a worker to start the import…",
            **options,
        )
        _audit_job(job, actor=actor, action="audience_import.start")
        _enqueue(job)
    return job


def files_kept_days(job: AudienceImport) -> int:
    """How many days after the job finished its files were deleted."""
    return (job.files_removed_at - (job.finished_at or job.created_at)).days


def _audit_job(job: AudienceImport, *, actor: Actor, action: str, **summary) -> None:
    audit_record(
        workspace=job.workspace_id,
        actor=actor,
        action=action,
        obj=job,
        summary={
            "mode": job.mode,
            "identifier": job.identifier,
            "replace": job.replace,
            "dry_run": job.dry_run,
            "file_size": job.file_size,
            **summary,
        },
    )


def audience_import_repeat(
    *, audience_import: AudienceImport, uploaded_by, actor: Actor
) -> AudienceImport:
    """ "Import for real": a new job importing the file a finished dry run analyzed, with
    the same options.

    The dry run's row is locked while the new job is created, so the retention
    (audience_import_files_expire) either sees the new job and keeps the file, or has
    deleted it first and this refuses. audit: "audience_import.repeat" """
    with transaction.atomic():
        source = AudienceImport.objects.unscoped().select_for_update().get(pk=audience_import.pk)
        if not source.dry_run or source.status != JobStatus.DONE:
            raise ValidationError("Only a finished analysis (dry run) can be imported for real.")
        if source.files_removed_at is not None:
            raise ValidationError(
                "The analyzed file and any error report were deleted after "
                f"{files_kept_days(source)} days; upload the file again."
            )
        if not media_path(source.file).is_file():
            raise ValidationError(
                "The analyzed file is no longer on the server; upload it again to import it."
            )
        job = AudienceImport.objects.create(
            workspace_id=source.workspace_id,
            created_by=uploaded_by,
            original_name=source.original_name,
            file=source.file,
            file_size=source.file_size,
            mode=source.mode,
            identifier=source.identifier,
            audience_name=source.audience_name,
            replace=source.replace,
            dry_run=False,
            status=JobStatus.QUEUED,
            detail="Waiting for a worker to start the import…",
        )
        _audit_job(job, actor=actor, action="audience_import.repeat", dry_run_id=source.pk)
        _enqueue(job)
    return job


def _owned_file(relative: str) -> Path | None:
    """The path of `relative` if it is a file of the audience imports, else None (a row
    naming anything else never makes the retention delete it)."""
    if not relative:
        return None
    root = media_path(UPLOADS_DIR).resolve()
    path = media_path(relative).resolve()
    return path if path.is_relative_to(root) and path != root else None


def _delete_files(relatives: set[str]) -> set[str]:
    """Delete the files (one already gone is fine); returns those that could not be."""
    failed = set()
    for relative in sorted(relatives):
        path = _owned_file(relative)
        if path is None:
            logger.warning("audience import file %r is not under %s: left alone", relative,
                           UPLOADS_DIR)  # fmt: skip
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError:
            logger.exception("could not delete the audience import file %s", path)
            failed.add(relative)
    return failed


def audience_import_files_expire(*, actor: Actor | None = None, now=None) -> int:
    """Delete the stored upload and the error report of every job finished (done or
    failed) more than AUDIENCE_IMPORT_RETENTION_DAYS ago, and mark the job (file and
    error_report emptied, files_removed_at set); returns how many jobs were cleared.

    Invariant: an upload is kept while any job naming it is queued, running or finished
    within the retention ("Import for real" makes a new job on its dry run's file); such
    a dry run is cleared later, with the job that still needs its file. A job whose file
    could not be deleted is left as it was and tried again on the next run.
    audit: one "audience_import.files_expire" entry per workspace with its count, by
    `actor` (default: the beat task)."""
    actor = actor or Actor(system="audiences.tasks.audience_import_files_expire_task")
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.AUDIENCE_IMPORT_RETENTION_DAYS)
    jobs = AudienceImport.objects.unscoped()
    old = Q(status__in=FINISHED, finished_at__lt=cutoff)
    with transaction.atomic():
        # Locking the old jobs first makes an "Import for real" of one of them either
        # commit its new job before the read below, or wait and see files_removed_at.
        candidates = list(
            jobs.filter(old, files_removed_at__isnull=True)
            .select_for_update()
            .values_list("pk", "workspace_id", "file", "error_report")
        )
        if not candidates:
            return 0
        needed = set(
            jobs.filter(file__in={file for _, _, file, _ in candidates})
            .exclude(old)
            .values_list("file", flat=True)
        )
        files_of: dict[int, set[str]] = {}
        for pk, workspace_id, file, error_report in candidates:
            if file in needed:
                continue
            report = report_relative_path(workspace_id=workspace_id, import_id=pk)
            # the report's usual path too: a job that stopped after writing its report
            # may not name it
            files_of[pk] = {f for f in (file, error_report, report) if f}
        failed = _delete_files(set().union(*files_of.values()))
        cleared = [pk for pk, files in files_of.items() if not files & failed]
        jobs.filter(pk__in=cleared).update(file="", error_report="", files_removed_at=now)
        workspace_of = {pk: workspace_id for pk, workspace_id, _, _ in candidates}
        per_workspace: dict[int, int] = {}
        for pk in cleared:
            per_workspace[workspace_of[pk]] = per_workspace.get(workspace_of[pk], 0) + 1
        for workspace_id, count in sorted(per_workspace.items()):
            audit_record(
                workspace=workspace_id,
                actor=actor,
                action="audience_import.files_expire",
                object_type="audienceimport",
                summary={"jobs": count},
            )
    if cleared:
        logger.info("deleted the files of %s finished audience imports", len(cleared))
    return len(cleared)


def _job_lock(import_id: int):
    return attempt_lock(_LOCK_NAMESPACE + import_id)


def _jobs(import_id: int):
    return AudienceImport.objects.unscoped().filter(pk=import_id)


def _claim(import_id: int, *, now) -> bool:
    """Start an attempt (the caller holds the job lock), at most MAX_ATTEMPTS times."""
    return job_claim(
        _jobs(import_id),
        now=now,
        total_rows=0,
        matched=0,
        unmatched=0,
        invalid=0,
        audiences_created=[],
        error_report="",
        detail="Starting…",
    )


def audience_import_fail(*, import_id: int, detail: str, reword: bool = False, **fields) -> None:
    """Mark a job that has not finished as failed, saying why (with `reword`, also say it
    better for one already failed). A finished job is never touched."""
    job_fail(_jobs(import_id), detail=detail, reword=reword, **fields)


def _fail_if_out_of_attempts(import_id: int, *, now) -> None:
    job_give_up(
        _jobs(import_id),
        now=now,
        detail=(
            f"The import stopped its worker {MAX_ATTEMPTS} times (the worker was killed or "
            "restarted while it ran), so it was given up; nothing was changed. Split the file "
            "into smaller files and import each one; if a small file fails this way too, tell "
            f"your administrator (audience import #{import_id})."
        ),
    )


def audience_import_run(*, import_id: int, now=None) -> AudienceImport | None:
    """Run the job (a dry run only analyzes). Ends done, or failed with a `detail` saying
    what to fix; an unexpected error marks it failed and is raised again for the worker's
    log. Returns None when another live attempt holds the job."""
    now = now or timezone.now()
    with _job_lock(import_id) as got:
        if not got:
            logger.info("audience import %s: another attempt is running it", import_id)
            return None
        if not _claim(import_id, now=now):
            _fail_if_out_of_attempts(import_id, now=now)
            return AudienceImport.objects.unscoped().filter(pk=import_id).first()
        job = AudienceImport.objects.unscoped().get(pk=import_id)
        try:
            run_job(job, now=now)
        except ImportRefused as e:
            fields = {}
            stats = getattr(e, "stats", None)
            if stats is not None:
                fields = {
                    "total_rows": stats.rows,
                    "processed_rows": stats.rows,
                    "invalid": stats.invalid,
                }
            audience_import_fail(
                import_id=import_id,
                detail=str(e),
                error_report=getattr(e, "error_report", ""),
                **fields,
            )
        except JobTaken:
            logger.warning("audience import %s was changed by someone else while it ran", import_id)
        except Exception as e:
            logger.exception("audience import %s failed", import_id)
            audience_import_fail(
                import_id=import_id,
                detail=(
                    f"The import stopped on an unexpected error ({type(e).__name__}); nothing "
                    "was changed. Start it again, and if it fails again tell your "
                    f"administrator (audience import #{import_id})."
                ),
            )
            raise
    return AudienceImport.objects.unscoped().get(pk=import_id)

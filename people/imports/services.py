"""Use cases of the contact import: create (upload), analyze, re-analyze, confirm, run.

Lifecycle of a ContactImport (stage / status):
    uploaded/queued  -> analysis task  -> uploaded/running -> analyzed/queued (or uploaded/failed)
    analyzed/queued  -> confirm        -> confirmed/queued -> run task -> confirmed/running
                                                            -> confirmed/done | confirmed/failed

Invariant: an import either commits what its report says or nothing. The job row is marked
done inside the merge transaction; a job that fails or dies before that changed nothing.
"""

import codecs
import logging
import os
import uuid

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.degraded import send_after_commit
from accounts.jobs import (
    MAX_ATTEMPTS,
    JobStatus,
    UploadEmpty,
    UploadTooLarge,
    attempt_lock,
    job_claim,
    job_fail,
    job_give_up,
    job_progress,
    media_path,
    store_upload,
)
from people.imports import analyze as analysis_module
from people.imports.rows import DEDUPE_KEYS, MappedColumn, apply_definitions
from people.imports.run import run_import
from people.imports.source import SEPARATORS, SourceError, codec_name
from people.models import AttributeDefinition, ContactImport, Tag

logger = logging.getLogger(__name__)

# Options that change what the analysis counted: confirming other values needs a re-check.
ANALYSIS_KEYS = ("encoding", "separator", "header", "mapping", "dedupe", "phone_region")
MAX_TAGS = 20
_LOCK_NAMESPACE = 0x4852_4C44 << 32  # "HRLD": advisory lock keys of contact import jobs


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MB"


def contact_import_create(*, workspace, uploaded_by, file, actor: Actor) -> ContactImport:
    """Store the uploaded CSV under MEDIA_ROOT/imports/<workspace_id>/ and queue its
    analysis. Refuses an empty file and a file over CONTACT_IMPORT_MAX_BYTES, with a
    ValidationError saying so. audit: "contact_import.create"; the import's outcome is
    "contact_import.done" (accounts.jobs.job_done)."""
    limit = settings.CONTACT_IMPORT_MAX_BYTES
    relative = f"imports/{workspace.id}/{uuid.uuid4().hex}.csv"
    try:
        written = store_upload(file, media_path(relative), limit=limit)
    except UploadEmpty:
        raise ValidationError("The file is empty.") from None
    except UploadTooLarge as e:
        if e.size:
            raise ValidationError(
                f"The file is {_megabytes(e.size)}; contact imports take files up to "
                f"{_megabytes(limit)}. Split it into smaller files."
            ) from None
        raise ValidationError(
            f"The file is over {_megabytes(limit)}, the largest a contact import takes."
        ) from None
    name = os.path.basename(file.name or "") or "contacts.csv"
    with transaction.atomic():
        job = ContactImport.objects.create(
            workspace=workspace,
            created_by=uploaded_by,
            original_name=name[:255],
            file=relative,
            file_size=written,
            stage=ContactImport.Stage.UPLOADED,
            attempts=0,
            status=JobStatus.QUEUED,
            detail="Waiting for the analysis to start…",
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            action="contact_import.create",
            obj=job,
            summary={"file_size": written},
        )
        _enqueue_analysis(job)
    return job


def _enqueue_analysis(job: ContactImport) -> None:
    from people.tasks import contact_import_analyze_task

    send_after_commit(contact_import_analyze_task, job.id)


def _enqueue_run(job: ContactImport) -> None:
    from people.tasks import contact_import_run_task

    send_after_commit(contact_import_run_task, job.id)


def _job_lock(import_id: int):
    return attempt_lock(_LOCK_NAMESPACE + import_id)


def _jobs(import_id: int, **stage):
    return ContactImport.objects.unscoped().filter(pk=import_id, **stage)


def _claim(import_id: int, stage: str, *, now) -> bool:
    """Start an attempt at the stage (the caller holds the job lock), at most MAX_ATTEMPTS
    times per stage; a stage out of attempts fails, saying so."""
    if job_claim(_jobs(import_id, stage=stage), now=now, detail=""):
        return True
    work = "analysis" if stage == ContactImport.Stage.UPLOADED else "import"
    job_give_up(
        _jobs(import_id, stage=stage),
        now=now,
        detail=(
            f"The {work} stopped its worker {MAX_ATTEMPTS} times (the worker was killed or "
            "restarted while it ran), so it was given up; nothing was imported. Split the "
            "file into smaller files and import each one; tell your administrator if a "
            "small file fails this way too."
        ),
    )
    return False


def _fail(import_id: int, detail: str) -> None:
    job_fail(_jobs(import_id), detail=detail)


def _progress(import_id: int, processed: int) -> None:
    job_progress(_jobs(import_id), processed)


def contact_import_analyze(*, contact_import: ContactImport, now=None,
                           helpers: int | None = None) -> ContactImport:  # fmt: skip
    """Sniff the file, suggest a mapping (or keep the user's), and count rows, errors, new
    and existing people with one streamed pass. Ends analyzed/queued, or uploaded/failed
    with the reason (not text, wrong encoding...). Changes no person."""
    now = now or timezone.now()
    job_id = contact_import.pk
    with _job_lock(job_id) as got:
        if not got or not _claim(job_id, ContactImport.Stage.UPLOADED, now=now):
            return _reload(contact_import)
        job = ContactImport.objects.unscoped().select_related("workspace").get(pk=job_id)
        try:
            analysis, options, problems = analysis_module.prepare(job, now=now)
            ContactImport.objects.unscoped().filter(pk=job_id).update(
                total_rows=analysis["estimated_rows"], detail="Reading the whole file…"
            )
            counts = {}
            if not problems:
                counts = analysis_module.count_rows(
                    job, analysis=analysis, options=options,
                    progress=lambda n: _progress(job_id, n), helpers=helpers,
                )  # fmt: skip
        except SourceError as e:
            _fail(job_id, str(e))
            return _reload(contact_import)
        except Exception:
            logger.exception("contact import %s: analysis failed", job_id)
            _fail(
                job_id,
                "The analysis failed on an unexpected error; nothing was imported. "
                "Try again, and tell your administrator if it happens again.",
            )
            return _reload(contact_import)
        analysis["problems"] = problems
        analysis["counts"] = counts
        analysis["options"] = {key: options[key] for key in ANALYSIS_KEYS}
        rows = counts.get("rows", 0)
        ContactImport.objects.unscoped().filter(pk=job_id, status=JobStatus.RUNNING).update(
            stage=ContactImport.Stage.ANALYZED,
            attempts=0,
            status=JobStatus.QUEUED,
            analysis=analysis,
            options=options,
            total_rows=rows,
            processed_rows=rows,
            error_count=counts.get("errors", 0),
            error_report=counts.get("error_report", ""),
            detail="",
            finished_at=None,
        )
    return _reload(contact_import)


def _reload(job: ContactImport) -> ContactImport:
    job.refresh_from_db()
    return job


def clean_options(options: dict) -> dict:
    """The user's choices, checked for shape (the mapping is checked by the analysis)."""
    cleaned = {}
    errors = []
    if "encoding" in options:
        encoding = options["encoding"] or ""
        if encoding:
            try:
                encoding = codec_name(encoding)
                if not codecs.lookup(encoding)._is_text_encoding:
                    raise LookupError(encoding)
            except LookupError:
                errors.append(f"“{encoding}” is not a text encoding.")
        cleaned["encoding"] = encoding
    if "separator" in options:
        separator = options["separator"] or ""
        if separator and separator not in SEPARATORS:
            errors.append("Choose a separator among comma, semicolon, tab and pipe.")
        cleaned["separator"] = separator
    if "header" in options:
        cleaned["header"] = bool(options["header"])
    if "mapping" in options:
        cleaned["mapping"] = list(options["mapping"])
    if options.get("dedupe"):
        if options["dedupe"] not in DEDUPE_KEYS:
            errors.append("Match people by external ID, email or phone.")
        cleaned["dedupe"] = options["dedupe"]
    if options.get("policy"):
        if options["policy"] not in ContactImport.Policy.values:
            errors.append("Choose what to do with existing people.")
        cleaned["policy"] = options["policy"]
    if "tags" in options:
        cleaned["tags"] = clean_tags(options["tags"])
    if "phone_region" in options:
        region = (options["phone_region"] or "").strip().upper()
        if region and region not in phonenumbers.SUPPORTED_REGIONS:
            errors.append(f"“{region}” is not a country code for phone numbers (e.g. GB, FR).")
        cleaned["phone_region"] = region
    if errors:
        raise ValidationError(errors)
    return cleaned


def clean_tags(tags) -> list[str]:
    """Tag names: trimmed, case-insensitively unique, at most MAX_TAGS of 1-100 chars."""
    if isinstance(tags, str):
        tags = tags.split(",")
    names, seen = [], set()
    max_length = Tag._meta.get_field("name").max_length
    for raw in tags:
        name = " ".join(str(raw).split())
        if not name:
            continue
        if len(name) > max_length:
            raise ValidationError(f"The tag “{name[:40]}…” is longer than {max_length} characters.")
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    if len(names) > MAX_TAGS:
        raise ValidationError(f"Give at most {MAX_TAGS} tags.")
    return names


def contact_import_reanalyze(
    *, contact_import: ContactImport, options: dict, actor: Actor
) -> ContactImport:
    """Save the user's choices (encoding, separator, header, mapping, dedupe key, policy,
    tags) and queue the analysis again, so the numbers shown match what will run.
    audit: "contact_import.reanalyze" with the names of the options sent."""
    cleaned = clean_options(options)
    merged = {**(contact_import.options or {}), **cleaned}
    with transaction.atomic():
        changed = (
            ContactImport.objects.for_workspace(contact_import.workspace_id)
            .filter(
                pk=contact_import.pk,
                stage__in=[ContactImport.Stage.UPLOADED, ContactImport.Stage.ANALYZED],
                status__in=[JobStatus.QUEUED, JobStatus.FAILED],
            )
            .update(
                stage=ContactImport.Stage.UPLOADED,
                attempts=0,
                status=JobStatus.QUEUED,
                options=merged,
                processed_rows=0,
                detail="Waiting for the analysis to start…",
            )
        )
        if not changed:
            raise ValidationError("This import is already confirmed or being analyzed.")
        audit_record(
            workspace=contact_import.workspace_id,
            actor=actor,
            action="contact_import.reanalyze",
            obj=contact_import,
            summary={"options": sorted(cleaned)},
        )
        _enqueue_analysis(contact_import)
    return _reload(contact_import)


def _canonical(options: dict, definitions: dict[str, str]) -> dict:
    canonical = {key: options.get(key) for key in ANALYSIS_KEYS}
    columns = [MappedColumn.from_dict(m) for m in options.get("mapping") or []]
    canonical["mapping"] = [
        (c.column, c.target, c.key, c.type) for c in apply_definitions(columns, definitions)
    ]
    canonical["phone_region"] = options.get("phone_region") or ""
    return canonical


def analysis_is_current(contact_import: ContactImport, options: dict) -> bool:
    """Whether the analysis counted with these choices (else its numbers are stale)."""
    used = (contact_import.analysis or {}).get("options")
    if not used:
        return False
    definitions = dict(
        AttributeDefinition.objects.for_workspace(contact_import.workspace_id).values_list(
            "key", "type"
        )
    )
    current = {**(contact_import.options or {}), **options}
    return _canonical(used, definitions) == _canonical(current, definitions)


def contact_import_confirm(
    *, contact_import: ContactImport, options: dict, actor: Actor
) -> ContactImport:
    """Confirm an analyzed import with the user's policy and tags, and queue the job.

    The options that decide what the analysis counted (encoding, separator, header,
    mapping, dedupe key) must be those the analysis ran with: otherwise the user has not
    seen the numbers of what would run (ValidationError; re-analyze first).
    Confirming twice queues one job. audit: "contact_import.confirm", once.
    """
    cleaned = clean_options(options)
    if contact_import.stage == ContactImport.Stage.CONFIRMED:
        return contact_import
    if contact_import.stage != ContactImport.Stage.ANALYZED:
        raise ValidationError("This import has not been analyzed yet.")
    analysis = contact_import.analysis or {}
    if analysis.get("problems"):
        raise ValidationError(analysis["problems"])
    if not analysis_is_current(contact_import, cleaned):
        raise ValidationError(
            "The mapping or file settings changed since the analysis: check the new numbers "
            "before confirming."
        )
    final = {**contact_import.options, **cleaned}
    for key in ANALYSIS_KEYS:
        final[key] = analysis["options"][key]
    rows = analysis.get("counts", {}).get("rows", 0)
    with transaction.atomic():
        confirmed = (
            ContactImport.objects.for_workspace(contact_import.workspace_id)
            .filter(pk=contact_import.pk, stage=ContactImport.Stage.ANALYZED)
            .update(
                stage=ContactImport.Stage.CONFIRMED,
                attempts=0,
                status=JobStatus.QUEUED,
                options=final,
                total_rows=rows,
                processed_rows=0,
                created_count=0,
                updated_count=0,
                skipped_count=0,
                error_count=0,
                error_report="",
                detail="Waiting for a worker…",
            )
        )
        if confirmed:
            audit_record(
                workspace=contact_import.workspace_id,
                actor=actor,
                action="contact_import.confirm",
                obj=contact_import,
                summary={
                    "rows": rows,
                    "policy": final.get("policy"),
                    "tags": len(final.get("tags") or []),
                },
            )
            _enqueue_run(contact_import)
    return _reload(contact_import)


def _discard_upload(job: ContactImport) -> None:
    """Free the disk once a job is over; its result and error report stay."""
    media_path(job.file).unlink(missing_ok=True)


def contact_import_run(
    *, import_id: int, now=None, helpers: int | None = None
) -> ContactImport | None:
    """Run a confirmed import (the Celery task's body). Safe to call again for the same
    job: a job already done or failed is left alone; a job whose previous attempt died
    is redone from scratch."""
    now = now or timezone.now()
    with _job_lock(import_id) as got:
        if not got:
            logger.info("contact import %s: another attempt is running", import_id)
            return ContactImport.objects.unscoped().filter(pk=import_id).first()
        if not _claim(import_id, ContactImport.Stage.CONFIRMED, now=now):
            return ContactImport.objects.unscoped().filter(pk=import_id).first()
        job = ContactImport.objects.unscoped().select_related("workspace").get(pk=import_id)
        try:
            run_import(job, now=now, progress=_progress, helpers=helpers)
        except SourceError as e:
            _fail(import_id, f"The import failed and changed nothing: {e}")
        except Exception as e:
            logger.exception("contact import %s failed", import_id)
            reason = " ".join(str(e).split())[:300] or e.__class__.__name__
            _fail(
                import_id,
                f"The import failed and changed nothing ({reason}). You can upload the file "
                "again; tell your administrator if it happens again.",
            )
        _discard_upload(job)  # done or failed: the upload is never read again
    return ContactImport.objects.unscoped().filter(pk=import_id).first()

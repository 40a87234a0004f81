"""One audience import job: stream the file into a TEMP table, then ONE transaction.

1. Sniff the encoding and separator, then decode the whole file once, counting its lines
   (the progress bar's total): a file that is not text, or not in its encoding further
   down, fails here, before anything else.
2. Read every row (reader.RowReader), COPY it into the TEMP staging table in chunks of
   PROGRESS_EVERY rows, moving the progress bar between chunks. No per-row SQL.
3. In ONE transaction: create the audiences the file names that do not exist yet, resolve
   the identifiers against people with one join, (replace) delete the members the file
   does not name, INSERT ... SELECT the memberships that are new, move the audiences'
   stored counts by what changed, write the error report, and mark the job done. Either all of it
   commits or none of it. A dry run runs the same analysis and only counts.
"""

import logging
import time
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg import sql

from accounts.jobs import job_done, job_progress, media_path
from audiences.imports import merge
from audiences.imports.merge import Stage, Tables
from audiences.imports.reader import (
    IDENTIFIER_NOUNS,
    FileFormat,
    ImportRefused,
    ReadStats,
    RowReader,
    count_lines,
    sniff,
)
from audiences.imports.report import report_relative_path, write_report
from audiences.models import AudienceImport, TargetAudience
from people.changes import audience_key, record_change
from people.models import Person

logger = logging.getLogger(__name__)


class JobTaken(RuntimeError):
    """The job row was finished or changed by someone else while this attempt ran."""


class RefusedWithReport(ImportRefused):
    def __init__(self, message: str, *, error_report: str, stats: ReadStats | None = None):
        super().__init__(message)
        self.error_report = error_report
        self.stats = stats


@dataclass
class Outcome:
    stats: ReadStats
    merged: merge.MergeResult
    problems: int
    error_report: str


def _progress(import_id: int, processed: int) -> None:
    job_progress(AudienceImport.objects.unscoped().filter(pk=import_id), processed)


def _set_detail(import_id: int, detail: str, **fields) -> None:
    AudienceImport.objects.unscoped().filter(pk=import_id).update(detail=detail, **fields)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'s' if count != 1 else ''}"


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def summary(job: AudienceImport, stats: ReadStats, merged: merge.MergeResult,
            fmt: FileFormat | None = None) -> str:  # fmt: skip
    """The sentence the job page and the API's `detail` show for a finished job."""
    created = len(merged.audiences_created)
    if job.mode == AudienceImport.Mode.SINGLE:
        people = "1 person" if merged.added == 1 else f"{merged.added:,} people"
        added = f"{people} to “{job.audience_name}”"
    else:
        added = _plural(merged.added, "membership")
    if job.dry_run:
        actions = [f"add {added}"]
        if job.replace:
            actions.append(f"remove {merged.removed:,}")
        if created:
            actions.append(f"create {_plural(created, 'audience')}")
        text = "Analysis only, nothing was changed: the import would " + _and(actions) + "."
    else:
        actions = [f"added {added}"]
        if job.replace:
            actions.append(f"removed {merged.removed:,}")
        if created:
            actions.append(f"created {_plural(created, 'audience')}")
        text = "Imported: " + _and(actions) + "."
        if not (merged.added or merged.removed or created):
            text += " The audiences already held exactly this, so nothing changed."
    repeated = stats.valid - merged.matched - merged.unmatched
    if repeated > 0:
        text += f" {_plural(repeated, 'repeated line')} counted once."
    if stats.header:
        text += f" The first line (“{stats.header[:80]}”) was read as a header and skipped."
    if fmt is not None and fmt.describe():
        text += " " + fmt.describe()
    return text


def _known_external_id(workspace_id: int):
    def known(key: str) -> bool:
        return Person.objects.for_workspace(workspace_id).filter(external_id=key).exists()

    return known


def _drop_quietly(cursor, names: list[str]) -> None:
    # The tables die with the session anyway; a failure here must not hide the real error.
    for name in names:
        try:
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        except DatabaseError:
            logger.warning("could not drop the staging table %s", name, exc_info=True)


def _write_problems(psycopg_cursor_factory, t: Tables, job, *, with_resolved: bool) -> str:
    relative = report_relative_path(workspace_id=job.workspace_id, import_id=job.id)
    write_report(
        psycopg_cursor_factory,
        merge.problems_query(t, with_resolved=with_resolved),
        relative=relative,
        noun=IDENTIFIER_NOUNS[job.identifier],
    )
    return relative


def run_job(job: AudienceImport, *, now=None, progress=_progress) -> Outcome:
    """Import (or, for a dry run, analyze) the job's file; the job is marked done inside
    the merge transaction. Raises ImportRefused for a file that cannot be imported (with
    the error report when there is one), JobTaken if the job row changed meanwhile."""
    now = now or timezone.now()
    path = media_path(job.file)
    if not path.is_file():
        raise ImportRefused(
            "The uploaded file is no longer on the server; upload it again to import it."
        )
    fmt: FileFormat = sniff(str(path))
    lines = count_lines(str(path), fmt.encoding)
    _set_detail(job.id, "Reading the file…", total_rows=lines, processed_rows=0)
    t = Tables.for_job(job.id)
    reader = RowReader(
        mode=job.mode,
        identifier=job.identifier,
        known_external_id=_known_external_id(job.workspace_id),
    )
    single = job.mode == AudienceImport.Mode.SINGLE
    started = time.monotonic()
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # psycopg's own cursor, for COPY
        named_cursor = connection.connection.cursor
        stage = Stage(cursor, t.stage)
        try:
            stage.create()
            stats = reader.read(
                str(path),
                fmt,
                write=stage.write,
                flush=stage.flush,
                progress=lambda n: progress(job.id, n),
            )
            stage.analyze()
            if not stats.valid:
                relative = ""
                if stats.invalid:
                    with transaction.atomic():
                        relative = _write_problems(named_cursor, t, job, with_resolved=False)
                raise RefusedWithReport(reader.refusal(), error_report=relative, stats=stats)
            _set_detail(job.id, f"Matching {stats.valid:,} rows against people…")
            read_seconds = time.monotonic() - started
            with transaction.atomic():
                merged = _merge(cursor, t, job, reader, single=single, now=now)
                # which audiences the rows named is the staging table's business: the
                # real-time segments naming any audience of the workspace re-check whole
                record_change(
                    workspace=job.workspace_id,
                    everyone=True,
                    keys=[
                        audience_key(name)
                        for name in TargetAudience.objects.unscoped()
                        .filter(workspace_id=job.workspace_id)
                        .values_list("name", flat=True)
                    ],
                )
                problems = stats.invalid + merged.unmatched
                relative = ""
                if problems:
                    relative = _write_problems(named_cursor, t, job, with_resolved=True)
                if job.replace and not merged.matched:
                    raise RefusedWithReport(
                        "No identifier of the file matches anyone in this workspace, so "
                        "nothing was replaced (replacing would have emptied the "
                        f"audience{'s' if not single else ''}). Check the identifier type "
                        "and the file.",
                        error_report=relative,
                        stats=stats,
                    )
                done = job_done(
                    AudienceImport.objects.unscoped().filter(pk=job.id),
                    total_rows=stats.rows,
                    processed_rows=stats.rows,
                    matched=merged.matched,
                    unmatched=merged.unmatched,
                    invalid=stats.invalid,
                    audiences_created=merged.audiences_created,
                    error_report=relative,
                    detail=summary(job, stats, merged, fmt),
                )
                if not done:
                    raise JobTaken(f"audience import {job.id} changed while it ran")
        except BaseException:
            stage.abort()
            raise
        finally:
            _drop_quietly(cursor, t.names())
    logger.info(
        "audience import %s%s: %s rows read and staged in %.1fs, merged and committed in "
        "%.1fs (%s added, %s removed, %s audiences created)",
        job.id, " (dry run)" if job.dry_run else "", f"{stats.rows:,}", read_seconds,
        time.monotonic() - started - read_seconds, f"{merged.added:,}", f"{merged.removed:,}",
        len(merged.audiences_created),
    )  # fmt: skip
    return Outcome(stats=stats, merged=merged, problems=problems, error_report=relative)


def _merge(cursor, t: Tables, job: AudienceImport, reader: RowReader, *, single: bool, now):
    ws = job.workspace_id
    result = merge.MergeResult()
    merge.lock_workspace(cursor, workspace_id=ws)
    merge.build_audiences(
        cursor, t, workspace_id=ws, single_name=job.audience_name if single else None,
        names=reader.audiences,
    )  # fmt: skip
    if job.dry_run:
        result.audiences_created = merge.would_create(cursor, t)
    else:
        result.audiences_created = merge.create_missing_audiences(
            cursor, t, workspace_id=ws, now=now
        )
        deleted = merge.lock_audiences(cursor, t)
        if deleted is not None:
            raise ImportRefused(
                f"The audience “{deleted}” was deleted while the file was being imported, so "
                "nothing was changed. Import the file again."
            )
    merge.resolve(cursor, t, workspace_id=ws, identifier=job.identifier)
    result.matched, result.unmatched = merge.count_entries(cursor, t, identifier=job.identifier)
    if job.dry_run:
        if job.replace:
            result.removed = merge.count_absent(cursor, t)
        result.added = merge.count_new(cursor, t)
        return result
    removed: dict[int, int] = {}
    if job.replace and result.matched:
        removed = merge.remove_absent(cursor, t)
    added = merge.add_members(cursor, t, workspace_id=ws, now=now)
    result.removed, result.added = sum(removed.values()), sum(added.values())
    result.deltas = {
        audience: added.get(audience, 0) - removed.get(audience, 0)
        for audience in added.keys() | removed.keys()
    }
    merge.apply_counts(cursor, result.deltas, now=now)
    return result

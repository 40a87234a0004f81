"""The import job: stream the file, check every row, COPY, then one merge transaction.

1. Stream-decode the file (TextIOWrapper -> LineSource -> csv.reader), check and normalize
   each row in Python (rows.RowChecker, spread over helper processes for a large file:
   checking.py), COPY the good rows into a TEMP staging table in chunks, write the bad
   ones to the error report, and move the progress bar between chunks. No per-row SQL.
2. In ONE transaction: resolve who is who (staging.resolve), create missing companies,
   ONE INSERT ... SELECT ... ON CONFLICT (workspace_id, external_id) merge implementing
   the policy, PersonTag rows for every person it inserted or updated (same statement),
   AttributeDefinitions for new custom attributes, and the job's own result. Either all of
   it commits or none of it.
"""

import logging
import time
from dataclasses import dataclass

from django.db import connection, transaction
from psycopg import sql

from accounts.jobs import job_done, media_path
from people.changes import ANY_RULE, record_change
from people.imports import staging
from people.imports.checking import helper_count, stage_file
from people.imports.report import error_report
from people.imports.rows import ATTRIBUTE, IGNORE, MappedColumn, apply_definitions
from people.models import BUILTIN_FIELDS, AttributeDefinition, ContactImport, TagSource

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 50_000  # rows between two progress updates (and two COPY statements)

_TEXT_FIELDS = [f for f in BUILTIN_FIELDS if f not in ("external_id", "company")]


@dataclass
class RunResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    duplicates: int = 0
    errors: int = 0
    companies_created: int = 0
    attributes_created: list | None = None
    tags: list | None = None
    first_errors: list | None = None


class MergeFailed(RuntimeError):
    pass


def columns_for(job: ContactImport) -> list[MappedColumn]:
    """The job's mapping with attribute types as the workspace now defines them (a
    definition made since the analysis wins over the type chosen then)."""
    options = job.options
    columns = [MappedColumn.from_dict(c) for c in options["mapping"]]
    definitions = dict(
        AttributeDefinition.objects.for_workspace(job.workspace_id)
        .filter(key__in=[c.key for c in columns if c.target == ATTRIBUTE])
        .values_list("key", "type")
    )
    return apply_definitions(columns, definitions)


def _merge_sql(*, stage_final: str, policy: str, mapped: set[str]) -> sql.Composed:
    """ONE INSERT ... SELECT ... ON CONFLICT merging the resolved rows into people,
    tagging every person it inserted or updated, and counting both."""
    insert_values = [
        sql.SQL("COALESCE(f.{c}, '')").format(c=sql.Identifier(c)) for c in _TEXT_FIELDS
    ]
    if policy == ContactImport.Policy.SKIP:
        conflict = sql.SQL("DO NOTHING")
    else:
        sets = []
        for c in _TEXT_FIELDS:
            if c not in mapped:
                continue
            col = sql.Identifier(c)
            if policy == ContactImport.Policy.OVERWRITE:
                # an empty cell never clears a value
                expr = sql.SQL("COALESCE(NULLIF(EXCLUDED.{c}, ''), p.{c})")
            else:  # fill_empty: only fields empty on the existing person
                expr = sql.SQL("COALESCE(NULLIF(p.{c}, ''), EXCLUDED.{c})")
            sets.append(sql.SQL("{c} = ").format(c=col) + expr.format(c=col))
        if "company" in mapped:
            if policy == ContactImport.Policy.OVERWRITE:
                sets.append(sql.SQL("company_id = COALESCE(EXCLUDED.company_id, p.company_id)"))
            else:
                sets.append(sql.SQL("company_id = COALESCE(p.company_id, EXCLUDED.company_id)"))
        if "attributes" in mapped:
            if policy == ContactImport.Policy.OVERWRITE:
                sets.append(sql.SQL("attributes = p.attributes || EXCLUDED.attributes"))
            else:
                sets.append(
                    sql.SQL("attributes = EXCLUDED.attributes || jsonb_strip_nulls(p.attributes)")
                )
        sets.append(sql.SQL("updated_at = EXCLUDED.updated_at"))
        conflict = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(sets)
    return sql.SQL(
        """
        WITH merged AS (
            INSERT INTO people_person AS p (
                workspace_id, external_id, {text_columns}, company_id, attributes,
                created_at, updated_at
            )
            SELECT %(ws)s, f.target, {insert_values}, c.id,
                   COALESCE(f.attributes, '{{}}'::jsonb), %(now)s, %(now)s
            FROM {final} f
            LEFT JOIN people_company c ON c.workspace_id = %(ws)s AND c.name = f.company
            ON CONFLICT (workspace_id, external_id) {conflict}
            RETURNING p.id, (p.xmax = 0) AS created
        ),
        -- a person just created has no tag yet: a plain INSERT, cheaper than ON CONFLICT
        tagged_new AS (
            INSERT INTO people_persontag (workspace_id, person_id, tag_id, source, created_at)
            SELECT %(ws)s, m.id, t.id, %(source)s, %(now)s
            FROM merged m CROSS JOIN unnest(%(tag_ids)s::bigint[]) AS t(id)
            WHERE m.created
        ),
        tagged_existing AS (
            INSERT INTO people_persontag (workspace_id, person_id, tag_id, source, created_at)
            SELECT %(ws)s, m.id, t.id, %(source)s, %(now)s
            FROM merged m CROSS JOIN unnest(%(tag_ids)s::bigint[]) AS t(id)
            WHERE NOT m.created
            ON CONFLICT (person_id, tag_id) DO NOTHING
        )
        SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created)
        FROM merged
        """
    ).format(
        text_columns=sql.SQL(", ").join(sql.Identifier(c) for c in _TEXT_FIELDS),
        insert_values=sql.SQL(", ").join(insert_values),
        final=sql.Identifier(stage_final),
        conflict=conflict,
    )


def _create_companies(cursor, *, final: str, workspace_id: int, policy: str, now) -> int:
    """Companies named by rows that will set a company, and not there yet."""
    condition = sql.SQL("")
    existing = sql.SQL(
        "SELECT 1 FROM people_person p WHERE p.workspace_id = %(ws)s AND p.external_id = f.target"
    )
    if policy == ContactImport.Policy.SKIP:
        condition = sql.SQL(" AND NOT EXISTS ({})").format(existing)
    elif policy == ContactImport.Policy.FILL_EMPTY:
        condition = sql.SQL(" AND NOT EXISTS ({} AND p.company_id IS NOT NULL)").format(existing)
    cursor.execute(
        sql.SQL(
            "INSERT INTO people_company (workspace_id, name, created_at) "
            "SELECT DISTINCT %(ws)s, f.company, %(now)s::timestamptz FROM {final} f "
            "WHERE f.company IS NOT NULL{condition} "
            "ON CONFLICT (workspace_id, name) DO NOTHING"
        ).format(final=sql.Identifier(final), condition=condition),
        {"ws": workspace_id, "now": now},
    )
    return cursor.rowcount


def _tag_ids(cursor, *, workspace_id: int, names: list[str], now) -> list[int]:
    if not names:
        return []
    cursor.execute(
        "INSERT INTO people_tag (workspace_id, name, created_at) "
        "SELECT %(ws)s, n, %(now)s FROM unnest(%(names)s::text[]) AS n "
        "ON CONFLICT DO NOTHING",
        {"ws": workspace_id, "names": names, "now": now},
    )
    cursor.execute(
        "SELECT id FROM people_tag WHERE workspace_id = %(ws)s AND lower(name) = ANY(%(names)s)",
        {"ws": workspace_id, "names": [n.lower() for n in names]},
    )
    return [row[0] for row in cursor.fetchall()]


def create_attribute_definitions(*, workspace_id: int, columns: list[MappedColumn],
                                 suggested: dict[str, str]) -> list[str]:  # fmt: skip
    """Define the new custom attributes: typed as the user confirmed on the analyze
    screen, marked inferred when that type is the one Herald suggested."""
    new = [c for c in columns if c.target == ATTRIBUTE and c.new]
    AttributeDefinition.objects.bulk_create(
        [
            AttributeDefinition(
                workspace_id=workspace_id,
                key=c.key,
                label=c.header[:150],
                type=c.type,
                inferred=suggested.get(c.key) == c.type,
            )
            for c in new
        ],
        ignore_conflicts=True,
    )
    return [c.key for c in new]


def merge(cursor, *, job: ContactImport, stage_name: str, final_name: str,
          columns: list[MappedColumn], now) -> dict:  # fmt: skip
    """Everything that writes outside TEMP tables. Call inside the job's transaction."""
    options = job.options
    ws = job.workspace_id
    policy = options["policy"]
    clock = time.monotonic()
    timings = {}

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    staging.set_sort_memory(cursor)
    staging.resolve(
        cursor, stage=stage_name, final=final_name, workspace_id=ws, dedupe=options["dedupe"]
    )
    distinct = staging.count_rows(cursor, final_name)
    lap("resolve")
    companies = 0
    mapped = {c.target for c in columns if c.target != IGNORE}
    if "company" in mapped:
        companies = _create_companies(
            cursor, final=final_name, workspace_id=ws, policy=policy, now=now
        )
    lap("companies")
    if ATTRIBUTE in mapped:
        mapped.add("attributes")
    tag_ids = _tag_ids(cursor, workspace_id=ws, names=options.get("tags", []), now=now)
    cursor.execute(
        _merge_sql(stage_final=final_name, policy=policy, mapped=mapped),
        {"ws": ws, "now": now, "tag_ids": tag_ids, "source": TagSource.IMPORT},
    )
    created, updated = cursor.fetchone()
    lap("merge")
    suggested = {
        c["key"]: c.get("type")
        for c in job.analysis.get("suggested", [])
        if c.get("target") == ATTRIBUTE
    }
    attributes = create_attribute_definitions(workspace_id=ws, columns=columns, suggested=suggested)
    logger.info("contact import %s: merge steps (s): %s", job.id, timings)
    return {
        "distinct": distinct,
        "created": created,
        "updated": updated,
        "companies_created": companies,
        "attributes_created": attributes,
    }


def run_import(job: ContactImport, *, now, progress, helpers: int | None = None) -> RunResult:
    """Import the job's file with its confirmed options; returns what was committed.

    The job row itself is marked done inside the merge transaction, so a job that says
    "done" has committed, and one that does not has not.
    """
    options = job.options
    stage_name, final_name = staging.table_names(job.id, "run")
    report = error_report(workspace_id=job.workspace_id, import_id=job.id)
    columns = columns_for(job)
    if helpers is None:
        helpers = helper_count(job.file_size)
    result = RunResult()
    started = time.monotonic()
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # psycopg's own cursor, for COPY
        stage = staging.Stage(cursor, stage_name)
        try:
            stage.create()
            result.rows = stage_file(
                path=media_path(job.file),
                options={**options, "mapping": [c.as_dict() for c in columns]},
                width=len(job.analysis["columns"]),
                stage=stage,
                report=report,
                progress=lambda n: progress(job.id, n),
                helpers=helpers,
                every=PROGRESS_EVERY,
            )
            report.close()
            stage.analyze()
            result.errors = report.count
            result.first_errors = report.first
            staged = stage.rows
            read_seconds = time.monotonic() - started
            ContactImport.objects.filter(pk=job.id).update(
                detail=f"Merging {staged:,} rows into people…"
            )
            with transaction.atomic():
                merged = merge(
                    cursor, job=job, stage_name=stage_name, final_name=final_name,
                    columns=columns, now=now,
                )  # fmt: skip
                result.created = merged["created"]
                result.updated = merged["updated"]
                result.skipped = merged["distinct"] - result.created - result.updated
                result.duplicates = staged - merged["distinct"]
                result.companies_created = merged["companies_created"]
                result.attributes_created = merged["attributes_created"]
                result.tags = list(options.get("tags", []))
                if result.created or result.updated:
                    # people created and attributes and tags changed by the thousand: the
                    # real-time segments re-check whole (set-based, one statement each)
                    record_change(workspace=job.workspace_id, everyone=True, keys=[ANY_RULE])
                finished = job_done(
                    ContactImport.objects.unscoped().filter(pk=job.id),
                    total_rows=result.rows,
                    processed_rows=result.rows,
                    created_count=result.created,
                    updated_count=result.updated,
                    skipped_count=result.skipped,
                    error_count=result.errors,
                    error_report=report.relative if result.errors else "",
                    detail=summary(result),
                    analysis={**job.analysis, "result": result_dict(result)},
                )
                if not finished:
                    raise MergeFailed("the job was changed by someone else while it ran")
            logger.info(
                "contact import %s: %s rows read and staged in %.1f s, merged and committed "
                "in %.1f s",
                job.id, result.rows, read_seconds, time.monotonic() - started - read_seconds,
            )  # fmt: skip
        except BaseException:
            stage.abort()
            report.discard()
            raise
        finally:
            staging.drop_quietly(cursor, stage_name, final_name)
    return result


def result_dict(result: RunResult) -> dict:
    return {
        "rows": result.rows,
        "created": result.created,
        "updated": result.updated,
        "skipped": result.skipped,
        "duplicates": result.duplicates,
        "errors": result.errors,
        "companies_created": result.companies_created,
        "attributes_created": result.attributes_created or [],
        "tags": result.tags or [],
        "first_errors": result.first_errors or [],
    }


def summary(result: RunResult) -> str:
    parts = [f"{result.created:,} created", f"{result.updated:,} updated"]
    if result.skipped:
        parts.append(f"{result.skipped:,} existing skipped")
    if result.duplicates:
        parts.append(f"{result.duplicates:,} repeated rows merged")
    parts.append(f"{result.errors:,} rows in error (not imported)")
    return "Imported: " + ", ".join(parts) + "."

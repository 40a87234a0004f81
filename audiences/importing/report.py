"""The error report of an audience import: a CSV of (line, reason, raw line), in file order.

The same columns as the contact import's report. Every cell a spreadsheet would run as a
formula (= + - @, or a leading tab or carriage return) is escaped with a leading ', so
opening the report is safe. The rows come from the staging tables through a server-side
cursor, so a file of a million unmatched rows is reported in bounded memory; the report is
written beside its final name and moved into place, so nobody reads half of one.
"""

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404

from audiences.models import AudienceImport

FIRST_PROBLEMS = 20
RAW_MAX = 2000  # characters of a raw line written to the report
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def media_path(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def report_relative_path(*, workspace_id: int, import_id: int) -> str:
    return f"audience-imports/{workspace_id}/{import_id}-errors.csv"


def escape_cell(value: str) -> str:
    if value and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    """The cell as it stood in the file (for the HTML page, which escapes it itself)."""
    if value.startswith("'") and value[1:].startswith(_FORMULA_START):
        return value[1:]
    return value


def unmatched_reason(noun: str, repeats: int) -> str:
    reason = f"no person in this workspace has this {noun}"
    if repeats > 1:
        more = repeats - 1
        reason += f" (repeated on {more:,} more line{'s' if more > 1 else ''})"
    return reason


def write_report(cursor_factory, query, *, relative: str, noun: str) -> int:
    """Stream the rows of `query` (line, raw, reason or NULL for unmatched, repeats) into
    the report at `relative`; returns how many rows it holds. Needs a transaction (the
    rows come through a server-side cursor)."""
    path = media_path(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    count = 0
    try:
        with open(partial, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["line", "reason", "raw"])
            with cursor_factory("audience_import_problems") as cursor:
                cursor.itersize = 5000
                cursor.execute(query)
                for line, raw, reason, repeats in cursor:
                    raw = raw or ""
                    if len(raw) > RAW_MAX:
                        raw = raw[:RAW_MAX] + "…"
                    reason = reason or unmatched_reason(noun, repeats)
                    writer.writerow([line, escape_cell(reason), escape_cell(raw)])
                    count += 1
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str
    raw: str


def report_path(job: AudienceImport) -> Path | None:
    if not job.error_report:
        return None
    path = media_path(job.error_report)
    return path if path.is_file() else None


def report_response(job: AudienceImport) -> FileResponse:
    """The job's error report as a CSV download (the page's link and the API's), or 404."""
    path = report_path(job)
    if path is None:
        raise Http404("This import has no error report.")
    return FileResponse(
        open(path, "rb"),  # noqa: SIM115 - closed by FileResponse
        as_attachment=True,
        filename=f"audience-import-{job.pk}-errors.csv",
        content_type="text/csv; charset=utf-8",
    )


def first_problems(job: AudienceImport, limit: int = FIRST_PROBLEMS) -> list[Problem]:
    """The first rows of the job's error report, as they stood in the file."""
    path = report_path(job)
    if path is None:
        return []
    problems = []
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows, None)  # the header
        for row in rows:
            if len(row) != 3:
                continue
            line, reason, raw = row
            problems.append(Problem(int(line), unescape_cell(reason), unescape_cell(raw)))
            if len(problems) >= limit:
                break
    return problems

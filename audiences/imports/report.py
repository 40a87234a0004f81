"""The error report of an audience import: the job kernel's line-numbered CSV of (line,
reason, raw line), in file order, with the same columns as the contact import's.

The rows come from the staging tables through a server-side cursor, so a file of a
million unmatched rows is reported in bounded memory; the kernel's ErrorReport escapes the
formula cells and moves the file into place once written, so nobody reads half of one.
"""

from django.http import FileResponse, Http404

from accounts.jobs import ErrorReport, ReportRow, media_path, report_rows
from audiences.models import AudienceImport

FIRST_PROBLEMS = 20


def report_relative_path(*, workspace_id: int, import_id: int) -> str:
    return f"audience-imports/{workspace_id}/{import_id}-errors.csv"


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
    with ErrorReport(relative) as report, cursor_factory("audience_import_problems") as cursor:
        cursor.itersize = 5000
        cursor.execute(query)
        for line, raw, reason, repeats in cursor:
            report.add(line, reason or unmatched_reason(noun, repeats), raw or "")
    return report.count


def report_response(job: AudienceImport) -> FileResponse:
    """The job's error report as a CSV download (the page's link and the API's), or 404."""
    path = media_path(job.error_report) if job.error_report else None
    if path is None or not path.is_file():
        raise Http404("This import has no error report.")
    return FileResponse(
        open(path, "rb"),  # noqa: SIM115 - closed by FileResponse
        as_attachment=True,
        filename=f"audience-import-{job.pk}-errors.csv",
        content_type="text/csv; charset=utf-8",
    )


def first_problems(job: AudienceImport, limit: int = FIRST_PROBLEMS) -> list[ReportRow]:
    """The first rows of the job's error report, as they stood in the file."""
    return report_rows(job.error_report, limit=limit)

"""Where the contact import's error report is kept; the report itself (line, reason, raw
line, written as rows fail, formula cells escaped) is the job kernel's ErrorReport."""

from accounts.jobs import ErrorReport

KEEP_FIRST = 100  # errors kept in memory to show on the analyze screen


def report_relative_path(*, workspace_id: int, import_id: int) -> str:
    return f"imports/{workspace_id}/{import_id}-errors.csv"


def error_report(*, workspace_id: int, import_id: int) -> ErrorReport:
    """A new error report for the import, keeping the first errors for the screen."""
    relative = report_relative_path(workspace_id=workspace_id, import_id=import_id)
    return ErrorReport(relative, keep_first=KEEP_FIRST)

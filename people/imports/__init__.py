"""Contact import from CSV: upload -> analyze -> confirm -> one Celery job.

    source.py    sniffing (encoding, separator, header) and the streamed, bounded reader
    rows.py      column mapping and the per-row check that turns a CSV row into a staging row
    staging.py   the TEMP staging tables (COPY) and the set-based dedupe/resolution SQL
    analyze.py   what the analyze screen shows: preview, suggested mapping, counts
    run.py       the import itself: stream -> COPY -> one merge transaction
    report.py    where the downloadable error report (line, reason, raw line) is kept
    services.py  the use cases called by views and tasks

The job row, its claim, attempt lock, progress and failure, the stored upload and the
error report writer are the job kernel's (accounts/jobs.py); this package keeps the
import's own stages and messages.

All or nothing, decided here once: a row in error (bad email, bad phone, wrong-typed
attribute, ragged row, formula cell, over-long line...) is listed with its line number and
reason on the analyze screen and in the error report, and is not imported; every other row
is imported by ONE transaction. A job that fails or is interrupted changes nothing, because
nothing but TEMP tables is written before that transaction.

Built on PostgreSQL: COPY, jsonb merge operators, advisory locks.
"""

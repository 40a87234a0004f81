"""Audience CSV import (Audiences -> Import audiences; POST /api/v1/audiences/imports).

    reader.py   the file's encoding and separator, then its rows, streamed and checked
    merge.py    the TEMP staging tables and the set-based SQL of the one merge transaction
    run.py      one job: stream -> COPY -> one transaction (or, for a dry run, the same
                analysis read-only) -> the job row marked done in that same transaction
    report.py   the downloadable error report (line, reason, raw line) and its first rows
    uploads.py  the upload size limit, enforced while the request body is read

The job row, its claim, attempt lock, progress and failure, the stored upload and the
error report writer are the job kernel's (accounts/jobs.py); this package keeps the
import's own reading, merging and messages.

The file format is shared/API.md's ("Target audiences"): `single` mode holds one
identifier per line, `per_row` mode `identifier;audience name`. Separator `;`, or `,` or
tab when the file clearly uses one of them. Blank lines, surrounding spaces, a trailing
`;` or `.` on a line and a UTF-8 BOM are tolerated; UTF-16/UTF-32 with a BOM (Excel's
"Unicode text") is read as such; any other encoding is refused with the encoding the file
looks like.

All or nothing: nothing but TEMP tables is written before the merge transaction, and the
job row is marked done inside it, so a job that fails or dies changed nothing.
"""

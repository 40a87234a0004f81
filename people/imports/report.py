"""The error report of an import: a CSV of (line, reason, raw line), written as rows fail.

Every cell that a spreadsheet would run as a formula (= + - @, or a leading tab or
carriage return) is escaped with a leading ' so opening the report is safe.
"""

import csv
import os
from pathlib import Path

from django.conf import settings

KEEP_FIRST = 100  # errors kept in memory to show on the analyze screen
MAX_RAW = 2000  # characters of the raw line written to the report

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: str) -> str:
    if value and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def report_relative_path(*, workspace_id: int, import_id: int) -> str:
    return f"imports/{workspace_id}/{import_id}-errors.csv"


def media_path(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


class ErrorReport:
    """Streams errors to <MEDIA_ROOT>/<relative>; keeps the first KEEP_FIRST in memory.

    The file is written beside its final name and moved into place by close(), so a
    reader never sees half a report.
    """

    def __init__(self, relative: str):
        self.relative = relative
        self.path = media_path(relative)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(self.path.name + ".part")
        self._file = open(self._partial, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(["line", "reason", "raw"])
        self.count = 0
        self.first: list[dict] = []

    def add(self, line: int, reason: str, raw: str) -> None:
        self.count += 1
        if len(self.first) < KEEP_FIRST:
            self.first.append({"line": line, "reason": reason})
        if len(raw) > MAX_RAW:
            raw = raw[:MAX_RAW] + "…"
        self._writer.writerow([line, escape_cell(reason), escape_cell(raw)])

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        os.replace(self._partial, self.path)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._partial.unlink(missing_ok=True)

"""CSV-safe writing: the one rule for which cells of a CSV a spreadsheet would run, used by
every export and report (the People and audience downloads, the imports' error reports,
the admin's exports).

Excel, LibreOffice and Google Sheets read a cell starting with = + - @ | or % as a formula
(or a DDE call). Such a cell is written with a leading ' and every | in it as \\|, which
breaks a DDE call, so the file opens as text. defusedcsv applies that rule, except to a
cell starting with a tab or carriage return, which spreadsheets strip before reading a
formula: those are escaped the same way here.

A phone number in E.164 (+447700900123) is not escaped: nothing but digits follows its +,
so no spreadsheet can run it, and the ' would end up in the phone column.

defusedcsv also leaves numbers alone ("-12.5", and number values). Our downloads and
reports escape a negative number too ("-1" -> "'-1"); only an export that is read back as
data (the admin's, which django-import-export imports again) keeps numbers as they are,
with `keep_numbers`.
"""

import csv
import re
from numbers import Number

# defusedcsv's rule for one cell: the function its own writer applies to every cell. The
# streamed downloads escape their cells one by one, so the rule is applied here per cell
# and SafeWriter writes with the stdlib writer: each cell goes through it exactly once.
from defusedcsv.csv import _escape as _defusedcsv_escape

_ESCAPE = "'"
_BLANK_START = ("\t", "\r")  # stripped by spreadsheets, then the cell is read as a formula
_NUMBER = re.compile(r"-?[0-9,.]+")  # what defusedcsv leaves alone as a number
# A phone number in E.164 (+447700900123): a + followed only by digits cannot call
# anything (a formula needs an operator, a name or a reference), so it stays as it is.
_E164 = re.compile(r"\+[0-9]{1,20}")


def escape_cell(value, *, keep_numbers: bool = False) -> str:
    """`value` as a CSV cell that no spreadsheet runs ("" for None)."""
    if value is None:
        return ""
    if keep_numbers and isinstance(value, Number):
        return str(value)
    text = str(value)
    if _E164.fullmatch(text):
        return text
    if text.startswith(_BLANK_START) or (
        not keep_numbers and text.startswith("-") and _NUMBER.fullmatch(text)
    ):
        return _ESCAPE + text.replace("|", "\\|")  # the shape defusedcsv gives the others
    return _defusedcsv_escape(text)


def unescape_cell(cell: str) -> str:
    """The value a cell escaped by escape_cell stood for (for a page that shows a report's
    cells as they were in the imported file, and escapes HTML itself)."""
    if cell.startswith(_ESCAPE):
        value = cell[len(_ESCAPE) :].replace("\\|", "|")
        if escape_cell(value) == cell:
            return value
    return cell


class SafeWriter:
    """A csv.writer whose every cell goes through escape_cell."""

    def __init__(self, file, *, keep_numbers: bool = False, **fmtparams):
        self._writer = csv.writer(file, **fmtparams)
        self._keep_numbers = keep_numbers

    def writerow(self, row):
        keep = self._keep_numbers
        return self._writer.writerow([escape_cell(cell, keep_numbers=keep) for cell in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def writer(file, *, keep_numbers: bool = False, **fmtparams) -> SafeWriter:
    """csv.writer(file, **fmtparams) writing CSV-safe cells."""
    return SafeWriter(file, keep_numbers=keep_numbers, **fmtparams)


class Echo:
    """A file-like object for a CSV writer that hands each written row back instead of
    keeping it, so a StreamingHttpResponse can yield rows one by one."""

    def write(self, value):
        return value

"""The one CSV-safe writer (accounts/csv_safe.py) that every export and job report uses."""

import csv
import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.csv_safe import Echo, escape_cell, unescape_cell, writer

FORMULA_START = ("=", "+", "-", "@", "|", "%", "\t", "\r")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+cmd", "'+cmd"),
        ("+447700900123", "+447700900123"),  # a phone number: + and digits run nothing
        ("+44 7700 900123", "'+44 7700 900123"),  # anything else after the + is escaped
        ("+1+1", "'+1+1"),
        ("+1e3", "'+1e3"),
        ("-1+2", "'-1+2"),
        ("-1", "'-1"),  # our downloads and reports escape negative numbers too
        ("@SUM(A1)", "'@SUM(A1)"),
        ("%x", "'%x"),
        ("|x", "'\\|x"),
        ("=cmd|' /C calc'!A0", "'=cmd\\|' /C calc'!A0"),  # a DDE call is broken too
        ("\t=1+2", "'\t=1+2"),  # spreadsheets strip a leading tab or CR: defusedcsv does not
        ("\r=1+2", "'\r=1+2"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("12.5", "12.5"),
        ("", ""),
        (None, ""),
        (7, "7"),
        (-7, "'-7"),
    ],
)
def test_escape_cell(value, cell):
    assert escape_cell(value) == cell


@pytest.mark.parametrize(
    ("value", "cell"),
    [("-12.5", "-12.5"), (-3, "-3"), (-1e-05, "-1e-05"), ("-1+2", "'-1+2"), ("\t-1", "'\t-1")],
)
def test_an_export_read_back_as_data_keeps_its_numbers(value, cell):
    assert escape_cell(value, keep_numbers=True) == cell


@given(st.text())
def test_no_escaped_cell_starts_like_a_formula_and_every_one_reads_back(text):
    cell = escape_cell(text)
    # only a phone number in E.164 starts with + (nothing but digits follows it)
    assert not cell.startswith(FORMULA_START) or re.fullmatch(r"\+[0-9]{1,20}", cell)
    if not text.startswith("'"):
        assert unescape_cell(cell) == text


def test_the_writer_writes_escaped_cells_and_streams_through_echo():
    row = ["=1+1", -1, None, "a,b", "\tx", 5]
    stream = io.StringIO()
    writer(stream).writerow(row)
    expected = io.StringIO()
    csv.writer(expected).writerow([escape_cell(v) for v in row])
    assert stream.getvalue() == expected.getvalue() == "'=1+1,'-1,,\"a,b\",'\tx,5\r\n"
    assert writer(Echo()).writerow(row) == stream.getvalue()  # each row handed back
    assert list(csv.reader(io.StringIO(stream.getvalue())))[0][0] == "'=1+1"

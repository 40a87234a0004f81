"""Audience CSV import: the file format of shared/API.md, every bad input of the issue,
dedupe, idempotence, replace, dry run, all or nothing, restarts, the report, the task."""

import csv
import io
import tracemalloc
from pathlib import Path

import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from accounts.audit import Actor
from accounts.jobs import JobStatus, media_path
from audiences import import_services
from audiences.import_services import (
    ImportTooLarge,
    audience_import_repeat,
    audience_import_run,
    audience_import_start,
)
from audiences.imports import merge, reader
from audiences.imports.reader import choose_separator, looks_like_header
from audiences.imports.report import first_problems
from audiences.imports.run import run_job
from audiences.models import AudienceImport, AudienceMember, MemberSource, TargetAudience
from audiences.services import audience_add_people, audience_create
from people.models import Person
from tests.factories import PersonFactory

DATA = Path("/work/shared/data")
if not DATA.exists():  # a checkout elsewhere keeps a copy beside the tests
    DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PER_ROW_EXAMPLE = (DATA / "audience_per_row_example.csv").read_bytes()
SINGLE_EXAMPLE = (DATA / "audience_single_example.csv").read_bytes()

pytestmark = pytest.mark.django_db


def start(ws, content: bytes, *, mode="per_row", identifier="external_id", audience="",
          replace=False, dry_run=False, name="audiences.csv") -> AudienceImport:  # fmt: skip
    return audience_import_start(
        workspace=ws,
        uploaded_by=None,
        file=SimpleUploadedFile(name, content, content_type="text/csv"),
        mode=mode,
        identifier=identifier,
        audience_name=audience,
        replace=replace,
        dry_run=dry_run,
        actor=Actor(system="tests"),
    )


def run(job: AudienceImport) -> AudienceImport:
    return audience_import_run(import_id=job.id)


def imported(ws, content: bytes, **options) -> AudienceImport:
    return run(start(ws, content, **options))


def members(ws, name: str) -> set[str]:
    return set(
        AudienceMember.objects.filter(workspace=ws, audience__name__iexact=name).values_list(
            "person__external_id", flat=True
        )
    )


def counts(ws) -> dict[str, int]:
    return dict(TargetAudience.objects.for_workspace(ws).values_list("name", "people_count"))


def report_rows(job: AudienceImport) -> list[list[str]]:
    text = media_path(job.error_report).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["line", "reason", "raw"]
    return rows[1:]


def other_connection() -> psycopg.Connection:
    """A second, autocommit connection to the test database (another worker or user)."""
    settings_dict = connection.settings_dict
    return psycopg.connect(
        dbname=settings_dict["NAME"], user=settings_dict["USER"] or None,
        host=settings_dict["HOST"] or None, port=settings_dict["PORT"] or None,
        password=settings_dict["PASSWORD"] or None, autocommit=True,
    )  # fmt: skip


def people(ws, *external_ids, **fields) -> list[Person]:
    return [PersonFactory(workspace=ws, external_id=e, **fields) for e in external_ids]


# --- The two example files ------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["id", "external_id"])
def test_per_row_example_makes_four_audiences_of_one_person(workspace, high_person_ids, identifier):
    for n in (123, 124, 125, 245):
        PersonFactory(workspace=workspace, id=n, external_id=str(n))

    job = imported(workspace, PER_ROW_EXAMPLE, mode="per_row", identifier=identifier)

    assert job.status == JobStatus.DONE, job.detail
    assert (job.total_rows, job.matched, job.unmatched, job.invalid) == (4, 4, 0, 0)
    assert job.audiences_created == ["Audience 1", "Audience 2", "Audience 3", "Audience 4"]
    assert counts(workspace) == {f"Audience {n}": 1 for n in (1, 2, 3, 4)}
    assert members(workspace, "Audience 1") == {"123"}
    assert members(workspace, "Audience 4") == {"245"}
    assert set(AudienceMember.objects.values_list("source", flat=True)) == {MemberSource.IMPORT}
    assert job.error_report == ""


@pytest.mark.parametrize("identifier", ["id", "external_id"])
def test_single_example_with_its_trailing_semicolons_and_dot(
    workspace, high_person_ids, identifier
):
    for n in (123, 124, 125, 245):
        PersonFactory(workspace=workspace, id=n, external_id=str(n))

    job = imported(workspace, SINGLE_EXAMPLE, mode="single", identifier=identifier, audience="VIP")

    assert job.status == JobStatus.DONE, job.detail
    assert (job.total_rows, job.matched, job.invalid) == (4, 4, 0)  # `245.` is read as 245
    assert job.audiences_created == ["VIP"]
    assert members(workspace, "VIP") == {"123", "124", "125", "245"}
    assert counts(workspace) == {"VIP": 4}


def test_single_example_into_an_existing_audience_by_any_case_of_its_name(workspace):
    people(workspace, "123", "124", "125", "245")
    audience_create(workspace=workspace, name="Newsletter", actor=Actor(system="tests"))

    job = imported(workspace, SINGLE_EXAMPLE, mode="single", audience="newsletter")

    assert job.status == JobStatus.DONE
    assert job.audiences_created == []
    assert counts(workspace) == {"Newsletter": 4}


def test_the_per_row_example_in_single_mode_fails_saying_which_mode_to_choose(workspace):
    people(workspace, "123", "124", "125", "245")
    job = imported(workspace, PER_ROW_EXAMPLE, mode="single", audience="VIP")
    assert job.status == JobStatus.FAILED
    assert "choose “each row names its audience”" in job.detail
    assert not TargetAudience.objects.exists()
    assert job.invalid == 4 and len(report_rows(job)) == 4


def test_the_single_example_in_per_row_mode_fails_saying_what_to_do(workspace):
    people(workspace, "123", "124", "125", "245")
    job = imported(workspace, SINGLE_EXAMPLE, mode="per_row")
    assert job.status == JobStatus.FAILED
    assert "No line holds “identifier; audience name”" in job.detail
    assert "choose “one audience for every person in the file”" in job.detail


# --- Tolerated layout -----------------------------------------------------------------


def test_blank_lines_spaces_trailing_punctuation_bom_and_crlf_are_tolerated(workspace):
    people(workspace, "a1", "a2", "a3", "a4", "a5")
    content = (
        "\ufeff\r\n"
        "  a1 ;  Audience 1 ;\r\n"
        "\r\n"
        "a2;Audience 1.\r\n"
        "   \r\n"
        "a3 ;   Audience   1  ;.\r\n"
        '"a4";"Audience 1"\r\n'
        ";\r\n"
        "a5; Audience 1"  # no line end at the end of the file
    ).encode()

    job = imported(workspace, content)

    assert job.status == JobStatus.DONE, job.detail
    assert (job.total_rows, job.matched, job.invalid) == (5, 5, 0)
    assert counts(workspace) == {"Audience 1": 5}


@pytest.mark.parametrize(
    ("lines", "separator"),
    [
        (["1;a", "2;b"], ";"),
        (["1,a", "2,b", "3,c"], ","),
        (["1\ta", "2\tb"], "\t"),
        (["1,a", "2;b"], ";"),  # mixed: `;` is the default
        (['1,"Smith; John"', "2,b"], ","),  # a quoted `;` is not a separator
        (["123", "124"], ";"),
        (["1,a", "2", "3", "4", "5"], ";"),  # a comma on one line in five is not clear use
    ],
)
def test_the_separator_is_semicolon_unless_the_file_clearly_uses_comma_or_tab(lines, separator):
    assert choose_separator(lines) == separator


def test_a_comma_file_and_a_tab_file_import(workspace):
    people(workspace, "c1", "c2")
    job = imported(workspace, b"c1,Commas\nc2,Commas\n")
    assert job.status == JobStatus.DONE and counts(workspace) == {"Commas": 2}
    assert job.detail.endswith("The file was read with commas.")
    job = imported(workspace, b"c1\tTabs\nc2\tTabs\n")
    assert job.status == JobStatus.DONE and counts(workspace)["Tabs"] == 2


def test_a_quoted_audience_name_may_hold_the_separator(workspace):
    people(workspace, "q1")
    job = imported(workspace, b'q1;"Smith; Jones & Co"\n')
    assert job.status == JobStatus.DONE
    assert counts(workspace) == {"Smith; Jones & Co": 1}


@pytest.mark.parametrize("cell", ["email", "External ID", "identifier", "id", "Phone number"])
def test_column_names_look_like_headers(cell):
    assert looks_like_header(cell)


@pytest.mark.parametrize("cell", ["123", "a@b.co", "+447911123456", "user_id_42", "Audience 1"])
def test_values_do_not_look_like_headers(cell):
    assert not looks_like_header(cell)


def test_a_header_line_is_skipped_and_said_so(workspace):
    people(workspace, "h1", "h2", email="")
    Person.objects.filter(external_id="h1").update(email="h1@example.com")
    Person.objects.filter(external_id="h2").update(email="h2@example.com")

    job = imported(
        workspace, b"email\nH1@Example.com\nh2@example.com\n", mode="single", identifier="email",
        audience="Mailing",
    )  # fmt: skip

    assert job.status == JobStatus.DONE, job.detail
    assert (job.total_rows, job.matched, job.invalid) == (2, 2, 0)
    assert "The first line (“email”) was read as a header and skipped" in job.detail


def test_an_external_id_that_someone_has_is_not_taken_for_a_header(workspace):
    people(workspace, "identifier", "x2")
    job = imported(workspace, b"identifier;Odd\nx2;Odd\n")
    assert job.status == JobStatus.DONE
    assert members(workspace, "Odd") == {"identifier", "x2"}


def test_a_per_row_header_with_two_column_names_is_skipped(workspace):
    people(workspace, "p1")
    job = imported(workspace, b"external_id;audience\np1;Audience 1\n")
    assert job.status == JobStatus.DONE
    assert job.total_rows == 1 and counts(workspace) == {"Audience 1": 1}


# --- Bad input, each refused or reported, none half-applied ----------------------------

CYRILLIC = "".join(f"{n};Покупатели из Москвы {n % 3}\n" for n in range(1, 40))


def test_a_cp1251_file_is_refused_naming_its_encoding(workspace):
    with pytest.raises(ValidationError) as e:
        start(workspace, CYRILLIC.encode("cp1251"))
    message = e.value.message_dict["file"][0]
    assert message.startswith("The file is not UTF-8: it looks like Windows-1251 (Cyrillic).")
    assert "Save it as UTF-8" in message
    assert not AudienceImport.objects.exists()
    assert not list(Path(media_path("audience-imports")).rglob("*.csv"))


def test_a_file_that_turns_to_cp1251_after_its_first_64_kb_fails_naming_the_line(workspace):
    people(workspace, "1")
    ascii_part = b"".join(b"%d;Audience 1\n" % n for n in range(1, 7001))  # > 64 KB
    assert len(ascii_part) > reader.SAMPLE_BYTES
    job = imported(workspace, ascii_part + CYRILLIC.encode("cp1251"))
    assert job.status == JobStatus.FAILED
    assert job.detail.startswith("The file is not UTF-8 (line 7,001): it looks like Windows-1251")
    assert not TargetAudience.objects.exists()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_utf16_file_is_read_correctly(workspace, encoding):
    """Excel's "Unicode text": UTF-16 with a BOM, tab-separated."""
    people(workspace, "1", "2", "3")
    text = "1\tПокупатели\n2\tПокупатели\n3\tКлиенты Москвы\n"
    job = imported(workspace, text.encode(encoding))
    assert job.status == JobStatus.DONE, job.detail
    assert counts(workspace) == {"Покупатели": 2, "Клиенты Москвы": 1}
    assert f"The file was read as {encoding.upper()[:6]}" in job.detail
    assert job.detail.endswith("with tabs.")


def test_nul_bytes_at_the_start_refuse_the_file(workspace):
    with pytest.raises(ValidationError) as e:
        start(workspace, b"a1;Audience\n\x00\x01\x02\x03binary\n")
    assert "not a CSV text file" in e.value.message_dict["file"][0]


def test_a_nul_byte_further_down_is_one_invalid_line(workspace):
    people(workspace, "n1", "n2")
    padding = b"\n" * (reader.SAMPLE_BYTES + 10)  # blank lines: the NUL is past the sample
    job = imported(workspace, b"n1;Audience 1\n" + padding + b"n\x002;Audience 1\nn2;Audience 1\n")
    assert job.status == JobStatus.DONE, job.detail
    assert (job.matched, job.invalid) == (2, 1)
    [[line, reason, raw]] = report_rows(job)
    assert int(line) == reader.SAMPLE_BYTES + 12
    assert "NUL byte" in reason and raw == "n\ufffd2;Audience 1"


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10, "a PNG image"),
        (b"PK\x03\x04" + bytes(range(256)) * 10, "an Excel workbook"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 10, "a PDF document"),
        (bytes(range(256)) * 40, "not a CSV text file"),
    ],
)
def test_a_binary_file_named_csv_is_refused_saying_what_it_is(workspace, content, what):
    with pytest.raises(ValidationError) as e:
        start(workspace, content, name="audiences.csv")
    assert what in e.value.message_dict["file"][0]


def test_a_10_mb_single_line_is_one_invalid_line_and_the_rest_imports(workspace):
    people(workspace, "ok")
    content = b"x" * (10 * 1024 * 1024) + b";Audience 1\nok;Audience 1\n"
    job = imported(workspace, content)
    assert job.status == JobStatus.DONE, job.detail
    assert (job.total_rows, job.matched, job.invalid) == (2, 1, 1)
    [[line, reason, raw]] = report_rows(job)
    assert line == "1" and "longer than 1 MB" in reason and len(raw) < 2100


def test_a_file_that_is_one_10_mb_line_fails_saying_why(workspace):
    job = imported(workspace, b"1" * (10 * 1024 * 1024), mode="single", identifier="id",
                   audience="Big")  # fmt: skip
    assert job.status == JobStatus.FAILED
    assert "No line of the file could be read" in job.detail and "longer than 1 MB" in job.detail
    assert not TargetAudience.objects.exists()


def test_an_empty_file_is_refused(workspace):
    with pytest.raises(ValidationError) as e:
        start(workspace, b"")
    assert e.value.message_dict["file"] == ["The file is empty: it needs one identifier per line."]


def test_a_file_of_blank_lines_fails(workspace):
    job = imported(workspace, b"\n \n\t\n;\n")
    assert job.status == JobStatus.FAILED
    assert job.detail == "The file holds no identifiers: every line is blank."


def test_a_header_only_file_fails_saying_so(workspace):
    job = imported(workspace, b"email\n", mode="single", identifier="email", audience="X")
    assert job.status == JobStatus.FAILED
    assert job.detail == "The file holds only a header line (“email”) and no identifiers."
    assert not TargetAudience.objects.exists()


def test_mixed_separators_report_the_lines_that_use_the_other_one(workspace):
    people(workspace, "m1", "m2", "m3")
    job = imported(workspace, b"m1;Audience 1\nm2,Audience 1\nm3;Audience 1\n")
    assert job.status == JobStatus.DONE
    assert (job.matched, job.invalid) == (2, 1)
    [[line, reason, raw]] = report_rows(job)
    assert line == "2" and raw == "m2,Audience 1"
    assert "no “;” on the line (this line seems to use “,” instead)" in reason


def test_duplicates_count_once(workspace):
    people(workspace, "d1", "d2")
    Person.objects.filter(external_id="d1").update(email="d1@example.com")
    content = (
        b"d1@example.com\nD1@EXAMPLE.COM\n d1@example.com \nnobody@example.com\n"
        b"nobody@example.com\n"
    )

    job = imported(workspace, content, mode="single", identifier="email", audience="Dup")

    assert job.status == JobStatus.DONE
    assert (job.total_rows, job.matched, job.unmatched, job.invalid) == (5, 1, 1, 0)
    assert "3 repeated lines counted once" in job.detail
    assert counts(workspace) == {"Dup": 1}
    [[line, reason, raw]] = report_rows(job)
    assert line == "4" and raw == "nobody@example.com"
    assert reason == "no person in this workspace has this email address (repeated on 1 more line)"


def test_a_file_of_emails_imported_as_herald_ids_fails_naming_the_right_type(workspace):
    people(workspace, "e1")
    job = imported(workspace, b"a@example.com\nb@example.com\n", mode="single", identifier="id",
                   audience="Wrong")  # fmt: skip
    assert job.status == JobStatus.FAILED
    assert job.detail == (
        "No line holds a Herald id: they look like email addresses. Choose the identifier "
        "“Email” and import the file again."
    )
    assert not TargetAudience.objects.exists()
    assert (
        "it looks like an email address: choose the identifier “Email”"
        in first_problems(job)[0].reason
    )


def test_a_few_wrong_typed_identifiers_are_reported_with_a_hint(workspace, high_person_ids):
    PersonFactory(workspace=workspace, id=5001)
    job = imported(workspace, b"5001\n+44 7911 123456\n", mode="single", identifier="id",
                   audience="Ids")  # fmt: skip
    assert job.status == JobStatus.DONE
    assert (job.matched, job.invalid) == (1, 1)
    [[_, reason, _]] = report_rows(job)
    assert reason.startswith("“+44 7911 123456” is not a Herald id (a whole number)")
    assert "it looks like a phone number: choose the identifier “Phone”" in reason


def test_formula_cells_are_escaped_in_the_error_report(workspace):
    people(workspace, "f1")
    content = (
        b'f1;Audience 1\n=HYPERLINK("http://evil.test","x");Audience 1\n@SUM(A1);Audience 1\n'
        b"+cmd;Audience 1\n-2+3;Audience 1\n"
    )
    job = imported(workspace, content)
    assert job.status == JobStatus.DONE
    raws = [raw for _, _, raw in report_rows(job)]
    assert raws == [
        '\'=HYPERLINK("http://evil.test","x");Audience 1',
        "'@SUM(A1);Audience 1",
        "'+cmd;Audience 1",
        "'-2+3;Audience 1",
    ]
    # the page shows them as they stood in the file
    assert [p.raw for p in first_problems(job)][
        0
    ] == '=HYPERLINK("http://evil.test","x");Audience 1'


def test_a_200_mb_file_streams_in_bounded_memory(workspace, tmp_path):
    people(workspace, "first", "last")
    path = tmp_path / "big.csv"
    blank = b" " * 100_000 + b"\n"
    with open(path, "wb") as f:
        f.write(b"first;Audience 1\n")
        for _ in range(2000):
            f.write(blank)
        f.write(b"last;Audience 1\n")
    assert path.stat().st_size > 200 * 1000 * 1000

    tracemalloc.start()
    try:
        with open(path, "rb") as f:
            job = audience_import_start(
                workspace=workspace, uploaded_by=None, file=File(f, name="big.csv"),
                mode="per_row", identifier="external_id", actor=Actor(system="tests")
            )  # fmt: skip
        job = run(job)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert job.status == JobStatus.DONE, job.detail
    assert job.matched == 2 and counts(workspace) == {"Audience 1": 2}
    assert peak < 30 * 1024 * 1024, f"peak {peak / 2**20:.0f} MB"


def test_a_file_over_the_upload_limit_is_refused_with_its_size(workspace, settings):
    settings.AUDIENCE_IMPORT_MAX_BYTES = 1024 * 1024
    with pytest.raises(ImportTooLarge) as e:
        start(workspace, b"1;a\n" * 300_000)
    assert e.value.message_dict["file"][0] == (
        "The file is 1.1 MB; audience imports take files up to 1 MB. Split it into smaller "
        "files and import each one (in “replace” mode, import the first file with “replace” "
        "and the others with “add”)."
    )
    assert not AudienceImport.objects.exists()


def test_a_streamed_file_over_the_limit_leaves_nothing_on_disk(workspace, settings, tmp_path):
    settings.AUDIENCE_IMPORT_MAX_BYTES = 1024 * 1024

    class Unsized(File):
        size = None  # a stream whose size is only known once read

    path = tmp_path / "big.csv"
    path.write_bytes(b"1;a\n" * 300_000)
    with open(path, "rb") as f, pytest.raises(ImportTooLarge):
        audience_import_start(
            workspace=workspace, uploaded_by=None, file=Unsized(f, name="big.csv"),
            mode="per_row", identifier="id", actor=Actor(system="tests")
        )  # fmt: skip
    assert not list(Path(media_path("audience-imports")).rglob("*.csv"))


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"mode": "both"}, "mode", "“both” is not a mode"),
        ({"identifier": "uuid"}, "identifier", "“uuid” is not an identifier type"),
        ({"mode": "single", "audience": " "}, "audience", "Name the audience"),
        ({"mode": "single", "audience": "x" * 201}, "audience", "at most 200 characters"),
        ({"mode": "per_row", "audience": "VIP"}, "audience", "leave `audience` out"),
    ],
)
def test_bad_options_are_refused_by_field(workspace, options, field, message):
    with pytest.raises(ValidationError) as e:
        start(workspace, b"1\n", **options)
    assert message in e.value.message_dict[field][0]
    assert not AudienceImport.objects.exists()


# --- Matching ---------------------------------------------------------------------------


def test_emails_match_whatever_their_case_and_phones_whatever_their_format(workspace):
    ann, bob = people(workspace, "ann", "bob")
    Person.objects.filter(pk=ann.pk).update(email="ann@example.com", phone="+447911123456")
    Person.objects.filter(pk=bob.pk).update(email="bob@example.com", phone="+33612345678")

    job = imported(workspace, b"ANN@Example.COM\nbob@example.com\n", mode="single",
                   identifier="email", audience="By email")  # fmt: skip
    assert job.status == JobStatus.DONE and job.matched == 2

    content = b"+44 7911 123456\n0033 6 12 34 56 78\n+33612345678\n07911 123456\n"
    job = imported(workspace, content, mode="single", identifier="phone", audience="By phone")
    assert job.status == JobStatus.DONE
    assert (job.matched, job.invalid) == (2, 1)  # a number without its country code
    assert "country code" in report_rows(job)[0][1]
    assert members(workspace, "By phone") == {"ann", "bob"}


def test_people_of_another_workspace_never_match(workspace, other_workspace):
    people(other_workspace, "shared")
    job = imported(workspace, b"shared;Audience 1\n")
    assert job.status == JobStatus.DONE
    assert (job.matched, job.unmatched) == (0, 1)
    assert not AudienceMember.objects.exists()
    assert not TargetAudience.objects.for_workspace(other_workspace).exists()


def test_audience_names_match_case_insensitively_and_take_the_first_spelling(workspace):
    people(workspace, "a", "b", "c")
    audience_create(workspace=workspace, name="Existing", actor=Actor(system="tests"))
    job = imported(workspace, b"a;existing\nb;New  one\nc;NEW ONE\n")
    assert job.audiences_created == ["New one"]
    assert counts(workspace) == {"Existing": 1, "New one": 2}


def test_a_per_row_line_without_audience_name_says_so(workspace):
    people(workspace, "a")
    job = imported(workspace, b"a;\na;Fine\n")
    assert (job.matched, job.invalid) == (1, 1)
    assert report_rows(job) == [["1", "there is no audience name after the identifier", "a;"]]


def test_a_row_with_an_over_long_audience_name_is_invalid(workspace):
    people(workspace, "a")
    job = imported(workspace, b"a;" + b"n" * 201 + b"\na;Fine\n")
    assert (job.matched, job.invalid) == (1, 1)
    assert "201 characters; the longest is 200" in report_rows(job)[0][1]


# --- Idempotence, replace, dry run ----------------------------------------------------


def test_importing_the_same_file_again_changes_nothing(workspace):
    people(workspace, "123", "124", "125", "245")
    first = imported(workspace, PER_ROW_EXAMPLE)
    before = sorted(AudienceMember.objects.values_list("audience__name", "person_id", "added_at"))

    again = imported(workspace, PER_ROW_EXAMPLE)

    assert again.status == JobStatus.DONE
    assert again.audiences_created == [] and again.matched == first.matched
    assert "nothing changed" in again.detail
    after = sorted(AudienceMember.objects.values_list("audience__name", "person_id", "added_at"))
    assert after == before
    assert TargetAudience.objects.count() == 4


def test_replace_leaves_exactly_the_people_of_the_file(workspace):
    a, b, c, d = people(workspace, "a", "b", "c", "d")
    vip = audience_create(workspace=workspace, name="VIP", actor=Actor(system="tests"))
    audience_add_people(
        audience=vip,
        people=Person.objects.filter(pk__in=[a.pk, b.pk, c.pk]),
        actor=Actor(system="tests"),
    )

    job = imported(workspace, b"b\nd\nnobody\n", mode="single", audience="VIP", replace=True)

    assert job.status == JobStatus.DONE
    assert members(workspace, "VIP") == {"b", "d"}
    assert counts(workspace) == {"VIP": 2}
    assert "added 1 person to “VIP” and removed 2" in job.detail


def test_replace_per_row_touches_only_the_audiences_the_file_names(workspace):
    a, b, c = people(workspace, "a", "b", "c")
    one = audience_create(workspace=workspace, name="One", actor=Actor(system="tests"))
    other = audience_create(workspace=workspace, name="Other", actor=Actor(system="tests"))
    audience_add_people(
        audience=one, people=Person.objects.filter(pk__in=[a.pk, b.pk]), actor=Actor(system="tests")
    )
    audience_add_people(
        audience=other,
        people=Person.objects.filter(pk__in=[a.pk, b.pk]),
        actor=Actor(system="tests"),
    )

    job = imported(workspace, b"c;One\n", replace=True)

    assert job.status == JobStatus.DONE
    assert members(workspace, "One") == {"c"}
    assert members(workspace, "Other") == {"a", "b"}


def test_replace_per_row_keeps_every_stored_count_exact(workspace):
    a, b, c, d = people(workspace, "a", "b", "c", "d")
    one = audience_create(workspace=workspace, name="One", actor=Actor(system="tests"))
    two = audience_create(workspace=workspace, name="Two", actor=Actor(system="tests"))
    audience_add_people(
        audience=one,
        people=Person.objects.filter(pk__in=[a.pk, b.pk, c.pk]),
        actor=Actor(system="tests"),
    )
    audience_add_people(
        audience=two, people=Person.objects.filter(pk=a.pk), actor=Actor(system="tests")
    )

    job = imported(workspace, b"d;One\na;One\nb;Two\nc;Two\nd;Two\na;Three\n", replace=True)

    assert job.status == JobStatus.DONE, job.detail
    assert members(workspace, "One") == {"a", "d"}
    assert members(workspace, "Two") == {"b", "c", "d"}
    assert counts(workspace) == {"One": 2, "Two": 3, "Three": 1}
    assert "added 5 memberships, removed 3 and created 1 audience" in job.detail


@pytest.mark.django_db(transaction=True)
def test_members_another_transaction_adds_during_the_merge_are_kept_once(workspace, monkeypatch):
    """The import's insert leaves out existing pairs without ON CONFLICT; a pair that
    another transaction commits meanwhile makes it fall back to ON CONFLICT DO NOTHING."""
    a, b = people(workspace, "a", "b")
    real_create = merge.create_missing_audiences

    def someone_else_creates_it_first(cursor, *args, **kwargs):
        # The People page of another marketer creates "New" and adds b, and commits.
        with other_connection() as other:
            (audience_id,) = other.execute(
                "INSERT INTO audiences_targetaudience "
                "(workspace_id, name, people_count, created_at, updated_at) "
                "VALUES (%s, 'New', 1, now(), now()) RETURNING id",
                [workspace.id],
            ).fetchone()
            other.execute(
                "INSERT INTO audiences_audiencemember "
                "(workspace_id, audience_id, person_id, source, added_at) "
                "VALUES (%s, %s, %s, 'manual', now())",
                [workspace.id, audience_id, b.id],
            )
        return real_create(cursor, *args, **kwargs)

    monkeypatch.setattr(merge, "create_missing_audiences", someone_else_creates_it_first)
    job = imported(workspace, b"a;New\nb;New\n")

    assert job.status == JobStatus.DONE, job.detail
    assert job.audiences_created == []  # the other transaction created it
    assert members(workspace, "New") == {"a", "b"}
    assert counts(workspace) == {"New": 2}
    sources = dict(AudienceMember.objects.values_list("person__external_id", "source"))
    assert sources == {"a": MemberSource.IMPORT, "b": MemberSource.MANUAL}


@pytest.mark.django_db(transaction=True)
def test_an_audience_deleted_during_the_merge_fails_the_import_and_changes_nothing(
    workspace, monkeypatch
):
    a, b = people(workspace, "a", "b")
    old = audience_create(workspace=workspace, name="Old", actor=Actor(system="tests"))
    real_create = merge.create_missing_audiences

    def someone_deletes_old(cursor, *args, **kwargs):
        names = real_create(cursor, *args, **kwargs)
        with other_connection() as other:  # a marketer deletes "Old" meanwhile
            other.execute("DELETE FROM audiences_targetaudience WHERE id = %s", [old.id])
        return names

    monkeypatch.setattr(merge, "create_missing_audiences", someone_deletes_old)
    job = imported(workspace, b"a;Old\nb;New\n")

    assert job.status == JobStatus.FAILED
    assert job.detail == (
        "The audience “Old” was deleted while the file was being imported, so nothing was "
        "changed. Import the file again."
    )
    assert not TargetAudience.objects.exists() and not AudienceMember.objects.exists()


@pytest.mark.django_db(transaction=True)  # the refusal comes while a COPY is in flight
def test_a_file_naming_too_many_audiences_is_refused_and_creates_none(workspace, monkeypatch):
    people(workspace, "a")
    monkeypatch.setattr(reader, "AUDIENCES_MAX", 3)

    job = imported(workspace, b"a;One\na;two\na;One\na;Three\na;Four\n")

    assert job.status == JobStatus.FAILED
    assert job.detail.startswith(
        "The file names more than 3 different audiences (line 5 names one more)."
    )
    assert not TargetAudience.objects.exists()


@pytest.mark.parametrize("dry_run", [True, False])
def test_names_differing_in_case_are_one_audience_as_the_database_compares_them(workspace, dry_run):
    """PostgreSQL's lower() and Python's disagree (İ, final sigma): the database decides,
    as its unique constraint on the name does."""
    people(workspace, "a", "b", "c", "d")
    content = "a;İstanbul\nb;istanbul\nc;ΟΔΟΣ\nd;Οδος\n".encode()

    job = imported(workspace, content, dry_run=dry_run)

    assert job.status == JobStatus.DONE, job.detail
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lower('İstanbul') = lower('istanbul'), lower('ΟΔΟΣ') = lower('Οδος')"
        )
        same_istanbul, same_odos = cursor.fetchone()
    expected = ["İstanbul"] + ([] if same_istanbul else ["istanbul"])
    expected += ["ΟΔΟΣ"] + ([] if same_odos else ["Οδος"])
    assert job.audiences_created == expected
    if not dry_run:
        assert sorted(counts(workspace).values()) == sorted(
            ([2] if same_istanbul else [1, 1]) + ([2] if same_odos else [1, 1])
        )
        assert members(workspace, "İstanbul") == ({"a", "b"} if same_istanbul else {"a"})


def test_replace_per_row_leaves_an_audience_whose_lines_all_match_nobody(workspace):
    a, b = people(workspace, "a", "b")
    one = audience_create(workspace=workspace, name="One", actor=Actor(system="tests"))
    two = audience_create(workspace=workspace, name="Two", actor=Actor(system="tests"))
    audience_add_people(
        audience=one, people=Person.objects.filter(pk=b.pk), actor=Actor(system="tests")
    )
    audience_add_people(
        audience=two, people=Person.objects.filter(pk=b.pk), actor=Actor(system="tests")
    )

    analysis = imported(workspace, b"a;One\nghost;Two\n", replace=True, dry_run=True)
    job = imported(workspace, b"a;One\nghost;Two\n", replace=True)

    assert "remove 1" in analysis.detail
    assert job.status == JobStatus.DONE and "removed 1" in job.detail
    assert members(workspace, "One") == {"a"}
    assert members(workspace, "Two") == {"b"}  # not emptied by a line that matched nobody
    assert counts(workspace) == {"One": 1, "Two": 1}


def test_replace_with_a_file_matching_nobody_replaces_nothing(workspace):
    (a,) = people(workspace, "a")
    vip = audience_create(workspace=workspace, name="VIP", actor=Actor(system="tests"))
    audience_add_people(
        audience=vip, people=Person.objects.filter(pk=a.pk), actor=Actor(system="tests")
    )

    job = imported(workspace, b"x\ny\n", mode="single", audience="VIP", replace=True)

    assert job.status == JobStatus.FAILED
    assert job.detail.startswith("No identifier of the file matches anyone in this workspace")
    assert members(workspace, "VIP") == {"a"}
    assert job.error_report and len(report_rows(job)) == 2


def test_a_dry_run_counts_everything_and_writes_nothing(workspace):
    a, b, _ = people(workspace, "a", "b", "c")
    vip = audience_create(workspace=workspace, name="VIP", actor=Actor(system="tests"))
    audience_add_people(
        audience=vip, people=Person.objects.filter(pk=a.pk), actor=Actor(system="tests")
    )
    content = b"b;VIP\nc;Fresh\nghost;Fresh\nbad;\n"

    dry = imported(workspace, content, replace=True, dry_run=True)

    assert dry.status == JobStatus.DONE and dry.dry_run
    assert (dry.total_rows, dry.matched, dry.unmatched, dry.invalid) == (4, 2, 1, 1)
    assert dry.audiences_created == ["Fresh"]
    assert dry.detail.startswith(
        "Analysis only, nothing was changed: the import would add 2 memberships, remove 1 "
        "and create 1 audience."
    )
    assert [p.line for p in first_problems(dry)] == [3, 4]
    assert counts(workspace) == {"VIP": 1} and members(workspace, "VIP") == {"a"}

    real = run(
        audience_import_repeat(audience_import=dry, uploaded_by=None, actor=Actor(system="tests"))
    )

    assert real.status == JobStatus.DONE and not real.dry_run
    assert (real.matched, real.unmatched, real.invalid) == (dry.matched, dry.unmatched, dry.invalid)
    assert real.audiences_created == ["Fresh"]
    assert counts(workspace) == {"VIP": 1, "Fresh": 1}
    assert members(workspace, "VIP") == {"b"}


def test_only_a_finished_dry_run_can_be_imported_for_real(workspace):
    people(workspace, "a")
    job = imported(workspace, b"a;X\n")
    with pytest.raises(ValidationError):
        audience_import_repeat(audience_import=job, uploaded_by=None, actor=Actor(system="tests"))


# --- All or nothing, restarts -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_merge_that_fails_midway_leaves_the_audiences_as_they_were(workspace, monkeypatch):
    a, b = people(workspace, "a", "b")
    vip = audience_create(workspace=workspace, name="VIP", actor=Actor(system="tests"))
    audience_add_people(
        audience=vip, people=Person.objects.filter(pk=a.pk), actor=Actor(system="tests")
    )
    real_add = merge.add_members

    def add_then_fail(cursor, *args, **kwargs):
        real_add(cursor, *args, **kwargs)  # the audiences exist and the members are in
        cursor.execute("SELECT count(*) FROM audiences_targetaudience")
        assert cursor.fetchone()[0] == 3
        raise RuntimeError("the database went away")

    monkeypatch.setattr(merge, "add_members", add_then_fail)
    job = start(workspace, b"b;New 1\nb;New 2\na;VIP\nb;VIP\n", replace=True)
    with pytest.raises(RuntimeError):
        run(job)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "unexpected error (RuntimeError); nothing was changed" in job.detail
    assert list(TargetAudience.objects.values_list("name", "people_count")) == [("VIP", 1)]
    assert members(workspace, "VIP") == {"a"}


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_job_changes_nothing_and_the_next_delivery_finishes_it(
    workspace, monkeypatch
):
    people(workspace, "123", "124", "125", "245")
    real_counts = merge.apply_counts

    def die(*args, **kwargs):
        raise SystemExit("worker killed")  # not an Exception: nothing marks the job failed

    monkeypatch.setattr(merge, "apply_counts", die)
    job = start(workspace, PER_ROW_EXAMPLE)
    with pytest.raises(SystemExit):
        run(job)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # as a dead worker leaves it
    assert not TargetAudience.objects.exists() and not AudienceMember.objects.exists()

    monkeypatch.setattr(merge, "apply_counts", real_counts)
    job = run(job)  # Celery delivers the message again

    assert job.status == JobStatus.DONE and job.attempts == 2
    assert counts(workspace) == {f"Audience {n}": 1 for n in (1, 2, 3, 4)}


@pytest.mark.django_db(transaction=True)
def test_a_job_that_kills_its_worker_every_time_fails_after_three_deliveries(
    workspace, monkeypatch
):
    people(workspace, "123", "124", "125", "245")

    def die(*args, **kwargs):
        raise SystemExit("worker killed (out of memory)")

    monkeypatch.setattr(merge, "apply_counts", die)
    job = start(workspace, PER_ROW_EXAMPLE)
    for attempt in (1, 2, 3):
        with pytest.raises(SystemExit):
            run(job)
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.RUNNING, attempt)

    job = run(job)  # the fourth delivery gives up instead of dying again

    assert job.status == JobStatus.FAILED and job.attempts == 3
    assert job.detail.startswith(
        "The import stopped its worker 3 times (the worker was killed or restarted while it "
        "ran), so it was given up; nothing was changed. Split the file"
    )
    assert not TargetAudience.objects.exists() and not AudienceMember.objects.exists()
    assert run(job).status == JobStatus.FAILED  # and stays failed


def test_a_job_left_running_by_a_dead_worker_is_run_again_from_scratch(workspace):
    people(workspace, "123", "124", "125", "245")
    job = start(workspace, PER_ROW_EXAMPLE)
    AudienceImport.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, processed_rows=3, detail="Reading the file…"
    )
    job = run(job)
    assert job.status == JobStatus.DONE and job.matched == 4


@pytest.mark.django_db(transaction=True)
def test_a_job_another_live_worker_holds_is_left_alone(workspace):
    people(workspace, "123")
    job = start(workspace, b"123;A\n")
    AudienceImport.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    other = other_connection()
    key = import_services._LOCK_NAMESPACE + job.pk
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [key])
        assert run(job) is None
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and not TargetAudience.objects.exists()
        other.execute("SELECT pg_advisory_unlock(%s)", [key])  # that attempt ends
    finally:
        other.close()
    assert run(job).status == JobStatus.DONE


def test_a_finished_job_delivered_again_is_not_run_again(workspace):
    people(workspace, "123")
    job = imported(workspace, b"123;A\n")
    AudienceMember.objects.all().delete()
    assert run(job).status == JobStatus.DONE
    assert not AudienceMember.objects.exists()


def test_a_deleted_upload_fails_the_job_saying_so(workspace):
    job = start(workspace, b"1;A\n")
    media_path(job.file).unlink()
    job = run(job)
    assert job.status == JobStatus.FAILED
    assert "no longer on the server" in job.detail


# --- Progress, report ----------------------------------------------------------------


def test_progress_moves_in_chunks_outside_the_merge(workspace, monkeypatch):
    people(workspace, *[f"p{n}" for n in range(25)])
    monkeypatch.setattr(reader, "PROGRESS_EVERY", 10)
    job = start(workspace, "".join(f"p{n};Audience 1\n" for n in range(25)).encode())
    AudienceImport.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    job.refresh_from_db()
    seen = []
    run_job(job, progress=lambda import_id, n: seen.append(n))
    assert seen == [10, 20, 25]


def test_the_error_report_lists_every_problem_in_file_order(workspace):
    people(workspace, "ok")
    content = b"ok;A\nnobody;A\n;A\nok\nnobody;A\nother;B\n"
    job = imported(workspace, content)
    assert (job.total_rows, job.matched, job.unmatched, job.invalid) == (6, 1, 2, 2)
    assert report_rows(job) == [
        ["2", "no person in this workspace has this external id (repeated on 1 more line)",
         "nobody;A"],
        ["3", "the line has no identifier before the audience name", ";A"],
        ["4", "expected “identifier; audience name” but there is no “;” on the line", "ok"],
        ["6", "no person in this workspace has this external id", "other;B"],
    ]  # fmt: skip


# --- The Celery task -------------------------------------------------------------------


def test_the_task_runs_the_import_after_commit(workspace, celery_eager,
                                               django_capture_on_commit_callbacks):  # fmt: skip
    people(workspace, "123", "124", "125", "245")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = start(workspace, PER_ROW_EXAMPLE)
    # the import's task (and the real-time evaluation its change asks for)
    assert len(callbacks) >= 1
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.matched == 4


def test_the_task_marks_a_job_that_raises_failed(workspace, celery_eager, monkeypatch):
    from audiences.tasks import audience_import_run_task

    monkeypatch.setattr(merge, "resolve", lambda *a, **k: 1 / 0)
    people(workspace, "123")
    job = start(workspace, b"123;A\n")
    result = audience_import_run_task.apply(args=[job.pk])
    assert result.failed()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "unexpected error (ZeroDivisionError); nothing was changed" in job.detail
    assert f"audience import #{job.pk}" in job.detail


def test_the_task_says_when_the_time_limit_stopped_the_job(workspace, celery_eager, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    from audiences.tasks import audience_import_run_task

    def too_long(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(merge, "resolve", too_long)
    people(workspace, "123")
    job = start(workspace, b"123;A\n")
    audience_import_run_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.detail.startswith("The import took longer than the time limit")


def test_the_task_goes_to_the_imports_queue():
    from audiences.tasks import audience_import_run_task
    from config.celery import app

    route = app.amqp.router.route({}, audience_import_run_task.name, args=(1,), kwargs={})
    assert route["queue"].name == "imports"
    assert audience_import_run_task.acks_late and audience_import_run_task.reject_on_worker_lost

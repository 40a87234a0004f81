"""Contact import: analysis, policies, dedupe, tags, typing, bad input, all or nothing,
the Celery task, the error report and the pages."""

import codecs
import csv
import io
import tracemalloc
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.audit import Actor
from accounts.csv_safe import escape_cell
from accounts.jobs import JobStatus, media_path
from accounts.models import Role
from people import tasks
from people.imports import checking, run, services
from people.imports.source import MAX_LINE_CHARS
from people.models import (
    AttributeDefinition,
    Company,
    ContactImport,
    Person,
    PersonTag,
    Tag,
    TagSource,
)
from tests.factories import PersonFactory

NOW = datetime(2026, 11, 25, 14, 3, tzinfo=UTC)


@contextmanager
def _count_raw_sql():
    """Statements sent on psycopg's own cursors (COPY, staging SQL), which Django's query
    capture does not see."""
    count = [0]
    original = psycopg.Cursor.execute

    def execute(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    psycopg.Cursor.execute = execute
    try:
        yield count
    finally:
        psycopg.Cursor.execute = original


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def enqueued(monkeypatch):
    """Task ids the services enqueue (on commit), instead of sending them to the broker."""
    sent = []
    # accounts.degraded.send_after_commit sends with apply_async(args=..., retry=False)
    monkeypatch.setattr(
        tasks.contact_import_analyze_task,
        "apply_async",
        lambda args, **kw: sent.append(("analyze", *args)),
    )
    monkeypatch.setattr(
        tasks.contact_import_run_task, "apply_async", lambda args, **kw: sent.append(("run", *args))
    )
    return sent


def upload(workspace, data, name="people.csv", user=None) -> ContactImport:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return services.contact_import_create(
        workspace=workspace,
        uploaded_by=user,
        file=SimpleUploadedFile(name, data),
        actor=Actor(system="tests"),
    )


def analyzed(workspace, data, name="people.csv", options=None, **kwargs) -> ContactImport:
    job = services.contact_import_analyze(contact_import=upload(workspace, data, name), now=NOW)
    if options is not None:
        job = services.contact_import_reanalyze(
            contact_import=job, options=options, actor=Actor(system="tests")
        )
        job = services.contact_import_analyze(contact_import=job, now=NOW, **kwargs)
    return job


def imported(workspace, data, *, options=None, confirm=None, **kwargs) -> ContactImport:
    job = analyzed(workspace, data, options=options)
    assert job.stage == ContactImport.Stage.ANALYZED, job.detail
    job = services.contact_import_confirm(
        contact_import=job, options=confirm or {}, actor=Actor(system="tests")
    )
    return services.contact_import_run(import_id=job.id, now=NOW, **kwargs)


def people(workspace):
    return {p.external_id: p for p in Person.objects.for_workspace(workspace)}


def tag_names(person):
    return sorted(PersonTag.objects.filter(person=person).values_list("tag__name", flat=True))


def errors_of(job):
    return [(e["line"], e["reason"]) for e in job.analysis["counts"]["first_errors"]]


CSV = (
    "id,Email,Phone,First name,Last name,Plan,Score,Signup date,City,Company\n"
    "c1,ann@example.com,+44 7400 123456,Ann,Smith,pro,10,2025-01-02,London,Acme\n"
    "c2,BOB@Example.com,,Bob,Jones,free,7,2025-01-03,Paris,Acme\n"
    "c3,cy@example.com,+33 6 12 34 56 78,Cy,Li,free,3,2025-01-04,Rome,Beta\n"
)


# --- analysis -------------------------------------------------------------------------------


def test_analysis_detects_the_file_and_suggests_a_mapping(workspace):
    PersonFactory(workspace=workspace, external_id="c2")
    job = analyzed(workspace, CSV)
    a = job.analysis
    assert job.stage == ContactImport.Stage.ANALYZED and job.status == JobStatus.QUEUED
    assert (a["encoding"], a["separator"], a["header"]) == ("utf-8", ",", True)
    assert a["columns"][:3] == ["id", "Email", "Phone"]
    assert a["preview"][0][:2] == ["c1", "ann@example.com"] and len(a["preview"]) == 3
    mapping = {m["header"]: m for m in job.options["mapping"]}
    assert [mapping[h]["target"] for h in ("id", "Email", "Phone", "City", "Company")] == [
        "external_id", "email", "phone", "city", "company",
    ]  # fmt: skip
    assert (mapping["Score"]["target"], mapping["Score"]["type"]) == ("attribute", "number")
    assert (mapping["Signup date"]["key"], mapping["Signup date"]["type"]) == (
        "signup_date",
        "date",
    )
    assert mapping["Plan"]["type"] == "string" and mapping["Plan"]["new"]
    assert job.options["dedupe"] == "external_id"
    assert job.options["tags"] == ["import 2026-11-25 14:03"]
    counts = a["counts"]
    assert (counts["rows"], counts["new"], counts["existing"], counts["errors"]) == (3, 2, 1, 0)
    assert Person.objects.for_workspace(workspace).count() == 1  # analysis imports nothing


def test_default_tag_uses_the_workspace_time_zone(workspace):
    workspace.time_zone = "Europe/Paris"
    workspace.save()
    job = analyzed(workspace, CSV)
    assert job.options["tags"] == ["import 2026-11-25 15:03"]


def test_cp1251_semicolon_file_is_detected_and_read(workspace):
    text = (
        "external_id;Имя;Фамилия;Город;email\n"
        + "".join(
            f"r{i};Иван;Петров;Москва;ivan{i}@example.ru\n"
            f"s{i};Мария;Сидорова;Санкт-Петербург;maria{i}@example.ru\n"
            for i in range(15)
        )
    )  # fmt: skip
    job = analyzed(workspace, text.encode("cp1251"))
    assert job.analysis["encoding"] == "cp1251", job.analysis
    assert job.analysis["separator"] == ";"
    assert job.analysis["columns"][1] == "Имя"
    assert job.analysis["preview"][1][3] == "Санкт-Петербург"
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert job.status == JobStatus.DONE, job.detail
    maria = people(workspace)["s3"]
    assert maria.email == "maria3@example.ru"
    # a header without Latin letters becomes a column_<n> attribute (keys are ASCII)
    assert maria.attributes == {
        "column_2": "Мария", "column_3": "Сидорова", "column_4": "Санкт-Петербург",
    }  # fmt: skip


def test_utf16_tab_file_with_bom_is_detected_and_read(workspace):
    text = "external_id\tfirst_name\tcity\temail\n" + "".join(
        f"u{i}\tRenée\tZürich\tr{i}@example.ch\n" for i in range(5)
    )
    job = analyzed(workspace, text.encode("utf-16"))
    assert (job.analysis["encoding"], job.analysis["separator"]) == ("utf-16", "\t")
    assert job.analysis["columns"] == ["external_id", "first_name", "city", "email"]
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert (job.status, job.created_count) == (JobStatus.DONE, 5)
    assert people(workspace)["u2"].city == "Zürich"
    assert people(workspace)["u2"].first_name == "Renée"


def test_utf8_bom_is_not_part_of_the_first_header(workspace):
    job = analyzed(workspace, codecs.BOM_UTF8 + b"email,external_id\na@example.com,1\n")
    assert job.analysis["encoding"] == "utf-8-sig"
    assert job.analysis["columns"][0] == "email"
    assert job.options["mapping"][0]["target"] == "email"


def test_a_file_without_header_is_detected_and_mapped_by_content(workspace):
    text = "".join(f"{i},person{i}@example.com,+447400{i:06d}\n" for i in range(8))
    job = analyzed(workspace, text)
    assert job.analysis["header"] is False
    assert job.analysis["columns"] == ["Column 1", "Column 2", "Column 3"]
    targets = [m["target"] for m in job.options["mapping"]]
    assert targets == ["ignore", "email", "phone"]
    assert job.options["dedupe"] == "email"
    assert job.analysis["counts"]["rows"] == 8


@pytest.mark.parametrize("separator", [",", ";", "\t", "|"])
def test_each_separator_is_detected(workspace, separator):
    rows = [["external_id", "email", "city"]] + [
        [f"x{i}", f"x{i}@example.com", "Saint-Denis, Paris"] for i in range(6)
    ]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=separator).writerows(rows)
    job = analyzed(workspace, buffer.getvalue())
    assert job.analysis["separator"] == separator
    assert job.analysis["preview"][0][2] == "Saint-Denis, Paris"


def test_new_vs_existing_counts_follow_the_dedupe_key(workspace):
    PersonFactory(workspace=workspace, external_id="other", email="ann@example.com")
    job = analyzed(workspace, CSV)
    assert (job.analysis["counts"]["new"], job.analysis["counts"]["existing"]) == (3, 0)
    job = services.contact_import_reanalyze(
        contact_import=job, options={"dedupe": "email"}, actor=Actor(system="tests")
    )
    assert job.stage == ContactImport.Stage.UPLOADED
    job = services.contact_import_analyze(contact_import=job, now=NOW)
    assert (job.analysis["counts"]["new"], job.analysis["counts"]["existing"]) == (2, 1)


def test_the_analysis_and_the_import_run_a_constant_number_of_queries(workspace):
    """Set-based: keys are COPYed and joined, never looked up row by row."""

    def queries(rows: int) -> tuple[int, ContactImport]:
        text = (
            CSV.splitlines()[0]
            + "\n"
            + "".join(
                f"k{rows}-{i},k{i}@example.com,,K,L,pro,{i},2025-01-01,Oslo,Co {i}\n"
                for i in range(rows)
            )
        )
        for i in range(0, rows, 7):
            PersonFactory(workspace=workspace, external_id=f"k{rows}-{i}")
        job = upload(workspace, text)
        with CaptureQueriesContext(connection) as captured, _count_raw_sql() as raw:
            job = services.contact_import_analyze(contact_import=job, now=NOW)
            job = services.contact_import_confirm(
                contact_import=job, options={}, actor=Actor(system="tests")
            )
            job = services.contact_import_run(import_id=job.id, now=NOW)
        assert job.status == JobStatus.DONE, job.detail
        return len(captured) + raw[0], job

    queries(3)  # the first import defines the attributes and the tag: not counted
    small, small_job = queries(5)
    big, big_job = queries(400)
    assert small == big
    assert big_job.analysis["counts"]["existing"] == len(range(0, 400, 7))
    assert (big_job.created_count, big_job.updated_count) == (400 - 58, 0)


# --- policies -------------------------------------------------------------------------------


@pytest.fixture
def existing(workspace):
    company = Company.objects.create(workspace=workspace, name="Old Co")
    return PersonFactory(
        workspace=workspace, external_id="c1", email="old@example.com", phone="",
        first_name="Annie", last_name="", city="", company=company,
        attributes={"plan": "legacy", "vip": True},
    )  # fmt: skip


POLICY_CSV = (
    "id,email,phone,first_name,last_name,city,company,plan,score\n"
    "c1,ann@example.com,+447400123456,Ann,,London,Acme,pro,10\n"
    "c9,new@example.com,,New,Person,Oslo,Acme,free,1\n"
)


def test_policy_skip_leaves_existing_people_alone(workspace, existing):
    job = imported(workspace, POLICY_CSV, confirm={"policy": "skip"})
    assert (job.status, job.created_count, job.updated_count, job.skipped_count) == (
        JobStatus.DONE, 1, 0, 1,
    )  # fmt: skip
    existing.refresh_from_db()
    assert (existing.email, existing.first_name, existing.company.name) == (
        "old@example.com", "Annie", "Old Co",
    )  # fmt: skip
    assert existing.attributes == {"plan": "legacy", "vip": True}
    assert tag_names(existing) == []  # untouched, so not tagged
    assert tag_names(people(workspace)["c9"]) == ["import 2026-11-25 14:03"]


def test_policy_overwrite_replaces_given_values_and_keeps_the_rest(workspace, existing):
    job = imported(workspace, POLICY_CSV, confirm={"policy": "overwrite"})
    assert (job.created_count, job.updated_count, job.skipped_count) == (1, 1, 0)
    existing.refresh_from_db()
    assert (existing.email, existing.phone, existing.first_name) == (
        "ann@example.com", "+447400123456", "Ann",
    )  # fmt: skip
    assert existing.city == "London" and existing.company.name == "Acme"
    assert existing.last_name == ""  # an empty cell never clears (it was empty anyway)
    assert existing.attributes == {"plan": "pro", "vip": True, "score": 10}
    assert tag_names(existing) == ["import 2026-11-25 14:03"]


def test_policy_fill_empty_only_fills_what_is_missing(workspace, existing):
    job = imported(workspace, POLICY_CSV, confirm={"policy": "fill_empty"})
    assert (job.created_count, job.updated_count) == (1, 1)
    existing.refresh_from_db()
    assert (existing.email, existing.first_name) == ("old@example.com", "Annie")  # kept
    assert (existing.phone, existing.city) == ("+447400123456", "London")  # filled
    assert existing.company.name == "Old Co"
    assert existing.attributes == {"plan": "legacy", "vip": True, "score": 10}
    names = set(Company.objects.for_workspace(workspace).values_list("name", flat=True))
    assert names == {"Old Co", "Acme"}  # Acme for the new person only


def test_empty_cells_never_clear_values_on_overwrite(workspace):
    PersonFactory(workspace=workspace, external_id="z", first_name="Zoe", city="Oslo")
    imported(workspace, "id,first_name,city\nz,,Bergen\n", confirm={"policy": "overwrite"})
    zoe = people(workspace)["z"]
    assert (zoe.first_name, zoe.city) == ("Zoe", "Bergen")


# --- dedupe ---------------------------------------------------------------------------------


def test_dedupe_by_email(workspace):
    known = PersonFactory(workspace=workspace, external_id="crm-7", email="ann@example.com")
    text = (
        "email,first_name,external_id\n"
        "ANN@example.com,Ann,\n"  # matches crm-7 by email, case-insensitively
        "zed@example.com,Zed,\n"  # new, no external id: the email becomes it
        "kim@example.com,Kim,k-1\n"  # new with its own external id
        "zed@example.com,Zedd,\n"  # the same person again: counted once, last row wins
    )
    job = analyzed(workspace, text, options={"dedupe": "email"})
    counts = job.analysis["counts"]
    assert (counts["new"], counts["existing"], counts["duplicates"]) == (2, 1, 1)
    job = services.contact_import_confirm(
        contact_import=job, options={"policy": "overwrite"}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert (job.created_count, job.updated_count, job.skipped_count) == (2, 1, 0)
    everyone = people(workspace)
    assert set(everyone) == {"crm-7", "zed@example.com", "k-1"}
    known.refresh_from_db()
    assert known.first_name == "Ann"
    assert everyone["zed@example.com"].first_name == "Zedd"
    assert job.analysis["result"]["duplicates"] == 1


def test_dedupe_by_phone(workspace):
    known = PersonFactory(workspace=workspace, external_id="p-1", phone="+447400123456")
    text = (
        "phone,first_name\n"
        "+44 (0)7400 123456,Known\n"
        "07400 654321,Local\n"  # national format: needs the phone region
        "+33612345678,Fr\n"
        "+33 6 12 34 56 78,Fr again\n"  # the same number, formatted differently
    )
    job = analyzed(workspace, text, options={"dedupe": "phone", "phone_region": "GB"})
    counts = job.analysis["counts"]
    assert (counts["new"], counts["existing"], counts["duplicates"], counts["errors"]) == (
        2, 1, 1, 0,
    ), job.analysis  # fmt: skip
    job = services.contact_import_confirm(
        contact_import=job, options={"policy": "overwrite"}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    known.refresh_from_db()
    assert known.first_name == "Known"
    everyone = people(workspace)
    assert everyone["+447400654321"].first_name == "Local"
    assert everyone["+33612345678"].first_name == "Fr again"
    assert len(everyone) == 3


def test_a_row_without_the_dedupe_key_is_an_error(workspace):
    job = analyzed(workspace, "email,first_name\n,Nobody\nx@example.com,X\n")
    assert errors_of(job) == [
        (2, "Email is empty: people are matched on it, so every row needs one")
    ]


# --- tags -----------------------------------------------------------------------------------


def test_every_imported_person_gets_the_default_tag(workspace):
    job = imported(workspace, CSV)
    assert job.created_count == 3
    tag = Tag.objects.for_workspace(workspace).get()
    assert tag.name == "import 2026-11-25 14:03"
    links = PersonTag.objects.for_workspace(workspace)
    assert links.count() == 3 and set(links.values_list("source", flat=True)) == {TagSource.IMPORT}


def test_tags_can_be_replaced(workspace):
    Tag.objects.create(workspace=workspace, name="VIP-2026")
    job = imported(workspace, CSV, confirm={"tags": ["vip-2026", "Spring fair"]})
    assert job.status == JobStatus.DONE
    names = set(Tag.objects.for_workspace(workspace).values_list("name", flat=True))
    assert names == {"VIP-2026", "Spring fair"}  # the existing tag reused, no default tag
    assert tag_names(people(workspace)["c1"]) == ["Spring fair", "VIP-2026"]


def test_tags_can_be_removed_altogether(workspace):
    imported(workspace, CSV, confirm={"tags": []})
    assert not PersonTag.objects.for_workspace(workspace).exists()


def test_tag_names_are_checked(workspace):
    job = analyzed(workspace, CSV)
    with pytest.raises(ValidationError, match="longer than 100"):
        services.contact_import_confirm(
            contact_import=job, options={"tags": ["x" * 101]}, actor=Actor(system="tests")
        )


# --- typed attributes -----------------------------------------------------------------------


def test_a_declared_attribute_refuses_a_cell_of_another_type(workspace):
    AttributeDefinition.objects.create(workspace=workspace, key="score", type="number")
    AttributeDefinition.objects.create(workspace=workspace, key="member", type="boolean")
    text = "id,score,member\na,12,yes\nb,twelve,no\nc,1.5,maybe\n"
    job = analyzed(workspace, text)
    assert [m.get("new") for m in job.options["mapping"][1:]] == [False, False]
    assert errors_of(job) == [
        (3, "score: “twelve” is not a number (attribute “score” is of type number)"),
        (4, "member: “maybe” is not yes/no (true, false, yes, no, 1, 0) "
            "(attribute “member” is of type boolean)"),
    ]  # fmt: skip
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert (job.created_count, job.error_count) == (1, 2)
    assert people(workspace)["a"].attributes == {"score": 12, "member": True}


def test_new_attributes_are_defined_with_the_chosen_types(workspace):
    job = analyzed(workspace, CSV)
    mapping = job.options["mapping"]
    for m in mapping:
        if m["header"] == "Plan":
            m["type"] = "list"  # the user changes the suggested type
    job = services.contact_import_reanalyze(
        contact_import=job, options={"mapping": mapping}, actor=Actor(system="tests")
    )
    job = services.contact_import_analyze(contact_import=job, now=NOW)
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    defs = {
        d.key: (d.type, d.inferred) for d in AttributeDefinition.objects.for_workspace(workspace)
    }
    assert defs == {
        "plan": ("list", False),
        "score": ("number", True),
        "signup_date": ("date", True),
    }
    ann = people(workspace)["c1"]
    assert ann.attributes == {"plan": ["pro"], "score": 10, "signup_date": "2025-01-02"}


def test_a_mapping_problem_blocks_confirmation(workspace):
    job = analyzed(workspace, "id,email\n1,a@example.com\n", options={"dedupe": "phone"})
    assert job.analysis["problems"] == [
        "People are matched by Phone, but no column is mapped to it."
    ]
    with pytest.raises(ValidationError, match="no column is mapped"):
        services.contact_import_confirm(contact_import=job, options={}, actor=Actor(system="tests"))


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20, "looks like a PNG image"),
        (b"PK\x03\x04" + b"\x00" * 300, "Excel workbook (.xlsx)"),
        (bytes(range(256)) * 40, "binary data"),
        (b"\x00\x01\x02\x03" * 500, "binary data (NUL bytes)"),
    ],
)
def test_a_file_that_is_not_text_is_refused_clearly(workspace, data, message):
    job = analyzed(workspace, data, name="contacts.csv")
    assert (job.stage, job.status) == (ContactImport.Stage.UPLOADED, JobStatus.FAILED)
    assert "not a CSV text file" in job.detail and message in job.detail
    assert not Person.objects.for_workspace(workspace).exists()
    with pytest.raises(ValidationError):
        services.contact_import_confirm(contact_import=job, options={}, actor=Actor(system="tests"))


def test_a_wrongly_chosen_encoding_is_refused_naming_the_likely_one(workspace):
    text = "external_id,name,city\n" + "".join(f"{i},Иван Петров,Москва\n" for i in range(30))
    job = analyzed(workspace, text.encode("cp1251"), options={"encoding": "utf-8"})
    assert job.status == JobStatus.FAILED
    assert "not valid UTF-8" in job.detail and "Windows-1251" in job.detail, job.detail
    job = services.contact_import_reanalyze(
        contact_import=job, options={"encoding": "cp1251"}, actor=Actor(system="tests")
    )
    job = services.contact_import_analyze(contact_import=job, now=NOW)
    assert job.stage == ContactImport.Stage.ANALYZED
    assert job.analysis["preview"][0][2] == "Москва"


def test_an_encoding_error_after_the_sample_fails_the_whole_file(workspace):
    head = "external_id,name\n" + "".join(f"{i},Anne\n" for i in range(9000))  # > 64 KB
    data = head.encode() + "9001,Zoë\n".encode("cp1252")
    job = analyzed(workspace, data)
    assert job.status == JobStatus.FAILED
    assert "not valid UTF-8 around line" in job.detail and "Choose that encoding" in job.detail
    assert not Person.objects.for_workspace(workspace).exists()


def test_ragged_rows_are_reported_and_skipped(workspace):
    text = (
        "id,email,city\n"
        "1,a@example.com,Oslo\n"
        "2,b@example.com\n"  # a cell short
        "3,c@example.com,Rome,extra\n"  # a cell too many
        "4,d@example.com,Nice,,\n"  # trailing empty cells are fine
        ",,\n\n"  # a row of empty cells and a blank line are not rows
    )
    job = analyzed(workspace, text)
    assert errors_of(job) == [
        (3, "the row has 2 cells where the header has 3"),
        (4, "the row has 4 cells where the header has 3"),
    ]
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert sorted(people(workspace)) == ["1", "4"]
    assert (job.created_count, job.error_count, job.total_rows) == (2, 2, 4)


def test_a_50_mb_single_line_is_reported_with_bounded_memory(workspace, tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "w") as f:
        f.write("id,email,note\n1,a@example.com,ok\n2,b@example.com,")
        chunk = "x" * (1024 * 1024)
        for _ in range(50):
            f.write(chunk)  # one 50 MB line
        f.write("\n3,c@example.com,fine\n")
    with open(path, "rb") as f:
        job = services.contact_import_create(
            workspace=workspace,
            uploaded_by=None,
            file=File(f, name="huge.csv"),
            actor=Actor(system="tests"),
        )
    tracemalloc.start()
    try:
        job = services.contact_import_analyze(contact_import=job, now=NOW)
        job = services.contact_import_confirm(
            contact_import=job, options={}, actor=Actor(system="tests")
        )
        job = services.contact_import_run(import_id=job.id, now=NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * MAX_LINE_CHARS, peak  # a few line buffers, never the 50 MB line
    assert job.status == JobStatus.DONE, job.detail
    assert job.analysis["result"]["first_errors"][0]["line"] == 3
    assert "longer than 1 MB" in job.analysis["result"]["first_errors"][0]["reason"]
    assert sorted(people(workspace)) == ["1", "3"]


def test_an_unbalanced_quote_is_reported(workspace):
    text = 'id,email,note\n0,z@example.com,ok\n1,a@example.com,"never closed\n' + "".join(
        f"{i},p{i}@example.com,fine\n" for i in range(2, 30)
    )
    job = analyzed(workspace, text)
    assert job.status == JobStatus.QUEUED, job.detail
    (line, reason), *_ = errors_of(job)
    assert line == 3 and "opened in this row is never closed, so lines 3-31" in reason
    counts = job.analysis["counts"]
    assert counts["errors"] + counts["valid"] == counts["rows"] and counts["valid"] == 1


def test_formula_cells_are_refused_but_numbers_and_phones_pass(workspace):
    AttributeDefinition.objects.create(workspace=workspace, key="score", type="number")
    text = (
        "id,first_name,phone,score\n"
        '1,"=HYPERLINK(""http://x"",""hi"")",,1\n'
        "2,@SUM(A1),,2\n"
        "3,Bo,,-2+3+cmd|' /C calc'!A0\n"
        "4,Cy,+44 7400 123456,-5\n"
    )
    job = analyzed(workspace, text)
    lines = [line for line, _ in errors_of(job)]
    reasons = [reason for _, reason in errors_of(job)]
    assert lines == [2, 3, 4]
    assert all("spreadsheet formula" in r for r in reasons)
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert sorted(people(workspace)) == ["4"]
    assert people(workspace)["4"].attributes == {"score": -5}


def test_malformed_email_and_phone_are_reported_with_line_and_reason(workspace):
    text = (
        "id,email,phone,address\n"
        '1,a@example.com,+447400123456,"1 High St\nLondon"\n'  # a record on two lines
        "2,not-an-email,,\n"
        "3,c@example.com,+44 12,\n"
        "4,d@example.com,0612345678,\n"  # no country code and no region chosen
    )
    job = analyzed(workspace, text)
    assert errors_of(job) == [
        (4, "email: “not-an-email” is not a valid email address."),
        (5, "phone: “+44 12” is not a valid phone number."),
        (6, "phone: “0612345678” is not a phone number (write it with its country code, "
            "e.g. +44 7700 900123)."),
    ]  # fmt: skip
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert people(workspace)["1"].address == "1 High St\nLondon"
    assert job.error_count == 3
    report = media_path(job.error_report).read_text()
    assert '4,email: “not-an-email” is not a valid email address.,"2,not-an-email,,"' in report


def test_a_file_with_too_many_columns_is_refused(workspace):
    header = ",".join(f"c{i}" for i in range(301))
    job = analyzed(workspace, header + "\n" + ",".join("x" * 301) + "\n")
    assert job.status == JobStatus.FAILED and "301 columns" in job.detail


def test_too_long_values_are_row_errors(workspace):
    job = analyzed(workspace, f"id,city\n1,{'x' * 101}\n2,Oslo\n")
    assert errors_of(job) == [(2, "city: longer than 100 characters")]


def test_an_empty_or_oversized_file_is_refused(workspace, settings):
    with pytest.raises(ValidationError, match="empty"):
        upload(workspace, b"")
    settings.CONTACT_IMPORT_MAX_BYTES = 100
    with pytest.raises(ValidationError, match="up to 0.0 MB"):
        upload(workspace, "id\n" + "1\n" * 100)
    assert not ContactImport.objects.for_workspace(workspace).exists()


# --- all or nothing, the job ----------------------------------------------------------------


def test_a_failure_inside_the_merge_changes_nothing(workspace, existing, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("disk full")

    job = analyzed(workspace, POLICY_CSV)
    job = services.contact_import_confirm(
        contact_import=job, options={"policy": "overwrite"}, actor=Actor(system="tests")
    )
    # after the INSERT ... ON CONFLICT and the tags, before the commit
    monkeypatch.setattr(run, "create_attribute_definitions", explode)
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert job.status == JobStatus.FAILED
    assert "changed nothing (disk full)" in job.detail
    existing.refresh_from_db()
    assert existing.email == "old@example.com" and existing.company.name == "Old Co"
    assert Person.objects.for_workspace(workspace).count() == 1
    assert not PersonTag.objects.for_workspace(workspace).exists()
    assert not Tag.objects.for_workspace(workspace).exists()
    assert not AttributeDefinition.objects.for_workspace(workspace).exists()
    assert set(Company.objects.for_workspace(workspace).values_list("name", flat=True)) == {
        "Old Co"
    }
    assert (job.created_count, job.updated_count) == (0, 0)


def test_a_worker_dying_mid_import_is_redone_from_scratch(workspace, monkeypatch):
    job = analyzed(workspace, CSV)
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )

    class WorkerLost(BaseException):
        pass

    def die(import_id, processed):
        raise WorkerLost

    monkeypatch.setattr(services, "_progress", die)
    with pytest.raises(WorkerLost):
        services.contact_import_run(import_id=job.id, now=NOW)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # what a killed worker leaves behind
    assert not Person.objects.for_workspace(workspace).exists()
    monkeypatch.undo()
    job = services.contact_import_run(import_id=job.id, now=NOW)  # the re-delivery
    assert (job.status, job.created_count) == (JobStatus.DONE, 3)
    again = services.contact_import_run(import_id=job.id, now=NOW)  # a late duplicate
    assert again.status == JobStatus.DONE and Person.objects.for_workspace(workspace).count() == 3


def test_an_import_that_kills_its_worker_every_time_fails_after_three_deliveries(
    workspace, monkeypatch
):
    job = analyzed(workspace, CSV)
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    assert job.attempts == 0  # the analysis's attempts do not count against the import

    class WorkerLost(BaseException):
        pass

    def die(import_id, processed):
        raise WorkerLost

    monkeypatch.setattr(services, "_progress", die)
    for attempt in (1, 2, 3):
        with pytest.raises(WorkerLost):
            services.contact_import_run(import_id=job.id, now=NOW)
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.RUNNING, attempt)

    job = services.contact_import_run(import_id=job.id, now=NOW)  # gives up, does not die

    assert job.status == JobStatus.FAILED
    assert job.detail.startswith(
        "The import stopped its worker 3 times (the worker was killed or restarted while it "
        "ran), so it was given up; nothing was imported."
    )
    assert not Person.objects.for_workspace(workspace).exists()


def test_a_redelivery_while_the_first_attempt_lives_leaves_the_job_alone(workspace):
    job = analyzed(workspace, CSV)
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    db = connection.settings_dict
    key = services._LOCK_NAMESPACE + job.id
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [key])  # the first attempt, alive
        services.contact_import_run(import_id=job.id, now=NOW)
        job.refresh_from_db()
        assert job.status == JobStatus.QUEUED
        other.execute("SELECT pg_advisory_unlock(%s)", [key])  # the first attempt ends
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert job.status == JobStatus.DONE


def test_the_progress_moves_while_rows_are_read(workspace, monkeypatch):
    text = "id,email\n" + "".join(f"{i},p{i}@example.com\n" for i in range(200))
    job = analyzed(workspace, text)
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    seen = []
    monkeypatch.setattr(run, "PROGRESS_EVERY", 40)
    monkeypatch.setattr(checking, "BATCH_ROWS", 10)
    monkeypatch.setattr(services, "_progress", lambda i, n: seen.append(n))
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert job.created_count == 200
    assert seen[:4] == [40, 80, 120, 160] and seen[-1] == 200


def test_the_celery_tasks_run_the_services(
    workspace, ops_user, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = upload(workspace, CSV, user=ops_user)
    assert enqueued == [("analyze", job.id)]
    tasks.contact_import_analyze_task(job.id)
    job.refresh_from_db()
    assert job.stage == ContactImport.Stage.ANALYZED
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_import_confirm(
            contact_import=job, options={"policy": "overwrite"}, actor=Actor(system="tests")
        )
        services.contact_import_confirm(
            contact_import=job, options={}, actor=Actor(system="tests")
        )  # a double click
    assert enqueued[1:] == [("run", job.id)]
    tasks.contact_import_run_task(job.id)
    job.refresh_from_db()
    assert (job.status, job.created_count, job.options["policy"]) == (
        JobStatus.DONE, 3, "overwrite",
    )  # fmt: skip
    assert job.created_by == ops_user


def test_the_task_routes_to_the_imports_queue():
    from config.celery import app

    for task in (tasks.contact_import_analyze_task, tasks.contact_import_run_task):
        route = app.amqp.router.route({}, task.name)
        assert route["queue"].name == "imports"
        assert task.acks_late


def test_confirming_with_a_changed_mapping_needs_a_new_analysis(workspace):
    job = analyzed(workspace, CSV)
    with pytest.raises(ValidationError, match="changed since the analysis"):
        services.contact_import_confirm(
            contact_import=job, options={"dedupe": "email"}, actor=Actor(system="tests")
        )
    assert services.analysis_is_current(job, {"policy": "overwrite", "tags": ["x"]})


# --- helper processes -----------------------------------------------------------------------


def test_helper_processes_give_the_same_result_in_file_order(workspace, monkeypatch):
    monkeypatch.setattr(checking, "BATCH_ROWS", 7)
    rows = []
    for i in range(300):
        email = f"p{i}@example.com" if i % 13 else "broken"
        rows.append(f"{i},{email},+4474001{i:05d},{i % 9}\n")
    text = "id,email,phone,score\n" + "".join(rows)
    job = analyzed(workspace, text, options={}, helpers=2)
    bad = [i + 2 for i in range(0, 300, 13)]
    assert [line for line, _ in errors_of(job)] == bad
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW, helpers=2)
    assert (job.created_count, job.error_count) == (300 - len(bad), len(bad))
    assert people(workspace)["5"].attributes == {"score": 5}
    assert people(workspace)["5"].phone == "+447400100005"


def test_a_dying_helper_process_changes_nothing_in_the_result():
    spec = {
        "columns": [
            {"column": 0, "header": "id", "target": "external_id"},
            {"column": 1, "header": "email", "target": "email"},
        ],
        "width": 2, "dedupe": "external_id", "separator": ",", "output": ["line", "key"],
    }  # fmt: skip
    batches = [[(n * 10 + i, f"x{n}-{i},x{i}@example.com", None) for i in range(10)]
               for n in range(12)]  # fmt: skip
    pool = checking.CheckPool(spec, helpers=1)
    results = []
    try:
        for n, batch in enumerate(batches):
            if n == 2:
                pool.helpers[0].process.kill()
            results.extend(pool.submit(batch))
        results.extend(pool.drain())
    finally:
        pool.close(failed=True)
    lines = b"".join(r.copy_data for r in results).decode().splitlines()
    assert lines == [f"{n * 10 + i}\tx{n}-{i}" for n in range(12) for i in range(10)]


def test_the_canonical_phone_fast_path_agrees_with_normalize_phone():
    import random

    import phonenumbers

    from people.imports.rows import canonical_phone
    from people.normalize import InvalidAddress, normalize_phone

    rng = random.Random(7)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    decided = 0
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 12)))
        text = f"+{rng.choice(codes)}{digits}"
        fast = canonical_phone(text)
        try:
            slow = normalize_phone(text)
        except InvalidAddress:
            slow = None
        if fast is not None:
            decided += 1
            assert fast == slow, text
    assert decided > 500  # the fast path does take most valid canonical numbers
    assert canonical_phone("+447400123456") == "+447400123456"
    assert canonical_phone("+44 7400 123456") is None  # not canonical: normalize_phone
    assert canonical_phone("+390612345678") is None  # leading zero kept by Italy


# --- the error report -----------------------------------------------------------------------


def test_the_error_report_escapes_formula_cells(workspace):
    text = "id,email\n=1+1,bad\n2,@evil\n3,ok@example.com\n"
    job = analyzed(workspace, text)
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    rows = list(csv.reader(io.StringIO(media_path(job.error_report).read_text())))
    assert rows[0] == ["line", "reason", "raw"]
    assert [r[0] for r in rows[1:]] == ["2", "3"]
    assert rows[1][2] == "'=1+1,bad"  # the raw line would run as a formula: escaped
    assert rows[2][2] == "2,@evil"
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert escape_cell("+cmd") == "'+cmd" and escape_cell("-1") == "'-1"
    assert escape_cell("plain") == "plain" and escape_cell("") == ""


# --- pages ----------------------------------------------------------------------------------


def test_the_pages_take_an_ops_user_from_upload_to_result(
    workspace, ops_user, client, enqueued, django_capture_on_commit_callbacks
):
    client.force_login(ops_user)
    page = client.get("/people/import/")
    assert page.status_code == 200 and b'enctype="multipart/form-data"' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/people/import/", {"file": SimpleUploadedFile("people.csv", CSV.encode())}
        )
    job = ContactImport.objects.for_workspace(workspace).get()
    assert response.status_code == 302 and response.url == f"/people/import/{job.id}/"
    assert enqueued == [("analyze", job.id)]
    page = client.get(response.url)
    assert b'hx-trigger="every 1s"' in page.content and b"Analyzing the file" in page.content
    tasks.contact_import_analyze_task(job.id)
    partial = client.get(f"/people/import/{job.id}/progress/", headers={"HX-Request": "true"})
    assert partial.headers.get("HX-Refresh") == "true"  # analysis over: show the screen
    page = client.get(f"/people/import/{job.id}/")
    html = page.content.decode()
    assert 'id="analyze-form"' in html and 'value="import 20' in html
    assert 'data-stat="new">3<' in html
    form = page.context["form"]
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v not in (None, False)}
    data.update(tags="vip-2026", policy="overwrite", action="confirm")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/people/import/{job.id}/", data)
    assert enqueued[-1] == ("run", job.id)
    assert response.status_code == 302, response.content.decode()[:3000]
    job.refresh_from_db()
    assert job.stage == ContactImport.Stage.CONFIRMED and job.options["tags"] == ["vip-2026"]
    partial = client.get(f"/people/import/{job.id}/progress/", headers={"HX-Request": "true"})
    assert b'hx-trigger="every 1s"' in partial.content and b"<html" not in partial.content
    tasks.contact_import_run_task(job.id)
    partial = client.get(f"/people/import/{job.id}/progress/", headers={"HX-Request": "true"})
    assert b"hx-trigger" not in partial.content and b"Import finished" in partial.content
    assert b'data-stat="created">3<' in partial.content
    assert tag_names(people(workspace)["c1"]) == ["vip-2026"]
    report = client.get(f"/people/import/{job.id}/errors.csv")
    assert report.status_code == 200 and report.content == b"line,reason,raw\r\n"


def test_changing_the_mapping_and_confirming_counts_again_first(
    workspace, ops_user, client, enqueued, django_capture_on_commit_callbacks
):
    job = analyzed(workspace, CSV)
    client.force_login(ops_user)
    form = client.get(f"/people/import/{job.id}/").context["form"]
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v not in (None, False)}
    data.update(dedupe="email", action="confirm")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/people/import/{job.id}/", data, follow=True)
    assert response.redirect_chain, response.context["form"].errors
    job.refresh_from_db()
    assert job.stage == ContactImport.Stage.UPLOADED and enqueued[-1] == ("analyze", job.id)
    assert b"counted again" in response.content


def test_a_failed_analysis_can_be_retried_with_another_encoding(
    workspace, ops_user, client, enqueued, django_capture_on_commit_callbacks
):
    text = "external_id,name\n" + "".join(f"{i},Иван\n" for i in range(20))
    job = analyzed(workspace, text.encode("cp1251"), options={"encoding": "utf-8"})
    client.force_login(ops_user)
    page = client.get(f"/people/import/{job.id}/")
    assert b"cannot be imported as it is" in page.content and b"Windows-1251" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/people/import/{job.id}/",
            {"encoding": "cp1251", "separator": ",", "header": "on", "action": "recheck"},
        )
    assert response.status_code == 302 and enqueued[-1] == ("analyze", job.id)
    tasks.contact_import_analyze_task(job.id)
    job.refresh_from_db()
    assert job.stage == ContactImport.Stage.ANALYZED
    assert job.analysis["preview"][0][1] == "Иван"


def test_the_upload_is_deleted_once_the_import_is_over(workspace):
    job = analyzed(workspace, CSV)
    assert media_path(job.file).exists()
    job = services.contact_import_confirm(
        contact_import=job, options={}, actor=Actor(system="tests")
    )
    job = services.contact_import_run(import_id=job.id, now=NOW)
    assert job.status == JobStatus.DONE and not media_path(job.file).exists()


def test_a_viewer_cannot_open_the_import_pages(workspace, member_client):
    job = ContactImport.objects.create(workspace=workspace, original_name="x.csv")
    client = member_client(Role.VIEWER)
    urls = ["/people/import/", f"/people/import/{job.id}/"]
    urls += [f"/people/import/{job.id}/progress/", f"/people/import/{job.id}/errors.csv"]
    for url in urls:
        assert client.get(url).status_code == 403, url


def test_an_upload_over_the_limit_is_refused_while_streamed_and_nothing_stored(
    workspace, ops_user, client, media, settings, enqueued
):
    settings.CONTACT_IMPORT_MAX_BYTES = 1024 * 1024
    client.force_login(ops_user)
    data = b"email\n" + b"person@x.test\n" * 160_000  # ~2.2 MB
    response = client.post("/people/import/", {"file": SimpleUploadedFile("big.csv", data)})
    assert response.status_code == 413
    assert response.context["form"].errors["file"] == [
        "The file is 2.1 MB; contact imports take files up to 1.0 MB. Split it into smaller files."
    ]
    assert "contact imports take files up to 1.0 MB" in response.content.decode()
    assert not ContactImport.objects.exists() and enqueued == []
    assert not media.exists() or not list(media.rglob("*"))


def test_the_upload_still_checks_csrf_after_installing_the_limit(workspace, ops_user, enqueued):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops_user)
    file = SimpleUploadedFile("people.csv", CSV.encode())
    assert client.post("/people/import/", {"file": file}).status_code == 403  # no token
    assert not ContactImport.objects.exists()
    client.get("/people/import/")
    token = client.cookies["csrftoken"].value
    file = SimpleUploadedFile("people.csv", CSV.encode())
    response = client.post("/people/import/", {"file": file, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert ContactImport.objects.for_workspace(workspace).count() == 1


def test_another_workspaces_import_is_not_found(workspace, other_workspace, ops_user, client):
    theirs = ContactImport.objects.create(workspace=other_workspace, original_name="x.csv")
    client.force_login(ops_user)
    for url in (f"/people/import/{theirs.id}/", f"/people/import/{theirs.id}/errors.csv"):
        assert client.get(url).status_code == 404
    assert client.post(f"/people/import/{theirs.id}/", {"action": "confirm"}).status_code == 404

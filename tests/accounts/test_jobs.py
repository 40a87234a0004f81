"""The job kernel (accounts/jobs.py): the job row, claim, attempt lock, progress, done,
fail and give up, the stored upload and the error report, on both imports' models."""

import csv
import io
from datetime import UTC, datetime

import psycopg
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection

from accounts import jobs
from accounts.jobs import (
    MAX_ATTEMPTS,
    ErrorReport,
    ImportJob,
    Job,
    JobStatus,
    UploadEmpty,
    UploadTooLarge,
    attempt_lock,
    job_claim,
    job_done,
    job_fail,
    job_give_up,
    job_progress,
    media_path,
    report_rows,
    store_upload,
)
from audiences.models import AudienceImport
from people.models import ContactImport

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def contact_job(workspace, **fields) -> ContactImport:
    return ContactImport.objects.create(
        workspace=workspace, original_name="c.csv", file="imports/x.csv", **fields
    )


def audience_job(workspace, **fields) -> AudienceImport:
    return AudienceImport.objects.create(
        workspace=workspace, original_name="a.csv", file="audience-imports/x.csv",
        mode=AudienceImport.Mode.SINGLE, identifier="external_id", **fields,
    )  # fmt: skip


def rows(job):
    return type(job).objects.unscoped().filter(pk=job.pk)


def reload(job):
    job.refresh_from_db()
    return job


# --- the job row ---------------------------------------------------------------------


def test_both_imports_are_import_jobs_with_the_kernel_columns():
    kernel = {f.name for f in ImportJob._meta.get_fields()} - {"error_count"}
    assert {"status", "total_rows", "processed_rows", "attempts", "detail", "error_report",
            "created_at", "started_at", "finished_at", "created_by", "file"} <= kernel  # fmt: skip
    for model in (ContactImport, AudienceImport):
        assert issubclass(model, ImportJob) and issubclass(model, Job)
        assert kernel <= {f.name for f in model._meta.get_fields()}
        assert model._meta.get_field("status").choices == JobStatus.choices
        assert model._meta.ordering == ["-created_at"]
    # the audience import counts its rows in error as invalid and unmatched
    assert ContactImport._meta.get_field("error_count")
    assert "error_count" not in {f.name for f in AudienceImport._meta.get_fields()}


@pytest.mark.parametrize(
    ("status", "total", "processed", "percent"),
    [
        (JobStatus.QUEUED, 0, 0, 0),
        (JobStatus.RUNNING, 0, 0, 0),
        (JobStatus.DONE, 0, 0, 100),
        (JobStatus.RUNNING, 200, 50, 25),
        (JobStatus.RUNNING, 3, 7, 100),
    ],
)
def test_progress_percent(workspace, status, total, processed, percent):
    for job in (contact_job(workspace), audience_job(workspace)):
        job.status, job.total_rows, job.processed_rows = status, total, processed
        assert job.progress_percent == percent


# --- claim, give up, progress, done, fail --------------------------------------------


def test_a_claim_starts_an_attempt_from_scratch(workspace):
    job = audience_job(workspace, processed_rows=40, finished_at=NOW, detail="old")
    assert job_claim(rows(job), now=NOW, detail="Starting…", matched=0)
    job = reload(job)
    assert (job.status, job.attempts, job.started_at) == (JobStatus.RUNNING, 1, NOW)
    assert (job.processed_rows, job.finished_at, job.detail) == (0, None, "Starting…")


def test_a_running_job_whose_attempt_died_is_claimed_again_up_to_max_attempts(workspace):
    job = contact_job(workspace)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert job_claim(rows(job), now=NOW)
        assert reload(job).attempts == attempt
    assert not job_claim(rows(job), now=NOW)  # out of attempts
    assert reload(job).attempts == MAX_ATTEMPTS


@pytest.mark.parametrize("status", [JobStatus.DONE, JobStatus.FAILED])
def test_a_finished_job_is_never_claimed(workspace, status):
    job = contact_job(workspace, status=status)
    assert not job_claim(rows(job), now=NOW)
    assert (reload(job).status, job.attempts) == (status, 0)


def test_a_claim_is_limited_to_the_rows_the_caller_selects(workspace):
    job = contact_job(workspace, stage=ContactImport.Stage.ANALYZED)
    assert not job_claim(rows(job).filter(stage=ContactImport.Stage.UPLOADED), now=NOW)
    assert job_claim(rows(job).filter(stage=ContactImport.Stage.ANALYZED), now=NOW)


def test_a_job_out_of_attempts_is_given_up_with_its_own_words(workspace):
    job = audience_job(workspace)
    for _ in range(MAX_ATTEMPTS):
        assert not job_give_up(rows(job), now=NOW, detail="gave up")  # attempts left
        assert job_claim(rows(job), now=NOW)
    assert reload(job).status == JobStatus.RUNNING
    assert job_give_up(rows(job), now=NOW, detail="gave up")
    job = reload(job)
    assert (job.status, job.detail, job.finished_at) == (JobStatus.FAILED, "gave up", NOW)
    assert not job_give_up(rows(job), now=NOW, detail="again")  # failed stays as it was
    assert reload(job).detail == "gave up"


def test_progress_and_done(workspace):
    job = contact_job(workspace)
    assert not job_done(rows(job), total_rows=3)  # not running: nothing to finish
    job_claim(rows(job), now=NOW)
    job_progress(rows(job), 2)
    assert reload(job).processed_rows == 2
    assert job_done(rows(job), total_rows=3, processed_rows=3, detail="Imported.")
    job = reload(job)
    assert (job.status, job.processed_rows, job.detail) == (JobStatus.DONE, 3, "Imported.")
    assert job.finished_at is not None
    assert not job_done(rows(job), detail="twice")
    assert reload(job).detail == "Imported."


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_fail_marks_an_unfinished_job_failed(workspace, status):
    job = audience_job(workspace, status=status)
    job_fail(rows(job), detail="broken", invalid=2)
    job = reload(job)
    assert (job.status, job.detail, job.invalid) == (JobStatus.FAILED, "broken", 2)
    assert job.finished_at is not None


def test_fail_never_touches_a_finished_job_and_rewords_a_failed_one_when_asked(workspace):
    done = contact_job(workspace, status=JobStatus.DONE, detail="Imported.")
    job_fail(rows(done), detail="late", reword=True)
    assert (reload(done).status, done.detail) == (JobStatus.DONE, "Imported.")
    failed = contact_job(workspace, status=JobStatus.FAILED, detail="first")
    job_fail(rows(failed), detail="second")
    assert reload(failed).detail == "first"
    job_fail(rows(failed), detail="better", reword=True)
    assert reload(failed).detail == "better"


@pytest.mark.django_db(transaction=True)
def test_fail_survives_a_broken_connection(workspace):
    job = contact_job(workspace, status=JobStatus.RUNNING)
    calls = []

    class Broken:
        """The job's rows, whose first update meets a dead connection."""

        def filter(self, **kwargs):
            return self

        def update(self, **fields):
            calls.append(fields)
            if len(calls) == 1:
                raise DatabaseError("server closed the connection unexpectedly")
            return rows(job).filter(status__in=[JobStatus.RUNNING]).update(**fields)

    job_fail(Broken(), detail="worker lost")
    assert len(calls) == 2
    assert (reload(job).status, job.detail) == (JobStatus.FAILED, "worker lost")


# --- attempt lock --------------------------------------------------------------------


def other_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None,
        port=db["PORT"] or None, password=db["PASSWORD"] or None, autocommit=True,
    )  # fmt: skip


def test_the_attempt_lock_tells_a_live_attempt_from_a_dead_one(db):
    key = (0x5445_5354 << 32) + 7  # "TEST"
    with other_connection() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [key])  # a live attempt
        with attempt_lock(key) as got:
            assert not got
        other.execute("SELECT pg_advisory_unlock(%s)", [key])  # it ends
        with attempt_lock(key) as got:
            assert got
            held = other.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
            assert not held  # this attempt holds it now
        assert other.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
        other.execute("SELECT pg_advisory_unlock(%s)", [key])


# --- files: the stored upload and the error report -------------------------------------


def test_store_upload_streams_an_in_memory_file_and_refuses_empty_or_large_ones(media):
    target = media_path("uploads/1/a.csv")
    assert store_upload(SimpleUploadedFile("a.csv", b"1;A\n"), target, limit=10) == 4
    assert target.read_bytes() == b"1;A\n"
    with pytest.raises(UploadEmpty):
        store_upload(SimpleUploadedFile("b.csv", b""), media_path("uploads/1/b.csv"), limit=10)
    with pytest.raises(UploadTooLarge) as raised:
        store_upload(SimpleUploadedFile("c.csv", b"x" * 11), media_path("uploads/c"), limit=10)
    assert raised.value.size == 11


def test_store_upload_of_unknown_size_over_the_limit_leaves_nothing(media):
    class Unsized:
        size = None

        def chunks(self):
            yield b"x" * 8
            yield b"x" * 8

    target = media_path("uploads/1/big.csv")
    with pytest.raises(UploadTooLarge) as raised:
        store_upload(Unsized(), target, limit=10)
    assert raised.value.size is None and not target.exists()


def read_csv(relative: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(media_path(relative).read_text(encoding="utf-8"))))


def test_the_error_report_is_line_numbered_escaped_and_appears_whole():
    report = ErrorReport("reports/1-errors.csv", keep_first=2)
    report.add(2, "bad email", "=1+1,bad")
    report.add(3, "-1 is not a phone", "-1")
    report.add(4, "too long", "y" * 3000)
    assert not media_path("reports/1-errors.csv").exists()  # half a report is never read
    report.close()
    assert read_csv("reports/1-errors.csv") == [
        ["line", "reason", "raw"],
        ["2", "bad email", "'=1+1,bad"],
        ["3", "'-1 is not a phone", "'-1"],
        ["4", "too long", "y" * jobs.MAX_RAW + "…"],
    ]
    assert report.count == 3
    assert report.first == [
        {"line": 2, "reason": "bad email"},
        {"line": 3, "reason": "-1 is not a phone"},
    ]
    # read back as the cells stood in the file
    assert [(r.line, r.reason, r.raw) for r in report_rows("reports/1-errors.csv", limit=2)] == [
        (2, "bad email", "=1+1,bad"),
        (3, "-1 is not a phone", "-1"),
    ]


def test_an_error_report_that_raises_leaves_nothing():
    with pytest.raises(RuntimeError), ErrorReport("reports/2-errors.csv") as report:
        report.add(2, "bad", "raw")
        raise RuntimeError("the job died")
    assert not list(media_path("reports").iterdir())
    with ErrorReport("reports/3-errors.csv") as report:
        report.add(5, "bad", "raw")
    assert read_csv("reports/3-errors.csv")[1] == ["5", "bad", "raw"]


def test_no_report_has_no_rows():
    assert report_rows("", limit=5) == []
    assert report_rows("reports/missing.csv", limit=5) == []

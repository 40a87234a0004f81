"""Retention of audience import files: the upload and the error report of a job finished
more than AUDIENCE_IMPORT_RETENTION_DAYS ago are deleted (never a file another job still
needs), the job page says so, "Import for real" refuses, and beat runs it daily."""

from datetime import timedelta

import pytest
from celery.schedules import crontab
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils import timezone

from accounts.audit import Actor
from accounts.jobs import JobStatus, media_path
from accounts.models import Role
from audiences.import_services import (
    audience_import_files_expire,
    audience_import_repeat,
    audience_import_run,
    audience_import_start,
)
from audiences.models import AudienceImport
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()
EXPIRE_TASK = "audiences.tasks.audience_import_files_expire_task"


@pytest.fixture(autouse=True)
def retention(settings):
    settings.AUDIENCE_IMPORT_RETENTION_DAYS = 14


def start(ws, content: bytes = b"ok;A\nnobody;A\n", **options) -> AudienceImport:
    options = {"mode": "per_row", "identifier": "external_id", **options}
    file = SimpleUploadedFile("audiences.csv", content, content_type="text/csv")
    return audience_import_start(
        workspace=ws, uploaded_by=None, file=file, **options, actor=Actor(system="tests")
    )


def finished(job: AudienceImport, *, ago: timedelta) -> AudienceImport:
    """Run the job and date its end `ago` before NOW."""
    job = audience_import_run(import_id=job.pk)
    AudienceImport.objects.filter(pk=job.pk).update(finished_at=NOW - ago)
    job.refresh_from_db()
    return job


def files_of(job: AudienceImport) -> list:
    return [media_path(job.file), *([media_path(job.error_report)] if job.error_report else [])]


def test_old_finished_jobs_lose_their_upload_and_report(workspace, other_workspace):
    PersonFactory(workspace=workspace, external_id="ok")
    done = finished(start(workspace), ago=timedelta(days=15))
    failed = finished(start(other_workspace, b"a;A\nb;B\n", mode="single", audience_name="VIP"),
                      ago=timedelta(days=30))  # fmt: skip
    assert (done.status, failed.status) == (JobStatus.DONE, JobStatus.FAILED)
    paths = files_of(done) + files_of(failed)
    assert len(paths) == 4 and all(p.is_file() for p in paths)  # both have a report

    assert audience_import_files_expire(now=NOW) == 2

    assert not any(p.exists() for p in paths)
    for job in (done, failed):
        job.refresh_from_db()
        assert (job.file, job.error_report, job.files_removed_at) == ("", "", NOW)
    assert (done.matched, done.unmatched) == (1, 1)  # the counts stay on the page
    assert audience_import_files_expire(now=NOW) == 0  # nothing left to clear


def test_recent_queued_and_running_jobs_keep_their_files(workspace):
    recent = finished(start(workspace), ago=timedelta(days=13, hours=23))
    queued = start(workspace)
    running = start(workspace)
    AudienceImport.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING)
    # a job that died long ago while running was never finished: its file stays too
    AudienceImport.objects.filter(pk__in=[queued.pk, running.pk]).update(
        created_at=NOW - timedelta(days=60), started_at=NOW - timedelta(days=60)
    )
    old = finished(start(workspace), ago=timedelta(days=15))  # in the same folder
    kept = files_of(recent) + files_of(queued) + files_of(running)

    assert audience_import_files_expire(now=NOW) == 1

    assert all(p.is_file() for p in kept)
    assert not media_path(old.file).exists()
    for job in (recent, queued, running):
        before = job.file, job.error_report
        job.refresh_from_db()
        assert (job.file, job.error_report, job.files_removed_at) == (*before, None)


@pytest.mark.parametrize("real_state", ["queued", "finished yesterday"])
def test_a_file_shared_by_an_old_dry_run_and_a_recent_import_for_real_is_kept(
    workspace, real_state
):
    dry = finished(start(workspace, dry_run=True), ago=timedelta(days=20))
    real = audience_import_repeat(
        audience_import=dry, uploaded_by=None, actor=Actor(system="tests")
    )
    if real_state != "queued":
        real = finished(real, ago=timedelta(days=1))
    assert real.file == dry.file

    assert audience_import_files_expire(now=NOW) == 0

    assert media_path(dry.file).is_file() and media_path(dry.error_report).is_file()
    dry.refresh_from_db()
    assert dry.files_removed_at is None and dry.file == real.file
    assert audience_import_run(import_id=real.pk).status == JobStatus.DONE

    # once the import for real is past the retention too, both go
    AudienceImport.objects.filter(pk=real.pk).update(finished_at=NOW - timedelta(days=15))
    assert audience_import_files_expire(now=NOW) == 2
    assert not media_path(real.file).exists()


def test_a_file_already_missing_is_not_an_error(workspace):
    job = finished(start(workspace), ago=timedelta(days=15))
    media_path(job.file).unlink()

    assert audience_import_files_expire(now=NOW) == 1

    assert not media_path(job.error_report).exists()
    job.refresh_from_db()
    assert job.files_removed_at == NOW and job.error_report == ""


def test_a_stored_path_outside_the_import_folder_is_never_deleted(workspace, media_root):
    outside = media_root / "avatars" / "keep.png"
    outside.parent.mkdir(parents=True)
    outside.write_bytes(b"png")
    job = finished(start(workspace), ago=timedelta(days=15))
    AudienceImport.objects.filter(pk=job.pk).update(file="audience-imports/../avatars/keep.png")

    assert audience_import_files_expire(now=NOW) == 1

    assert outside.read_bytes() == b"png"


def test_the_job_page_says_when_the_files_were_deleted_and_offers_neither(member_client, workspace):
    dry = finished(start(workspace, dry_run=True), ago=timedelta(days=15))
    client = member_client(Role.OPS)
    page_url = reverse("audience_import_detail", args=[dry.pk])
    report_url = reverse("audience_import_report", args=[dry.pk])
    page = client.get(page_url).content.decode()
    assert report_url in page and "Import for real" in page

    audience_import_files_expire(now=NOW)

    page = client.get(page_url).content.decode()
    assert (
        f"The uploaded file and any error report were deleted on {date_filter(NOW, 'j M Y')}, "
        "15 days after the analysis (files are kept 14 days)."
    ) in page
    assert report_url not in page and "Import for real" not in page
    assert client.get(report_url).status_code == 404


def test_import_for_real_of_a_cleared_dry_run_is_refused(member_client, workspace):
    dry = finished(start(workspace, dry_run=True), ago=timedelta(days=16))
    audience_import_files_expire(now=NOW)
    dry.refresh_from_db()
    message = (
        "The analyzed file and any error report were deleted after 16 days; upload the file again."  # noqa: E501
    )

    with pytest.raises(ValidationError) as refused:
        audience_import_repeat(audience_import=dry, uploaded_by=None, actor=Actor(system="tests"))
    assert refused.value.messages == [message]

    response = member_client(Role.OPS).post(
        reverse("audience_import_confirm", args=[dry.pk]), follow=True
    )
    assert message in response.content.decode()
    assert AudienceImport.objects.count() == 1


def test_beat_runs_the_retention_daily(settings):
    from config.celery import app

    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == EXPIRE_TASK]
    assert len(entries) == 1
    schedule = entries[0]["schedule"]
    assert isinstance(schedule, crontab)
    assert len(schedule.hour) == 1 and len(schedule.minute) == 1
    assert len(schedule.day_of_week) == 7 and len(schedule.day_of_month) == 31
    assert EXPIRE_TASK in app.tasks


def test_the_task_runs_the_retention(workspace, celery_eager):
    from audiences.tasks import audience_import_files_expire_task

    old = finished(start(workspace), ago=timedelta(days=15))
    recent = finished(start(workspace), ago=timedelta(days=1))

    assert audience_import_files_expire_task.delay().get() == 1

    assert not media_path(old.file).exists() and media_path(recent.file).is_file()
    old.refresh_from_db()
    assert old.files_removed_at is not None

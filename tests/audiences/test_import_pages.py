"""The import pages: form, job page with its htmx-polled progress, report download,
"Import for real", the upload limit, roles and other workspaces."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.audit import Actor
from accounts.jobs import JobStatus
from accounts.models import Role
from audiences.import_services import audience_import_run, audience_import_start
from audiences.models import AudienceImport, TargetAudience
from audiences.services import audience_create
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db

NEW = "/audiences/import/"


def upload(content: bytes, name="audiences.csv"):
    return SimpleUploadedFile(name, content, content_type="text/csv")


def job_of(ws, content: bytes, **options) -> AudienceImport:
    options = {"mode": "per_row", "identifier": "external_id", **options}
    return audience_import_start(
        workspace=ws, uploaded_by=None, file=upload(content), **options, actor=Actor(system="tests")
    )


def test_the_import_page_offers_modes_identifiers_actions_and_both_buttons(
    member_client, workspace
):
    audience_create(workspace=workspace, name="Newsletter", actor=Actor(system="tests"))
    page = member_client(Role.OPS).get(NEW).content.decode()
    for text in (
        "One audience for every person in the file",
        "Each row names its audience: identifier; audience name",
        "Newsletter",
        "Herald ID",
        "External (partner system) ID",
        "Add to the audience",
        "its current members stay",
        "Replace its members with the file",
        "current members who are not in it are removed",
        ">Analyze<",
        ">Import<",
        "Up to 250 MB.",
        "it looks like",  # the encoding rule is stated
    ):
        assert text in page, text


def test_the_page_can_start_on_an_audience(member_client, workspace):
    vip = audience_create(workspace=workspace, name="VIP", actor=Actor(system="tests"))
    page = member_client(Role.OPS).get(f"{NEW}?audience={vip.pk}").content.decode()
    assert f'<option value="{vip.pk}" selected>VIP</option>' in page


def test_analyze_starts_a_dry_run_and_shows_its_page(member_client, workspace):
    client = member_client(Role.OPS)
    response = client.post(
        NEW,
        {"mode": "per_row", "identifier": "external_id", "action": "add", "run": "analyze",
         "file": upload(b"1;A\n")},
    )  # fmt: skip
    job = AudienceImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("audience_import_detail", args=[job.pk])
    assert job.dry_run and job.status == JobStatus.QUEUED and not job.replace


def test_import_starts_the_real_thing_into_a_new_audience_with_replace(member_client, workspace):
    client = member_client(Role.OPS)
    client.post(
        NEW,
        {"mode": "single", "new_audience": "  Fresh   list ", "identifier": "email",
         "action": "replace", "run": "import", "file": upload(b"a@b.co\n")},
    )  # fmt: skip
    job = AudienceImport.objects.get()
    assert (job.dry_run, job.replace, job.mode, job.audience_name, job.identifier) == (
        False, True, "single", "Fresh list", "email",
    )  # fmt: skip


def test_single_mode_needs_an_audience(member_client, workspace):
    response = member_client(Role.OPS).post(
        NEW, {"mode": "single", "identifier": "id", "action": "add", "file": upload(b"1\n")}
    )
    assert response.status_code == 200
    assert "Choose the audience, or type the name of a new one." in response.content.decode()
    assert not AudienceImport.objects.exists()


def test_a_file_the_service_refuses_is_shown_on_the_form(member_client, workspace):
    content = "".join(f"{n};Покупатели из Москвы\n" for n in range(40)).encode("cp1251")
    response = member_client(Role.OPS).post(
        NEW, {"mode": "per_row", "identifier": "id", "action": "add", "file": upload(content)}
    )
    assert response.status_code == 200
    assert "The file is not UTF-8: it looks like Windows-1251 (Cyrillic)." in (
        response.content.decode()
    )


def test_a_file_over_the_limit_gets_a_clear_message_and_is_not_stored(
    member_client, workspace, settings, media_root
):
    settings.AUDIENCE_IMPORT_MAX_BYTES = 1024 * 1024
    response = member_client(Role.OPS).post(
        NEW,
        {"mode": "per_row", "identifier": "id", "action": "add",
         "file": upload(b"1;a\n" * 400_000)},
    )  # fmt: skip
    assert response.status_code == 413
    page = response.content.decode()
    assert "audience imports take files up to 1 MB. Split it into smaller files" in page
    assert not AudienceImport.objects.exists()
    assert not list(media_root.rglob("*.csv"))


def test_the_job_page_polls_while_running_and_stops_when_done(member_client, workspace):
    PersonFactory(workspace=workspace, external_id="1")
    job = job_of(workspace, b"1;Audience 1\nnobody;Audience 1\n")
    client = member_client(Role.OPS)
    progress = reverse("audience_import_progress", args=[job.pk])

    page = client.get(reverse("audience_import_detail", args=[job.pk])).content.decode()
    assert f'hx-get="{progress}" hx-trigger="every 1s"' in page
    assert 'role="progressbar"' in page and "Waiting for a worker" in page

    AudienceImport.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, total_rows=200, processed_rows=50, detail="Reading the file…"
    )
    partial = client.get(progress, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="import-status"')
    assert "<html" not in partial and 'hx-trigger="every 1s"' in partial
    assert 'aria-valuenow="25"' in partial and "50 of about 200 lines" in partial
    assert "import-restarted" not in partial

    AudienceImport.objects.filter(pk=job.pk).update(attempts=2)  # a worker died, it restarted
    partial = client.get(progress, HTTP_HX_REQUEST="true").content.decode()
    assert "it started again from the beginning (attempt 2 of 3)" in partial

    AudienceImport.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)
    audience_import_run(import_id=job.pk)
    partial = client.get(progress, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in partial  # polling stops
    assert 'data-count="matched">1<' in partial and 'data-count="unmatched">1<' in partial
    audience = TargetAudience.objects.get(name="Audience 1")
    assert reverse("audience_detail", args=[audience.pk]) in partial
    assert "nobody;Audience 1" in partial
    assert "no person in this workspace has this external id" in partial
    assert reverse("audience_import_report", args=[job.pk]) in partial


def test_the_report_downloads_as_csv(member_client, workspace):
    job = audience_import_run(import_id=job_of(workspace, b"=1+2;A\n").pk)
    response = member_client(Role.OPS).get(reverse("audience_import_report", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines() == [
        "line,reason,raw",
        "1,no person in this workspace has this external id,'=1+2;A",
    ]


def test_a_job_without_report_has_no_download(member_client, workspace):
    PersonFactory(workspace=workspace, external_id="1")
    job = audience_import_run(import_id=job_of(workspace, b"1;A\n").pk)
    response = member_client(Role.OPS).get(reverse("audience_import_report", args=[job.pk]))
    assert response.status_code == 404


def test_a_dry_run_offers_import_for_real(member_client, workspace):
    PersonFactory(workspace=workspace, external_id="1")
    dry = audience_import_run(import_id=job_of(workspace, b"1;Later\n", dry_run=True).pk)
    client = member_client(Role.OPS)
    page = client.get(reverse("audience_import_detail", args=[dry.pk])).content.decode()
    assert "Import for real" in page and "Audiences the import will create" in page
    assert not TargetAudience.objects.exists()

    response = client.post(reverse("audience_import_confirm", args=[dry.pk]))
    real = AudienceImport.objects.exclude(pk=dry.pk).get()
    assert response["Location"] == reverse("audience_import_detail", args=[real.pk])
    assert not real.dry_run and real.file == dry.file


def test_import_for_real_of_a_real_import_is_refused_with_a_message(member_client, workspace):
    job = audience_import_run(import_id=job_of(workspace, b"1;A\n").pk)
    client = member_client(Role.OPS)
    response = client.post(reverse("audience_import_confirm", args=[job.pk]), follow=True)
    assert "Only a finished analysis (dry run) can be imported for real." in (
        response.content.decode()
    )
    assert AudienceImport.objects.count() == 1


def test_a_failed_job_says_why_and_that_nothing_changed(member_client, workspace):
    job = audience_import_run(import_id=job_of(workspace, b"email\n", identifier="email").pk)
    page = member_client(Role.OPS).get(reverse("audience_import_detail", args=[job.pk]))
    text = page.content.decode()
    assert "The analysis failed" not in text and "The import failed: nothing was changed." in text
    assert "The file holds only a header line" in text


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_who_may_import(member_client, workspace, role):
    job = job_of(workspace, b"1;A\n")
    client = member_client(role)
    expected = 403 if role == Role.VIEWER else 200
    assert client.get(NEW).status_code == expected
    assert client.get(reverse("audience_import_detail", args=[job.pk])).status_code == expected


def test_another_workspaces_import_is_not_found(member_client, workspace, other_workspace):
    job = audience_import_run(import_id=job_of(other_workspace, b"=1;A\n").pk)
    client = member_client(Role.OWNER)
    for name in ("audience_import_detail", "audience_import_progress", "audience_import_report"):
        assert client.get(reverse(name, args=[job.pk])).status_code == 404
    assert client.post(reverse("audience_import_confirm", args=[job.pk])).status_code == 404
    assert client.get(f"{NEW}?audience=999999").status_code == 404

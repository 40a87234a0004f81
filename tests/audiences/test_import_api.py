"""POST /api/v1/audiences/imports and GET /api/v1/audiences/imports/{id} (shared/API.md)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.audit import Actor
from accounts.jobs import JobStatus
from accounts.services import api_key_create
from audiences.import_services import audience_import_run, audience_import_start
from audiences.models import AudienceImport, TargetAudience
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db

IMPORTS = "/api/v1/audiences/imports"


def upload(content: bytes, name="audiences.csv"):
    return SimpleUploadedFile(name, content, content_type="text/csv")


def post(client, content: bytes, **fields):
    data = {"mode": "per_row", "identifier": "external_id", **fields, "file": upload(content)}
    return client.post(IMPORTS, data)


def test_post_answers_202_with_the_id_and_get_follows_the_job(
    api_client, workspace, django_capture_on_commit_callbacks, celery_eager
):
    PersonFactory(workspace=workspace, external_id="123")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api_client, b"123; Audience 1\nnobody; Audience 1\n")
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response.json()["url"] == f"http://testserver{IMPORTS}/{job_id}"

    body = api_client.get(f"{IMPORTS}/{job_id}").json()

    report = f"http://testserver{IMPORTS}/{job_id}/report"
    assert {k: body[k] for k in list(body)[:11]} == {
        "id": job_id,
        "status": "done",
        "dry_run": False,
        "total_rows": 2,
        "processed_rows": 2,
        "matched": 1,
        "unmatched": 1,
        "invalid": 0,
        "audiences_created": ["Audience 1"],
        "error_report": report,
        "detail": "Imported: added 1 membership and created 1 audience.",
    }
    assert body["problems"] == [
        {"line": 2, "reason": "no person in this workspace has this external id",
         "raw": "nobody; Audience 1"},
    ]  # fmt: skip
    csv_response = api_client.get(report)
    assert csv_response.status_code == 200
    assert csv_response["Content-Type"] == "text/csv; charset=utf-8"
    assert b"".join(csv_response.streaming_content).decode().splitlines()[1] == (
        "2,no person in this workspace has this external id,nobody; Audience 1"
    )


def test_a_queued_job_has_no_report_yet(api_client, workspace):
    response = post(api_client, b"1\n", mode="single", audience="VIP", dry_run="true")
    body = api_client.get(f"{IMPORTS}/{response.json()['id']}").json()
    assert body["status"] == "queued" and body["dry_run"] is True
    assert body["error_report"] is None and body["audiences_created"] == []
    assert body["audience"] == "VIP"
    assert api_client.get(f"{IMPORTS}/{body['id']}/report").status_code == 404


def test_single_mode_with_replace_and_dry_run(api_client, workspace):
    response = post(
        api_client, b"1\n", mode="single", audience="VIP", dry_run="true", replace="true"
    )
    job = AudienceImport.objects.get(pk=response.json()["id"])
    assert (job.mode, job.audience_name, job.dry_run, job.replace) == ("single", "VIP", True, True)


def test_a_file_declared_over_the_limit_is_413_before_it_is_read(api_client, settings):
    settings.AUDIENCE_IMPORT_MAX_BYTES = 1024 * 1024
    response = post(api_client, b"1;a\n" * 400_000)
    assert response.status_code == 413
    assert response.json()["detail"].startswith("The file is 1.5 MB; audience imports take")
    assert not AudienceImport.objects.exists()


def test_a_file_over_the_limit_within_the_envelope_is_413_too(api_client, settings, media_root):
    settings.AUDIENCE_IMPORT_MAX_BYTES = 100 * 1024
    response = post(api_client, b"1;a\n" * 30_000)  # 117 KB: over, but within the envelope
    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        "The file is 117 KB; audience imports take files up to 100 KB."
    )
    assert not AudienceImport.objects.exists()
    assert not list(media_root.rglob("*.csv"))


@pytest.mark.parametrize(
    ("fields", "content", "loc", "msg"),
    [
        ({"mode": "both"}, b"1\n", ["body", "mode"], "'single' or 'per_row'"),
        ({"identifier": "uuid"}, b"1\n", ["body", "identifier"],
         "'id', 'external_id', 'email' or 'phone'"),
        ({"mode": "single"}, b"1\n", ["body", "audience"], "Name the audience"),
        ({"audience": "VIP"}, b"1;a\n", ["body", "audience"], "leave `audience` out"),
        ({"dry_run": "perhaps"}, b"1;a\n", ["body", "dry_run"], "valid boolean"),
        ({}, b"", ["body", "file"], "The file is empty"),
        ({}, "1;Покупатели\n".encode("cp1251") * 20, ["body", "file"], "not UTF-8"),
        ({}, b"\x89PNG\r\n\x1a\n" + bytes(256), ["body", "file"], "a PNG image"),
    ],
)  # fmt: skip
def test_bad_fields_are_422_saying_which(api_client, fields, content, loc, msg):
    response = post(api_client, content, **fields)
    assert response.status_code == 422, response.content
    error = response.json()["errors"][0]
    assert error["loc"] == loc and msg in error["msg"]
    assert not AudienceImport.objects.exists()


def test_a_missing_file_is_422(api_client):
    response = api_client.post(IMPORTS, {"mode": "per_row"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][-1] == "file"


def test_another_workspaces_import_is_404(api_client, workspace, other_workspace):
    job = audience_import_start(
        workspace=other_workspace, uploaded_by=None, file=upload(b"=1;a\n"),
        mode="per_row", identifier="external_id", actor=Actor(system="tests")
    )  # fmt: skip
    job = audience_import_run(import_id=job.pk)
    assert job.error_report
    assert api_client.get(f"{IMPORTS}/{job.pk}").status_code == 404
    assert api_client.get(f"{IMPORTS}/{job.pk}/report").status_code == 404
    assert api_client.get(f"{IMPORTS}/999999").status_code == 404


def test_without_a_key_it_is_401(client):
    assert client.post(IMPORTS, {"mode": "per_row", "file": upload(b"1;a\n")}).status_code == 401
    assert client.get(f"{IMPORTS}/1").status_code == 401


def test_imports_paths_are_not_read_as_audience_ids(api_client, workspace):
    """The audiences router comes after this one: /audiences/imports/{id} is an import."""
    response = post(api_client, b"1;a\n")
    job_id = response.json()["id"]
    assert api_client.get(f"{IMPORTS}/{job_id}").json()["id"] == job_id
    audience = TargetAudience.objects.create(workspace=workspace, name="Plain")
    assert api_client.get(f"/api/v1/audiences/{audience.pk}").json()["name"] == "Plain"
    assert api_client.get("/api/v1/audiences").status_code == 200


def test_the_openapi_document_lists_the_import_endpoints(api_client):
    paths = api_client.get("/api/v1/openapi.json").json()["paths"]
    assert "post" in paths["/api/v1/audiences/imports"]
    assert "get" in paths["/api/v1/audiences/imports/{audience_import_id}"]
    assert "get" in paths["/api/v1/audiences/imports/{audience_import_id}/report"]


def test_a_key_of_another_workspace_sees_its_own_jobs_only(client, workspace, other_workspace):
    _, raw = api_key_create(workspace=other_workspace, name="other", actor=Actor(system="tests"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    response = post(client, b"1;a\n")
    job = AudienceImport.objects.get(pk=response.json()["id"])
    assert job.workspace_id == other_workspace.pk and job.status == JobStatus.QUEUED

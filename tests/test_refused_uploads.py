"""A refused upload is never read: role_required refuses a viewer's POST to every import
URL before the body is parsed, and Django's 403 page does not parse it afterwards to look
for a CSRF token (accounts.permissions.role_required marks the CSRF check as done)."""

import io

import pytest
from django.http import multipartparser
from django.test import Client

from audiences.models import AudienceImport
from people.models import ContactImport, DoNotContact

pytestmark = pytest.mark.django_db

LARGE = b"a@x.test;Audience 1\n" * 50_000  # ~1 MB


@pytest.fixture
def parsed_bodies(monkeypatch):
    """How many multipart bodies were read."""
    calls = []
    real_parse = multipartparser.MultiPartParser.parse

    def parse(self):
        calls.append(1)
        return real_parse(self)

    monkeypatch.setattr(multipartparser.MultiPartParser, "parse", parse)
    return calls


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def upload(data: bytes, name="upload.csv"):
    file = io.BytesIO(data)
    file.name = name
    return file


@pytest.mark.parametrize(
    "url, fields",
    [
        ("/dnc/import/", {"channel": "email"}),
        ("/people/import/", {}),
        ("/audiences/import/", {"mode": "per_row", "identifier": "email", "action": "add"}),
    ],
)
def test_a_viewer_is_refused_before_the_upload_is_read(
    viewer, workspace, parsed_bodies, url, fields
):
    client = Client(enforce_csrf_checks=True)  # as browsers are: the CSRF check is real
    client.force_login(viewer)
    assert client.get("/dnc/").status_code == 200  # a viewer may look, and gets a CSRF cookie
    token = client.cookies["csrftoken"].value
    data = {**fields, "file": upload(LARGE), "csrfmiddlewaretoken": token}
    r = client.post(url, data)
    assert r.status_code == 403
    assert "cannot do this" in r.text  # the role check, not the CSRF one
    assert parsed_bodies == []
    assert not DoNotContact.objects.for_workspace(workspace).exists()
    assert not ContactImport.objects.exists()
    assert not AudienceImport.objects.exists()

"""The Do Not Contact CSV import (people.views.dnc_import, people.services.dnc.dnc_import):
the role is checked before the body is read, the upload is streamed to disk under the
contact import's size limit, the file is read line by line and staged in batches, and
every line that cannot be imported is reported with its number and reason."""

import io

import pytest
from django.http import multipartparser
from django.test import Client

from accounts.audit import Actor
from people.imports import staging
from people.models import DoNotContact
from people.services import dnc as dnc_services
from people.services.dnc import dnc_add


@pytest.fixture
def ops_client(client, ops_user):
    client.force_login(ops_user)
    return client


def upload(data: bytes, name="dnc.csv"):
    file = io.BytesIO(data)
    file.name = name
    return file


def addresses(workspace):
    return set(DoNotContact.objects.for_workspace(workspace).values_list("address", flat=True))


def test_a_huge_cell_is_a_numbered_invalid_line_and_later_columns_do_not_matter(
    ops_client, workspace
):
    data = (
        b"email\n"
        b"a@x.test\n"
        + b'"'
        + b"b" * 140_000
        + b'@x.test"\n'  # one cell of 140 KB: no address is that long
        + b"c@x.test,"
        + b"n" * 140_000
        + b"\n"  # ... in another column, which a Do Not Contact import does not read
        + b"d@x.test\n"
    )
    r = ops_client.post("/dnc/import/", {"channel": "email", "file": upload(data)})
    assert r.status_code == 200
    report = r.context["report"]
    assert (report.added, report.already) == (3, 0)
    [(line, _raw, reason)] = report.invalid
    assert line == 3 and "is not a valid email address" in reason and len(reason) < 200


@pytest.mark.parametrize("separator", [b";", b"\t", b","])
def test_the_first_column_of_a_separated_export_is_the_address(ops_client, workspace, separator):
    data = separator.join([b"email", b"note"]) + b"\n"
    data += separator.join([b"kira.rossi@example.com", b"extra"]) + b"\n"
    data += separator.join([b"ola@example.com", b"more; text, here"]) + b"\n"
    r = ops_client.post("/dnc/import/", {"channel": "email", "file": upload(data)})
    report = r.context["report"]
    assert (report.added, report.invalid) == (2, [])


def test_an_unclosed_quote_loses_no_line_after_it(ops_client, workspace):
    data = b'a@x.test\n"b@x.test\nc@x.test\n"d@x.test"\n'
    r = ops_client.post("/dnc/import/", {"channel": "email", "file": upload(data)})
    report = r.context["report"]
    assert report.added == 3  # a, c and d
    assert [(line, reason) for line, _, reason in report.invalid] == [
        (2, "a quote opens the address and never closes")
    ]
    assert addresses(workspace) == {"a@x.test", "c@x.test", "d@x.test"}
    assert "1 invalid line" in r.text


def test_a_line_over_the_line_limit_is_skipped_and_reported(ops_client, workspace):
    data = b"a@x.test\n" + b"x" * (1024 * 1024 + 10) + b"\nb@x.test\n"
    r = ops_client.post("/dnc/import/", {"channel": "email", "file": upload(data)})
    report = r.context["report"]
    assert report.added == 2
    [(line, raw, reason)] = report.invalid
    assert line == 2 and "longer than" in reason and len(raw) <= 200


def test_addresses_are_staged_in_batches_and_counted_once(ops_client, workspace, monkeypatch):
    monkeypatch.setattr(dnc_services, "DNC_IMPORT_BATCH", 2)
    written = []
    real_write = staging.Stage.write_data

    def spy(self, data, rows):
        written.append(rows)
        return real_write(self, data, rows)

    monkeypatch.setattr(staging.Stage, "write_data", spy)
    dnc_add(workspace=workspace, channel="email", address="old@x.test", actor=Actor(system="tests"))
    data = b"a@x.test\nb@x.test\nOLD@x.test\nbad\nc@x.test\nA@X.TEST\nd@x.test\n"
    r = ops_client.post("/dnc/import/", {"channel": "email", "file": upload(data)})
    report = r.context["report"]
    # a@x.test twice (in two batches) is added once; old@x.test was there already
    assert (report.added, report.already, report.invalid_count) == (4, 1, 1)
    assert written and max(written) <= 2 and sum(written) == 6
    assert addresses(workspace) == {"old@x.test", "a@x.test", "b@x.test", "c@x.test", "d@x.test"}
    entry = DoNotContact.objects.for_workspace(workspace).get(address="c@x.test")
    assert (entry.source, entry.created_by.email) == ("import", "ops@acme.test")


def test_a_large_upload_on_disk_crosses_batches(ops_client, workspace, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # Django puts the upload in a temporary file
    lines = b"".join(b"p%d@x.test\n" % i for i in range(12_000))
    r = ops_client.post(
        "/dnc/import/", {"channel": "email", "file": upload(b"email\n" + lines * 2)}
    )
    report = r.context["report"]
    assert (report.added, report.already, report.invalid_count) == (12_000, 0, 0)
    assert DoNotContact.objects.for_workspace(workspace).count() == 12_000


def test_only_the_first_invalid_lines_are_kept_the_rest_counted(ops_client, workspace):
    data = b"".join(b"nope %d\n" % i for i in range(700)) + b"ok@x.test\n"
    r = ops_client.post("/dnc/import/", {"channel": "email", "file": upload(data)})
    report = r.context["report"]
    assert report.added == 1 and report.invalid_count == 700 and len(report.invalid) == 500
    assert "700 invalid lines" in r.text and "first 500 invalid lines" in r.text


def test_a_file_over_the_limit_is_refused_and_nothing_added(ops_client, workspace, settings):
    settings.CONTACT_IMPORT_MAX_BYTES = 1000
    data = b"".join(b"person%d@x.test\n" % i for i in range(200))  # ~3.4 KB
    r = ops_client.post("/dnc/import/", {"channel": "email", "file": upload(data)})
    assert r.status_code == 413
    assert "the largest a Do Not Contact import takes" in r.text
    assert not DoNotContact.objects.for_workspace(workspace).exists()


def test_a_nul_in_a_line_is_an_invalid_line(ops_client, workspace):
    data = b"a@x.test\ntok\x00en\nb@x.test\n"
    r = ops_client.post("/dnc/import/", {"channel": "push", "file": upload(data)})
    report = r.context["report"]
    assert report.added == 2
    assert [(line, reason) for line, _, reason in report.invalid] == [
        (2, "The address contains a character that is not allowed (NUL or a lone surrogate).")
    ]


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


def test_a_viewer_is_refused_before_the_upload_is_read(viewer, workspace, parsed_bodies):
    client = Client(enforce_csrf_checks=True)  # as browsers are: the CSRF check is real
    client.force_login(viewer)
    assert client.get("/dnc/").status_code == 200  # a viewer may look, and gets a CSRF cookie
    token = client.cookies["csrftoken"].value
    r = client.post(
        "/dnc/import/",
        {"channel": "email", "file": upload(b"a@x.test\n" * 1000), "csrfmiddlewaretoken": token},
    )
    assert r.status_code == 403
    assert "cannot do this" in r.text  # the role check, not the CSRF one
    assert parsed_bodies == []
    assert not DoNotContact.objects.for_workspace(workspace).exists()


def test_the_import_still_checks_csrf_after_installing_the_limit(ops_user, workspace):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops_user)
    data = {"channel": "email", "file": upload(b"a@x.test\n")}
    assert client.post("/dnc/import/", data).status_code == 403  # no token
    assert not DoNotContact.objects.for_workspace(workspace).exists()
    client.get("/dnc/")
    token = client.cookies["csrftoken"].value
    r = client.post(
        "/dnc/import/",
        {"channel": "email", "file": upload(b"a@x.test\n"), "csrfmiddlewaretoken": token},
    )
    assert r.status_code == 200 and r.context["report"].added == 1
    assert addresses(workspace) == {"a@x.test"}

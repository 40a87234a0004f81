"""The audience page: members with when and how they joined, search, keyset pages, the CSV
download and the way into an import for this audience."""

import csv
import io
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.audit import Actor
from accounts.models import Role
from audiences import views
from audiences.models import MemberSource
from audiences.services import audience_add_people, audience_create
from people.models import Person
from tests.factories import PersonFactory

ADDED = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


@pytest.fixture
def ops_client(client, ops_user):
    client.force_login(ops_user)
    return client


def _audience(workspace, name, people, source=MemberSource.MANUAL):
    audience = audience_create(workspace=workspace, name=name, actor=Actor(system="tests"))
    _add(audience, people, source)
    return audience


def _add(audience, people, source=MemberSource.MANUAL):
    audience_add_people(
        audience=audience,
        people=Person.objects.filter(pk__in=[p.pk for p in people]),
        source=source,
        actor=Actor(system="tests"),
    )


class _MemberTable(HTMLParser):
    """The text of each body cell of #member-table, row by row."""

    def __init__(self):
        super().__init__()
        self.rows, self._in_table, self._in_body, self._cell = [], False, False, None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and ("id", "member-table") in attrs:
            self._in_table = True
        elif self._in_table and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append([])
        elif self._in_body and tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join(self._cell.split()))
            self._cell = None
        elif tag == "table":
            self._in_table = self._in_body = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _member_rows(response) -> dict[str, list[str]]:
    """Cells of the member table by external id (the second column)."""
    parser = _MemberTable()
    parser.feed(response.text)
    return {cells[1]: cells for cells in parser.rows if len(cells) > 1}


def _link(response, label) -> str | None:
    """The URL of the link labelled `label`, resolved against the page's own URL."""
    match = re.search(rf'href="([^"]*)">{re.escape(label)}</a>', response.text)
    if not match:
        return None
    return urljoin(response.request["PATH_INFO"], match.group(1).replace("&amp;", "&"))


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))


# --- Columns ----------------------------------------------------------------------------


def test_members_show_when_they_were_added_in_the_workspace_time_zone_and_how(
    ops_client, workspace
):
    workspace.time_zone = "America/New_York"
    workspace.save()
    imported = PersonFactory(workspace=workspace, external_id="imp-1")
    by_api = PersonFactory(workspace=workspace, external_id="api-1")
    with time_machine.travel(ADDED, tick=False):
        audience = _audience(workspace, "Winter sale", [imported], MemberSource.IMPORT)
        _add(audience, [by_api], MemberSource.API)

    rows = _member_rows(ops_client.get(f"/audiences/{audience.pk}/"))

    # 15:30 UTC is 10:30 in New York
    assert rows["imp-1"][-2:] == ["25 Nov 2026 10:30", "Import"]
    assert rows["api-1"][-2:] == ["25 Nov 2026 10:30", "API"]


def test_member_page_reads_members_and_memberships_in_one_query_whatever_the_page_size(
    ops_client, workspace
):
    audience = _audience(workspace, "A", [PersonFactory(workspace=workspace) for _ in range(3)])
    ops_client.get(f"/audiences/{audience.pk}/")  # the first request of a session writes it
    with CaptureQueriesContext(connection) as few:
        ops_client.get(f"/audiences/{audience.pk}/")
    _add(audience, [PersonFactory(workspace=workspace) for _ in range(30)], MemberSource.FLOW)
    with CaptureQueriesContext(connection) as many:
        page = ops_client.get(f"/audiences/{audience.pk}/")

    assert len(_member_rows(page)) == 33
    assert len(many.captured_queries) == len(few.captured_queries)
    member_queries = [
        q["sql"] for q in many.captured_queries if "audiences_audiencemember" in q["sql"]
    ]
    assert len(member_queries) == 1
    assert member_queries[0].count('JOIN "audiences_audiencemember"') == 1


# --- Search and pages -------------------------------------------------------------------


def test_search_finds_members_by_external_id_email_or_name_and_nobody_outside(
    ops_client, workspace
):
    grace = PersonFactory(
        workspace=workspace, external_id="crm-42", email="grace@navy.test", first_name="Grace"
    )
    PersonFactory(workspace=workspace, first_name="Alan", last_name="Turing")
    outsider = PersonFactory(
        workspace=workspace, external_id="crm-43", email="grace2@navy.test", first_name="Grace"
    )
    other_member = PersonFactory(workspace=workspace, first_name="Zoe", last_name="Ng")
    audience = _audience(workspace, "Navy", [grace, other_member])
    url = f"/audiences/{audience.pk}/"

    for q in ["crm-42", "GRACE@navy.test", "Gra"]:
        assert list(_member_rows(ops_client.get(url, {"q": q}))) == ["crm-42"], q
    for q in [outsider.external_id, outsider.email, "Alan"]:
        page = ops_client.get(url, {"q": q})
        assert _member_rows(page) == {}, q
        assert "Nobody in this audience matches" in page.text


def test_pages_keep_the_search(ops_client, workspace, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    anns = [PersonFactory(workspace=workspace, first_name="Ann", last_name="Lee") for _ in range(5)]
    bobs = [PersonFactory(workspace=workspace, first_name="Bob", last_name="Lee") for _ in range(5)]
    audience = _audience(workspace, "Mixed", anns + bobs)

    url, seen, pages = f"/audiences/{audience.pk}/?q=Ann", [], []
    while url:
        page = ops_client.get(url)
        assert page.status_code == 200
        pages.append(page)
        seen += [p.pk for p in page.context["rows"]]
        url = _link(page, "Older →")
        assert url is None or "q=Ann" in url

    assert seen == sorted((p.pk for p in anns), reverse=True)
    back = _link(pages[-1], "← Newer")
    assert "q=Ann" in back
    assert [p.pk for p in ops_client.get(back).context["rows"]] == seen[2:4]


# --- CSV download -----------------------------------------------------------------------


def test_csv_has_every_member_once_with_membership_and_escaped_formulas(ops_client, workspace):
    workspace.time_zone = "America/New_York"
    workspace.save()
    risky = PersonFactory(
        workspace=workspace,
        external_id="=HYPERLINK(1)",
        email="risky@x.test",
        phone="+447911123456",
        first_name="+cmd",
        last_name="@evil",
    )
    plain = PersonFactory(workspace=workspace, external_id="plain", first_name="Ann")
    PersonFactory(workspace=workspace, external_id="outsider")
    with time_machine.travel(ADDED, tick=False):
        audience = _audience(workspace, "High value", [risky], MemberSource.SEGMENT)
        _add(audience, [plain], MemberSource.MANUAL)
        r = ops_client.get(f"/audiences/{audience.pk}/export/")

    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    assert r["Content-Disposition"] == 'attachment; filename="audience-high-value-20261125.csv"'
    rows = _csv(r)
    assert rows[0] == [
        "herald_id",
        "external_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "added_at",
        "source",
    ]
    assert rows[1:] == [
        [str(plain.pk), "plain", plain.email, "", "Ann", plain.last_name,
         "2026-11-25T10:30:00-05:00", "Manual"],
        [str(risky.pk), "'=HYPERLINK(1)", "risky@x.test", "+447911123456", "'+cmd", "'@evil",
         "2026-11-25T10:30:00-05:00", "Segment"],
    ]  # fmt: skip


def test_csv_of_thousands_of_members_is_read_in_batches(ops_client, workspace, monkeypatch):
    monkeypatch.setattr(views, "EXPORT_BATCH_SIZE", 500)
    people = Person.objects.bulk_create(
        PersonFactory.build(workspace=workspace) for _ in range(3_000)
    )
    audience = _audience(workspace, "Big", people[:2_600])

    with CaptureQueriesContext(connection) as queries:
        rows = _csv(ops_client.get(f"/audiences/{audience.pk}/export/"))

    ids = [int(row[0]) for row in rows[1:]]
    assert ids == sorted((p.pk for p in people[:2_600]), reverse=True)
    member_reads = [q for q in queries.captured_queries if "audiences_audiencemember" in q["sql"]]
    assert len(member_reads) == 6  # 5 full batches of 500, then the last 100


def test_viewer_can_download_the_csv(client, viewer, workspace):
    client.force_login(viewer)
    audience = _audience(workspace, "A", [PersonFactory(workspace=workspace, external_id="v1")])
    page = client.get(f"/audiences/{audience.pk}/")
    assert f'href="/audiences/{audience.pk}/export/"' in page.text
    rows = _csv(client.get(f"/audiences/{audience.pk}/export/"))
    assert [row[1] for row in rows[1:]] == ["v1"]


def test_another_workspaces_audience_cannot_be_downloaded(ops_client, other_workspace):
    theirs = _audience(
        other_workspace, "Theirs", [PersonFactory(workspace=other_workspace, external_id="x")]
    )
    assert ops_client.get(f"/audiences/{theirs.pk}/export/").status_code == 404
    assert ops_client.get(f"/audiences/{theirs.pk}/").status_code == 404


# --- Import into this audience ----------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OPS, Role.MARKETER])
def test_who_may_import_gets_a_button_that_preselects_the_audience(role, member_client, workspace):
    client = member_client(role)
    audience = _audience(workspace, "Loyal", [])
    page = client.get(f"/audiences/{audience.pk}/")
    href = f"/audiences/import/?audience={audience.pk}"
    assert f'href="{href}"' in page.text
    form = client.get(href).context["form"]
    assert form.initial["audience"] == audience.pk


def test_viewer_gets_no_import_button(client, viewer, workspace):
    client.force_login(viewer)
    audience = _audience(workspace, "Loyal", [])
    page = client.get(f"/audiences/{audience.pk}/")
    assert page.status_code == 200
    assert "/audiences/import/" not in page.text


def test_a_search_holding_a_nul_byte_is_refused_and_a_mangled_page_link_ignored(
    ops_client, workspace
):
    audience = _audience(workspace, "Nul", [PersonFactory(workspace=workspace)])
    # NUL anywhere in a query string is refused by accounts.middleware for every page.
    response = ops_client.get(f"/audiences/{audience.pk}/", {"q": "ab\x00c"})
    assert response.status_code == 400
    assert "a character that is not allowed" in response.content.decode()
    response = ops_client.get(f"/audiences/{audience.pk}/", {"q": "abc", "after": "²"})
    assert response.status_code == 200
    assert "Nobody in this audience matches “abc”." in response.content.decode()


def test_a_member_from_a_segment_names_and_links_the_segment(ops_client, workspace):
    from segments.services import segment_create, segment_delete, segment_to_audience

    PersonFactory(workspace=workspace, city="Oslo")
    rules = {"attribute": "city", "op": "is", "value": "Oslo"}
    oslo = segment_create(
        workspace=workspace,
        name="Oslo people",
        kind="snapshot",
        rules=rules,
        actor=Actor(system="t"),
    )
    segment_to_audience(
        segment=oslo, audience_name="Nordics", action="add", actor=Actor(system="t")
    )
    audience = views.selectors.get_audience_by_name(workspace=workspace, name="Nordics")
    html = ops_client.get(f"/audiences/{audience.pk}/").content.decode()
    assert f'Segment: <a href="/segments/{oslo.pk}/">Oslo people</a>' in html
    segment_delete(segment=oslo, actor=Actor(system="t"))
    html = ops_client.get(f"/audiences/{audience.pk}/").content.decode()
    assert "Segment: a deleted segment" in html

"""Bad input on the segment pages answers a form error, a message or a harmless page, never
a 500: digits that str.isdigit() accepts but int() refuses ("²"), numbers too long for int(),
malformed builder actions, and NUL characters, which PostgreSQL text cannot hold.

Query strings with a NUL are also refused by a middleware before any view runs; the tests
of those take it out, to prove the pages are safe where the value reaches SQL."""

import pytest
from django.conf import settings as django_settings

from accounts.audit import Actor
from people.models import Person
from people.services.people import person_upsert
from segments.models import Segment, SegmentKind
from segments.selectors import segment_list
from segments.services import segment_create, static_members_change

LONDON = {"attribute": "city", "op": "is", "value": "London"}
HUGE = "9" * 5000  # past Python's 4300-digit limit for int()
NUL = "a\x00b"


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


@pytest.fixture
def no_query_guard(settings):
    """The project without the middleware that answers 400 to a NUL in the query string."""
    settings.MIDDLEWARE = [
        m for m in django_settings.MIDDLEWARE if not m.endswith(".BadCharacterMiddleware")
    ]


@pytest.fixture
def londoners(workspace):
    person_upsert(
        workspace=workspace, external_id="a", data={"city": "London"}, actor=Actor(system="tests")
    )
    return segment_create(
        workspace=workspace,
        name="Londoners",
        kind="snapshot",
        rules=LONDON,
        actor=Actor(system="tests"),
    )


@pytest.fixture
def picked(workspace, londoners):
    segment = segment_create(
        workspace=workspace, name="Picked", kind="static", actor=Actor(system="tests")
    )
    static_members_change(
        segment=segment,
        people=Person.objects.for_workspace(workspace),
        add=True,
        actor=Actor(system="tests"),
    )
    return segment


EVENT_ROW = {
    "name": "New",
    "kind": "snapshot",
    "n-0-type": "group",
    "n-0-match": "all",
    "n-0.0-type": "event",
    "n-0.0-event": "App Launch",
    "n-0.0-w0_prop": "plan",
    "n-0.0-w0_op": "is",
    "n-0.0-w0_value": "pro",
}


# --- Digits int() refuses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        "unwhere:0.0:²",
        f"unwhere:0.0:{HUGE}",
        "unwhere:0.0:٣",
        "unwhere:0.0:",
        "add:x",
        "add:",
        "add",
        ":",
        "remove:0",
        "group:0.0",
        "where:0",
        "remove:0.²",
        "add:0:0",
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_malformed_builder_actions_change_nothing(marketer_client, workspace, action, htmx):
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "builder-tree"} if htmx else {}
    r = marketer_client.post("/segments/new/", {**EVENT_ROW, "builder": action}, **headers)
    assert r.status_code == 200
    assert 'value="plan"' in r.content.decode()  # the property filter is still there
    assert marketer_client.get(f"/segments/new/?builder={action}").status_code == 200


def test_a_valid_unwhere_still_removes_the_filter(marketer_client, workspace):
    r = marketer_client.post("/segments/new/", {**EVENT_ROW, "builder": "unwhere:0.0:0"})
    assert r.status_code == 200 and 'value="plan"' not in r.content.decode()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"n-0.0-type": "segment", "n-0.0-segment": "²"}, "Choose a segment from the list."),
        ({"n-0.0-type": "segment", "n-0.0-segment": "١"}, "Choose a segment from the list."),
        ({"n-0.0-type": "event", "n-0.0-event": "E", "n-0.0-count": "²"}, "whole number"),
        (
            {
                "n-0.0-type": "event",
                "n-0.0-event": "E",
                "n-0.0-time_op": "within_last",
                "n-0.0-amount": "³",
            },
            "whole number",
        ),  # fmt: skip
    ],
)
def test_superscript_digits_in_builder_rows_are_row_errors(
    marketer_client, workspace, fields, error
):
    data = {"name": "New", "kind": "snapshot", "n-0-type": "group", **fields}
    r = marketer_client.post("/segments/new/", data)
    assert r.status_code == 200 and error in r.content.decode()
    assert not Segment.objects.filter(name="New").exists()
    r = marketer_client.post("/segments/preview/", data)
    assert r.status_code == 200 and error in r.content.decode()


@pytest.mark.parametrize("q", ["²", "١٢", HUGE, "12345678901234567890"])
def test_list_search_with_odd_digits_is_a_name_search(marketer_client, londoners, q):
    r = marketer_client.get("/segments/", {"q": q})
    assert r.status_code == 200 and "Londoners" not in r.content.decode()
    assert (
        marketer_client.get("/segments/", {"q": str(londoners.pk)})
        .content.decode()
        .count("Londoners")
    )


@pytest.mark.parametrize("after", ["²", HUGE, "99999999999999999999", "-1"])
def test_members_page_cursor_with_odd_digits_is_ignored(marketer_client, londoners, after):
    r = marketer_client.get(f"/segments/{londoners.pk}/", {"after": after})
    assert r.status_code == 200


@pytest.mark.parametrize("person", ["²", HUGE, "99999999999999999999"])
def test_removing_odd_person_ids_removes_nobody(marketer_client, workspace, picked, person):
    r = marketer_client.post(f"/segments/{picked.pk}/members/remove/", {"person": [person]})
    assert r.status_code == 302
    picked.refresh_from_db()
    assert picked.people_count == 1


def test_api_error_locations_with_odd_digits_are_422(api_client, workspace):
    r = api_client.post(
        "/api/v1/segments/preview",
        {"rules": {"all": [{"attribute": "city", "op": "is", "value": "x", "²": 1}]}},
        content_type="application/json",
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "rules", "all", 0, "²"]
    assert api_client.get("/api/v1/segments", {"q": "²"}).status_code == 200


# --- NUL characters ---------------------------------------------------------------------------


def test_list_search_with_a_nul_finds_nothing(marketer_client, londoners, no_query_guard):
    r = marketer_client.get("/segments/", {"q": "Lon\x00"})
    assert r.status_code == 200 and "Londoners" not in r.content.decode()
    assert list(segment_list(workspace=londoners.workspace, q="Lon\x00don")) == []


def test_why_with_a_nul_matches_nobody(marketer_client, londoners, no_query_guard):
    for params in ({"person": NUL}, {"person_id": NUL}):
        r = marketer_client.get(f"/segments/{londoners.pk}/", params)
        assert r.status_code == 200
        assert "Nobody in this workspace matches that." in r.content.decode()


def test_api_list_search_with_a_nul_is_a_422_naming_it(api_client, londoners, no_query_guard):
    r = api_client.get("/api/v1/segments", {"q": NUL})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "q"]


@pytest.mark.parametrize(
    "fields",
    [
        {"n-0.0-type": "attribute", "n-0.0-attribute": "city", "n-0.0-op": "is",
         "n-0.0-value": NUL},
        {"n-0.0-type": "event", "n-0.0-event": NUL},
        {"n-0.0-type": "event", "n-0.0-event": "E", "n-0.0-w0_prop": NUL, "n-0.0-w0_value": "1"},
        {"n-0.0-type": "event", "n-0.0-event": "E", "n-0.0-w0_prop": "p", "n-0.0-w0_value": NUL},
        {"n-0.0-type": "tag", "n-0.0-tag": NUL},
        {"n-0.0-type": "audience", "n-0.0-audience": NUL},
    ],
)  # fmt: skip
def test_a_nul_in_a_builder_row_is_a_row_error(marketer_client, workspace, fields):
    data = {"name": "New", "kind": "snapshot", "n-0-type": "group", **fields}
    for url in ("/segments/new/", "/segments/preview/"):
        r = marketer_client.post(url, data)
        assert r.status_code == 200
        assert "NUL" in r.content.decode()
    assert not Segment.objects.filter(name="New").exists()


def test_into_an_audience_named_with_a_nul_is_a_message(marketer_client, londoners):
    r = marketer_client.post(
        f"/segments/{londoners.pk}/to-audience/", {"audience": NUL, "action": "add"}, follow=True
    )
    assert r.status_code == 200 and "NUL" in r.content.decode()


def test_a_static_segment_named_with_a_nul_is_a_message(marketer_client, londoners):
    r = marketer_client.post(
        "/people/bulk/segment/", {"segment": NUL, "action": "add", "all_matching": "1"}, follow=True
    )
    assert r.status_code == 200 and "NUL" in r.content.decode()
    assert not Segment.objects.filter(kind=SegmentKind.STATIC).exists()


def test_api_refuses_nul_in_rules_names_and_audiences_with_422(api_client, londoners):
    def post(url, body):
        return api_client.post(url, body, content_type="application/json")

    r = post("/api/v1/segments/preview", {"rules": {"tag": NUL, "op": "has"}})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "rules", "tag"]
    r = post(
        "/api/v1/segments", {"name": "x", "kind": "snapshot", "rules": {"tag": NUL, "op": "has"}}
    )
    assert r.status_code == 422
    r = post("/api/v1/segments", {"name": NUL, "kind": "static"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "name"]
    r = api_client.patch(
        f"/api/v1/segments/{londoners.pk}", {"name": NUL}, content_type="application/json"
    )
    assert r.status_code == 422
    r = post(f"/api/v1/segments/{londoners.pk}/to-audience", {"audience": NUL, "action": "add"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "audience"]
    assert not Segment.objects.filter(kind=SegmentKind.STATIC).exists()


def test_api_static_members_with_a_nul_id_are_a_422_and_change_nothing(api_client, workspace):
    segment = segment_create(
        workspace=workspace, name="Picked", kind="static", actor=Actor(system="tests")
    )
    person_upsert(workspace=workspace, external_id="a", data={}, actor=Actor(system="tests"))
    r = api_client.post(
        f"/api/v1/segments/{segment.pk}/members",
        {"people": ["a", NUL]},
        content_type="application/json",
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "people", "1"]
    assert not segment.memberships.exists()

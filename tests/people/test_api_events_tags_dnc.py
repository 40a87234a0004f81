"""Events, Tags and Do Not Contact endpoints of shared/API.md."""

import pytest

from accounts.audit import Actor
from people.models import DoNotContact, Event, EventType, Person, PersonTag, Tag
from tests.factories import PersonFactory


def post(client, url, body):
    return client.post(url, data=body, content_type="application/json")


def test_events_are_accepted_unknown_people_created_and_catalogued(api_client, workspace):
    PersonFactory(workspace=workspace, external_id="known")
    r = post(
        api_client,
        "/api/v1/events",
        {
            "events": [
                {"person": "known", "name": "App Launch", "occurred_at": "2026-11-20T10:00:00Z"},
                {
                    "person": "new-one",
                    "name": "Purchase",
                    "occurred_at": "2026-11-21T10:00:00+01:00",
                    "properties": {"amount": 12.5},
                },
                {"person": "known", "name": "App Launch"},
                {"person": "", "name": "x"},
                {"person": "known", "name": "Bad", "occurred_at": "yesterday"},
            ]
        },
    )
    assert r.status_code == 202
    assert r.json()["accepted"] == 3
    assert [e["index"] for e in r.json()["errors"]] == [3, 4]
    assert Person.objects.for_workspace(workspace).filter(external_id="new-one").exists()
    launch = EventType.objects.for_workspace(workspace).get(name="App Launch")
    assert launch.count == 2
    assert Event.objects.for_workspace(workspace).count() == 3
    post(
        api_client,
        "/api/v1/events",
        {
            "events": [
                {"person": "known", "name": "App Launch", "occurred_at": "2020-01-01T00:00:00Z"}
            ]
        },
    )
    launch.refresh_from_db()
    assert launch.count == 3 and launch.first_seen.year == 2020


def test_person_events_newest_first_paginated_and_filtered(api_client, workspace):
    events = [
        {
            "person": "p",
            "name": "A" if i % 2 else "B",
            "occurred_at": f"2026-11-{i + 1:02d}T00:00:00Z",
        }
        for i in range(9)
    ]
    post(api_client, "/api/v1/events", {"events": events})
    page = api_client.get("/api/v1/people/p/events?limit=4").json()
    assert [e["occurred_at"][:10] for e in page["items"]] == [
        "2026-11-09",
        "2026-11-08",
        "2026-11-07",
        "2026-11-06",
    ]
    rest = api_client.get(f"/api/v1/people/p/events?limit=10&cursor={page['next_cursor']}").json()
    assert len(rest["items"]) == 5 and rest["next_cursor"] is None
    only_a = api_client.get("/api/v1/people/p/events?name=A").json()["items"]
    assert {e["name"] for e in only_a} == {"A"} and len(only_a) == 4


def test_event_batch_over_1000_is_422(api_client, workspace):
    r = post(api_client, "/api/v1/events", {"events": [{"person": "p", "name": "x"}] * 1001})
    assert r.status_code == 422
    assert not Event.objects.for_workspace(workspace).exists()


def test_tags_crud_and_assignment(api_client, workspace):
    PersonFactory(workspace=workspace, external_id="a")
    PersonFactory(workspace=workspace, external_id="b")
    assert post(api_client, "/api/v1/tags", {"name": "VIP"}).status_code == 201
    assert post(api_client, "/api/v1/tags", {"name": "vip"}).status_code == 409
    r = post(api_client, "/api/v1/tags/VIP/people", {"people": ["a", "b", "ghost"]})
    assert r.json() == {"assigned": 2, "unknown": ["ghost"]}
    assert post(api_client, "/api/v1/tags/VIP/people", {"people": ["a"]}).json()["assigned"] == 0
    assert api_client.get("/api/v1/tags").json() == {"items": [{"name": "VIP", "people_count": 2}]}
    r = api_client.delete(
        "/api/v1/tags/VIP/people", data={"people": ["a"]}, content_type="application/json"
    )
    assert r.json() == {"removed": 1, "unknown": []}
    r = post(api_client, "/api/v1/tags/Newcomer/people", {"people": ["b"]})  # created on the fly
    assert r.json()["assigned"] == 1
    assert api_client.delete("/api/v1/tags/VIP").status_code == 204
    assert not Tag.objects.for_workspace(workspace).filter(name="VIP").exists()
    assert PersonTag.objects.for_workspace(workspace).count() == 1
    assert api_client.delete("/api/v1/tags/VIP").status_code == 404


def test_ten_thousand_tag_assignments_at_once(api_client, workspace):
    Person.objects.bulk_create(
        [Person(workspace=workspace, external_id=f"p{i}") for i in range(10_000)]
    )
    r = post(api_client, "/api/v1/tags/Big/people", {"people": [f"p{i}" for i in range(10_000)]})
    assert r.json() == {"assigned": 10_000, "unknown": []}


def test_dnc_add_is_normalized_and_idempotent(api_client, workspace):
    r = post(
        api_client,
        "/api/v1/dnc",
        {"channel": "email", "address": "  Bob@Example.COM ", "reason": "asked"},
    )
    assert r.status_code == 201
    assert r.json()["address"] == "bob@example.com" and r.json()["source"] == "api"
    assert (
        post(
            api_client, "/api/v1/dnc", {"channel": "email", "address": "bob@example.com"}
        ).status_code
        == 200
    )
    assert DoNotContact.objects.for_workspace(workspace).count() == 1
    r = post(api_client, "/api/v1/dnc", {"channel": "sms", "address": "07911 123456"})
    assert r.status_code == 422  # no country code: the reason says so
    assert "country code" in r.json()["detail"]
    assert (
        post(api_client, "/api/v1/dnc", {"channel": "sms", "address": "+44 7911 123456"}).json()[
            "address"
        ]
        == "+447911123456"
    )


def test_dnc_check_list_and_delete(api_client, workspace):
    post(api_client, "/api/v1/dnc", {"channel": "email", "address": "bob@example.com"})
    assert api_client.get("/api/v1/dnc/check?channel=email&address=BOB@example.com").json() == {
        "blocked": True
    }
    assert api_client.get("/api/v1/dnc/check?channel=sms&address=%2B447911123456").json() == {
        "blocked": False
    }
    assert api_client.get("/api/v1/dnc/check?channel=fax&address=x").status_code == 422
    items = api_client.get("/api/v1/dnc?channel=email&q=bob").json()["items"]
    assert [i["address"] for i in items] == ["bob@example.com"]
    assert api_client.delete("/api/v1/dnc/email/Bob@Example.com").status_code == 204
    assert api_client.delete("/api/v1/dnc/email/bob@example.com").status_code == 404


def test_blocked_people_selector_is_set_based(workspace, django_assert_num_queries):
    from people.selectors import blocked_people, person_list
    from people.services.dnc import dnc_add
    from people.services.people import person_upsert

    person_upsert(
        workspace=workspace,
        external_id="a",
        data={"email": "a@x.test", "phone": "+447911123456"},
        actor=Actor(system="tests"),
    )
    person_upsert(
        workspace=workspace,
        external_id="b",
        data={"email": "b@x.test"},
        actor=Actor(system="tests"),
    )
    dnc_add(workspace=workspace, channel="email", address="A@X.test", actor=Actor(system="tests"))
    dnc_add(
        workspace=workspace, channel="sms", address="+44 7911 123456", actor=Actor(system="tests")
    )
    people = person_list(workspace=workspace)
    with django_assert_num_queries(1):
        assert [
            p.external_id
            for p in blocked_people(workspace=workspace, channel="email", people=people)
        ] == ["a"]
    assert [
        p.external_id for p in blocked_people(workspace=workspace, channel="sms", people=people)
    ] == ["a"]


def test_events_json_cannot_hold_are_refused_by_index(api_client, workspace):
    body = (
        '{"events": ['
        '{"person": "p", "name": "A", "properties": {"total": NaN}},'
        '{"person": "p", "name": "B", "properties": {"items": [{"price": -Infinity}]}},'
        '{"person": "p", "name": "ok", "properties": {"total": 1.5, "tags": ["a"]}}'
        "]}"
    )
    r = api_client.post("/api/v1/events", data=body, content_type="application/json")
    assert r.status_code == 202
    assert r.json()["accepted"] == 1
    errors = r.json()["errors"]
    assert [e["index"] for e in errors] == [0, 1]
    assert errors[0]["msg"].startswith("properties.total:")
    assert errors[1]["msg"].startswith("properties.items.0.price:")
    assert list(Event.objects.for_workspace(workspace).values_list("name", flat=True)) == ["ok"]


@pytest.mark.parametrize(
    ("event", "loc"),
    [
        ('{"person": "p", "name": "C", "properties": {"note": "a\\u0000b"}}',
         ["body", "events", "1", "properties", "note"]),
        ('{"person": "p", "name": "D", "properties": {"k\\u0000": 1}}',
         ["body", "events", "1", "properties"]),
        ('{"person": "p\\u0000", "name": "E"}', ["body", "events", "1", "person"]),
        ('{"person": "p", "name": "F\\ud800"}', ["body", "events", "1", "name"]),
    ],
)  # fmt: skip
def test_events_with_text_postgresql_cannot_hold_are_a_422_naming_it(
    api_client, workspace, event, loc
):
    body = '{"events": [{"person": "p", "name": "ok"}, ' + event + "]}"
    r = api_client.post("/api/v1/events", data=body, content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == loc
    assert not Event.objects.for_workspace(workspace).exists()
    assert not Person.objects.for_workspace(workspace).exists()


def test_a_dnc_address_postgresql_cannot_store_is_a_422(api_client, workspace):
    for channel in ("push", "email", "sms"):
        r = post(
            api_client,
            "/api/v1/dnc",
            {"channel": channel, "address": "tok\x00en@x.test"},
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["loc"] == ["body", "address"]
    assert not DoNotContact.objects.for_workspace(workspace).exists()

"""Segments of the HTTP API: create, preview, count, members, contains, static members,
to-audience, real-time 409, and 422s that name the bad node."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.audit import Actor
from people.services.events import event_ingest_batch
from people.services.people import person_upsert
from segments.models import Segment
from segments.services import claim_due_segments, segment_create
from segments.tasks import refresh_due_segments_task

LONDON = {"attribute": "city", "op": "is", "value": "London"}


@pytest.fixture
def people(workspace):
    for ext, city in [("a", "London"), ("b", "London"), ("c", "Paris")]:
        person_upsert(
            workspace=workspace,
            external_id=ext,
            data={"city": city, "attributes": {"ltv": 10}},
            actor=Actor(system="tests"),
        )
    event_ingest_batch(
        workspace=workspace,
        items=[{"person": "a", "name": "App Launch"}],
        actor=Actor(system="tests"),
    )


def post(client, url, body):
    return client.post(url, body, content_type="application/json")


def test_create_count_members_contains(api_client, people):
    r = post(
        api_client, "/api/v1/segments", {"name": "Londoners", "kind": "realtime", "rules": LONDON}
    )
    assert r.status_code == 201
    body = r.json()
    assert (body["kind"], body["people_count"], body["predefined"]) == ("realtime", 2, False)
    sid = body["id"]
    assert api_client.get(f"/api/v1/segments/{sid}/count").json()["count"] == 2
    members = api_client.get(f"/api/v1/segments/{sid}/members").json()["items"]
    assert sorted(m["external_id"] for m in members) == ["a", "b"]
    assert api_client.get(f"/api/v1/segments/{sid}/contains/a").json() == {"member": True}
    assert api_client.get(f"/api/v1/segments/{sid}/contains/c").json() == {"member": False}
    assert api_client.get(f"/api/v1/segments/{sid}/contains/nobody").status_code == 404
    listing = api_client.get("/api/v1/segments?q=London").json()["items"]
    assert [s["name"] for s in listing] == ["Londoners"]


def test_preview_counts_and_samples(api_client, people):
    r = post(
        api_client,
        "/api/v1/segments/preview",
        {"rules": {"all": [LONDON, {"event": "App Launch"}]}},
    )
    assert r.status_code == 200
    assert r.json()["count"] == 1 and [p["external_id"] for p in r.json()["sample"]] == ["a"]


@pytest.mark.parametrize(
    ("rules", "loc_tail"),
    [
        (
            {"all": [LONDON, {"attribute": "city", "op": "resembles", "value": "x"}]},
            ["all", "1", "op"],
        ),
        ({"attribute": "ltv", "op": "gt", "value": "lots"}, ["value"]),
        ({"attribute": "nope", "op": "is", "value": "x"}, ["attribute"]),
        ({"event": "Never Sent", "count": {"op": "gte", "value": 1}}, ["event"]),
        (
            {
                "any": [
                    {"attribute": "city", "op": "is", "value": "'; DROP TABLE people_person; --"},
                    {"all": []},
                ]
            },
            ["any", "1", "all"],
        ),
    ],
)
def test_bad_rules_are_422_naming_the_node(api_client, people, rules, loc_tail):
    r = post(api_client, "/api/v1/segments/preview", {"rules": rules})
    assert r.status_code == 422, r.content
    loc = [str(part) for part in r.json()["errors"][0]["loc"]]
    assert loc[:2] == ["body", "rules"] and loc[2:][-len(loc_tail) :] == loc_tail
    created = post(
        api_client, "/api/v1/segments", {"name": "Bad", "kind": "snapshot", "rules": rules}
    )
    assert created.status_code == 422
    assert not Segment.objects.filter(name="Bad").exists()


def test_deep_and_huge_trees_are_422(api_client, people):
    deep = LONDON
    for _ in range(100):
        deep = {"not": deep}
    assert post(api_client, "/api/v1/segments/preview", {"rules": deep}).status_code == 422
    huge = {"any": [{"attribute": "city", "op": "is", "value": "x" * 1000} for _ in range(1100)]}
    assert post(api_client, "/api/v1/segments/preview", {"rules": huge}).status_code == 422


def test_realtime_rules_cannot_change_409_but_snapshot_can(api_client, people):
    rt = post(
        api_client, "/api/v1/segments", {"name": "RT", "kind": "realtime", "rules": LONDON}
    ).json()
    r = api_client.patch(
        f"/api/v1/segments/{rt['id']}",
        {"rules": {"attribute": "city", "op": "is", "value": "Paris"}},
        content_type="application/json",
    )
    assert r.status_code == 409 and "Duplicate" in r.json()["detail"]
    assert (
        api_client.patch(
            f"/api/v1/segments/{rt['id']}", {"name": "RT 2"}, content_type="application/json"
        ).json()["name"]
        == "RT 2"
    )
    snap = post(
        api_client, "/api/v1/segments", {"name": "S", "kind": "snapshot", "rules": LONDON}
    ).json()
    r = api_client.patch(
        f"/api/v1/segments/{snap['id']}",
        {"rules": {"attribute": "city", "op": "is", "value": "Paris"}},
        content_type="application/json",
    )
    assert r.status_code == 200 and r.json()["rules"]["value"] == "Paris"


def test_static_members_and_to_audience(api_client, people):
    static = post(api_client, "/api/v1/segments", {"name": "Picked", "kind": "static"}).json()
    r = post(
        api_client, f"/api/v1/segments/{static['id']}/members", {"people": ["a", "c", "ghost"]}
    )
    assert r.json() == {"changed": 2, "unknown": ["ghost"]}
    r = api_client.delete(
        f"/api/v1/segments/{static['id']}/members",
        {"people": ["c"]},
        content_type="application/json",
    )
    assert r.json()["changed"] == 1
    assert api_client.get(f"/api/v1/segments/{static['id']}/count").json()["count"] == 1
    r = post(
        api_client,
        f"/api/v1/segments/{static['id']}/to-audience",
        {"audience": "Picked people", "action": "add"},
    )
    assert r.json() == {"changed": 1}
    rules_seg = post(
        api_client, "/api/v1/segments", {"name": "R", "kind": "snapshot", "rules": LONDON}
    ).json()
    assert (
        post(
            api_client, f"/api/v1/segments/{rules_seg['id']}/members", {"people": ["a"]}
        ).status_code
        == 409
    )


def test_built_in_segments_are_listed_and_cannot_be_deleted(api_client, people):
    items = api_client.get("/api/v1/segments").json()["items"]
    builtin = [s for s in items if s["predefined"]]
    assert {s["name"] for s in builtin} == {
        "Everyone",
        "Active Mobile Users",
        "Inactive Mobile Users",
    }
    active = next(s for s in builtin if s["name"] == "Active Mobile Users")
    assert api_client.get(f"/api/v1/segments/{active['id']}/count").json()["count"] == 1
    assert api_client.delete(f"/api/v1/segments/{active['id']}").status_code == 409


def test_deleting_a_segment_other_rules_name_answers_409_and_keeps_it(api_client, people):
    base = post(api_client, "/api/v1/segments", {"name": "Base", "kind": "static"}).json()
    rules = {"segment": base["id"], "op": "not_in"}
    user = post(api_client, "/api/v1/segments", {"name": "Not base", "kind": "snapshot",
                                                 "rules": rules}).json()  # fmt: skip

    r = api_client.delete(f"/api/v1/segments/{base['id']}")

    assert r.status_code == 409
    assert "the rules of “Not base” use it" in r.json()["detail"]
    assert api_client.get(f"/api/v1/segments/{base['id']}").status_code == 200
    assert api_client.delete(f"/api/v1/segments/{user['id']}").status_code == 204
    assert api_client.delete(f"/api/v1/segments/{base['id']}").status_code == 204


def test_query_segments_are_refreshed_when_due_and_claimed_once(workspace, people, run_jobs):
    now = timezone.now()
    seg = segment_create(
        workspace=workspace,
        name="Q",
        kind="query",
        rules=LONDON,
        refresh_every_minutes=5,
        now=now - timedelta(minutes=6),
        actor=Actor(system="tests"),
    )
    person_upsert(
        workspace=workspace, external_id="c", data={"city": "London"}, actor=Actor(system="tests")
    )
    with run_jobs():
        assert refresh_due_segments_task() == 1
    seg.refresh_from_db()
    assert seg.people_count == 3 and seg.next_refresh_at > now
    assert claim_due_segments() == []  # nothing due twice


def test_people_list_filters_by_segment(api_client, people, other_workspace):
    seg = post(
        api_client, "/api/v1/segments", {"name": "L", "kind": "snapshot", "rules": LONDON}
    ).json()
    got = api_client.get(f"/api/v1/people?segment={seg['id']}").json()["items"]
    assert sorted(p["external_id"] for p in got) == ["a", "b"]
    theirs = Segment.objects.create(workspace=other_workspace, name="T", kind="everyone")
    assert api_client.get(f"/api/v1/people?segment={theirs.pk}").status_code == 404

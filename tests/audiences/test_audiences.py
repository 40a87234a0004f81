"""Target audiences: pages, People page selection, profile, API (imports are tested apart)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.audit import Actor
from audiences.models import AudienceMember, TargetAudience
from audiences.services import audience_add_people, audience_create
from people.models import Person
from tests.factories import PersonFactory


@pytest.fixture
def ops_client(client, ops_user):
    client.force_login(ops_user)
    return client


def _audience(workspace, name, people):
    audience = audience_create(workspace=workspace, name=name, actor=Actor(system="tests"))
    audience_add_people(
        audience=audience,
        people=Person.objects.filter(pk__in=[p.pk for p in people]),
        actor=Actor(system="tests"),
    )
    return audience


def test_list_shows_names_counts_and_dates_and_searches(ops_client, workspace):
    _audience(workspace, "Winter sale", [PersonFactory(workspace=workspace) for _ in range(3)])
    _audience(workspace, "Churned", [])
    page = ops_client.get("/audiences/")
    assert [(a.name, a.people_count) for a in page.context["audiences"]] == [
        ("Churned", 0),
        ("Winter sale", 3),
    ]
    assert [a.name for a in ops_client.get("/audiences/", {"q": "wint"}).context["audiences"]] == [
        "Winter sale"
    ]


def test_members_page_links_to_profiles_and_profile_lists_audiences(ops_client, workspace):
    person = PersonFactory(workspace=workspace, external_id="crm-1")
    audience = _audience(workspace, "Winter sale", [person])
    _audience(workspace, "Loyal", [person])
    page = ops_client.get(f"/audiences/{audience.pk}/")
    assert f'href="/people/{person.pk}/"' in page.text
    profile = ops_client.get(f"/people/{person.pk}/")
    assert [a.name for a in profile.context["audiences"]] == ["Loyal", "Winter sale"]
    assert "Tags (target audience)" in profile.text


def test_rename_and_delete_with_membership_count(ops_client, workspace):
    audience = _audience(workspace, "Old", [PersonFactory(workspace=workspace) for _ in range(2)])
    _audience(workspace, "Taken", [])
    clash = ops_client.post(f"/audiences/{audience.pk}/rename/", {"name": "taken"}, follow=True)
    assert "already exists" in clash.text
    ops_client.post(f"/audiences/{audience.pk}/rename/", {"name": "New"})
    audience.refresh_from_db()
    assert audience.name == "New"
    page = ops_client.get(f"/audiences/{audience.pk}/")
    assert "Its 2 memberships go with it" in page.text
    done = ops_client.post(f"/audiences/{audience.pk}/delete/", follow=True)
    assert "deleted with its 2 memberships" in done.text
    assert not AudienceMember.objects.filter(audience_id=audience.pk).exists()
    assert Person.objects.for_workspace(workspace).count() == 2


def test_people_page_selection_goes_into_an_audience(ops_client, workspace):
    london = [PersonFactory(workspace=workspace, city="London") for _ in range(4)]
    PersonFactory(workspace=workspace, city="Paris")
    r = ops_client.post(
        "/people/bulk/audience/",
        {"city": "London", "all_matching": "1", "audience": "Londoners", "action": "add"},
        follow=True,
    )
    assert "Added 4 people to new audience “Londoners” (4 members)" in r.text
    audience = TargetAudience.objects.for_workspace(workspace).get(name="Londoners")
    assert audience.people_count == 4
    ops_client.post(
        "/people/bulk/audience/",
        {"person": [london[0].pk], "audience": "londoners", "action": "remove"},
    )
    audience.refresh_from_db()
    assert audience.people_count == 3


def test_viewer_reads_but_cannot_change_audiences(client, viewer, workspace):
    client.force_login(viewer)
    audience = _audience(workspace, "A", [])
    assert client.get(f"/audiences/{audience.pk}/").status_code == 200
    assert client.post(f"/audiences/{audience.pk}/delete/").status_code == 403
    assert client.post("/audiences/", {"name": "B"}).status_code == 403


def test_api_create_list_members_and_delete(api_client, workspace):
    PersonFactory(workspace=workspace, external_id="a", email="a@x.test", phone="+447911123456")
    PersonFactory(workspace=workspace, external_id="b")
    r = api_client.post("/api/v1/audiences", {"name": "VIP"}, content_type="application/json")
    assert r.status_code == 201
    audience_id = r.json()["id"]
    assert (
        api_client.post(
            "/api/v1/audiences", {"name": "vip"}, content_type="application/json"
        ).status_code
        == 409
    )
    add = api_client.post(
        f"/api/v1/audiences/{audience_id}/members",
        content_type="application/json",
        data={"people": ["A@X.test", "ghost@x.test", "bad"], "identifier": "email"},
    )
    assert add.json() == {"changed": 1, "unknown": ["ghost@x.test", "bad"]}
    add = api_client.post(
        f"/api/v1/audiences/{audience_id}/members",
        content_type="application/json",
        data={"people": ["b", "a"]},
    )
    assert add.json() == {"changed": 1, "unknown": []}
    listing = api_client.get("/api/v1/audiences").json()["items"]
    assert [(a["name"], a["people_count"]) for a in listing] == [("VIP", 2)]
    members = api_client.get(f"/api/v1/audiences/{audience_id}/members").json()["items"]
    assert {m["external_id"] for m in members} == {"a", "b"}
    assert members[0]["audiences"] == ["VIP"]
    assert [
        p["external_id"] for p in api_client.get("/api/v1/people?audience=vip").json()["items"]
    ] == ["b", "a"]
    removed = api_client.delete(
        f"/api/v1/audiences/{audience_id}/members",
        content_type="application/json",
        data={"people": ["+44 7911 123456"], "identifier": "phone"},
    )
    assert removed.json() == {"changed": 1, "unknown": []}
    assert api_client.delete(f"/api/v1/audiences/{audience_id}").status_code == 204
    assert api_client.get(f"/api/v1/audiences/{audience_id}").status_code == 404


def test_api_member_pages_walk_the_audience_newest_first_without_repeats(api_client, workspace):
    people = [PersonFactory(workspace=workspace) for _ in range(7)]
    PersonFactory(workspace=workspace)  # not a member
    audience = audience_create(workspace=workspace, name="Paged", actor=Actor(system="tests"))
    members = [p for i, p in enumerate(people) if i != 3]  # a gap in the ids
    audience_add_people(
        audience=audience,
        people=Person.objects.filter(pk__in=[p.pk for p in members]),
        actor=Actor(system="tests"),
    )

    seen, cursor, cursors = [], None, []
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api_client.get(f"/api/v1/audiences/{audience.pk}/members", params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)

    assert seen == sorted((p.pk for p in members), reverse=True)
    with CaptureQueriesContext(connection) as queries:
        api_client.get(
            f"/api/v1/audiences/{audience.pk}/members", {"limit": 2, "cursor": cursors[-1]}
        )
    page_query = next(q["sql"] for q in queries if q["sql"].startswith('SELECT "people_person"'))
    # The order and the cursor's bound are on the membership key, so a deep page of a big
    # audience starts at the cursor in the key instead of reading it from its top.
    assert '"audiences_audiencemember"."person_id" AS "member_person_id"' in page_query
    assert 'ORDER BY "people_person"."id"' not in page_query
    assert '"audiences_audiencemember"."person_id" < ' in page_query
    assert page_query.count('JOIN "audiences_audiencemember"') == 1


def test_adding_counts_once_and_is_idempotent(workspace):
    people = [PersonFactory(workspace=workspace) for _ in range(3)]
    audience = _audience(workspace, "A", people)
    again = audience_add_people(
        audience=audience,
        people=Person.objects.for_workspace(workspace),
        actor=Actor(system="tests"),
    )
    assert again == 0 and audience.people_count == 3

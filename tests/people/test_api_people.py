"""People endpoints of shared/API.md: upsert, batch, read, list, erase; typed attributes."""

import pytest

from people.models import AttributeDefinition, Person, PushToken
from people.services import dnc_add
from tests.factories import PersonFactory


def put(client, external_id, body):
    return client.put(f"/api/v1/people/{external_id}", data=body, content_type="application/json")


def test_put_creates_then_updates_keeping_fields_not_sent(api_client, workspace):
    r = put(
        api_client,
        "u-1",
        {
            "email": " Ada@Example.COM ",
            "phone": "+44 7911 123456",
            "first_name": "Ada",
            "company": "Initech",
            "attributes": {"plan": "pro", "ltv": 120.5},
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert body["email"] == "ada@example.com" and body["phone"] == "+447911123456"
    assert body["company"] == "Initech" and body["attributes"] == {"plan": "pro", "ltv": 120.5}
    r2 = put(api_client, "u-1", {"last_name": "Lovelace", "attributes": {"ltv": 200}})
    assert r2.status_code == 200
    body2 = r2.json()
    assert body2["first_name"] == "Ada" and body2["last_name"] == "Lovelace"
    assert body2["attributes"] == {"plan": "pro", "ltv": 200}
    assert body2["tags"] == [] and body2["audiences"] == []
    assert body2["created_at"].endswith(("Z", "+00:00"))


def test_types_are_inferred_on_first_sight_and_enforced(api_client, workspace):
    put(
        api_client,
        "u-1",
        {
            "attributes": {
                "plan": "pro",
                "seats": 3,
                "trial": True,
                "renews": "2026-12-01",
                "seen": "2026-11-20T10:00:00Z",
                "langs": ["en", "fr"],
            }
        },
    )
    types = dict(AttributeDefinition.objects.for_workspace(workspace).values_list("key", "type"))
    assert types == {
        "plan": "string",
        "seats": "number",
        "trial": "boolean",
        "renews": "date",
        "seen": "datetime",
        "langs": "list",
    }
    r = put(api_client, "u-2", {"attributes": {"seats": "three"}})
    assert r.status_code == 422
    assert "seats" in r.json()["detail"] and "number" in r.json()["detail"]
    assert r.json()["errors"][0]["loc"] == ["body", "attributes", "seats"]
    assert not Person.objects.for_workspace(workspace).filter(external_id="u-2").exists()
    # an integer is a valid number, a date a valid datetime; null clears
    assert (
        put(api_client, "u-1", {"attributes": {"seats": 4.5, "seen": "2026-11-21"}}).status_code
        == 200
    )
    r = put(api_client, "u-1", {"attributes": {"plan": None}})
    assert "plan" not in r.json()["attributes"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "not-an-email"), ("phone", "12"), ("phone", "call me maybe")],
)
def test_malformed_email_or_phone_is_a_422_field_error(api_client, workspace, field, value):
    r = put(api_client, "u-1", {field: value})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", field]
    assert not Person.objects.for_workspace(workspace).exists()


def test_batch_applies_good_items_and_lists_bad_ones_by_index(api_client, workspace):
    PersonFactory(workspace=workspace, external_id="old", first_name="Old")
    r = api_client.post(
        "/api/v1/people/batch",
        content_type="application/json",
        data={
            "people": [
                {"external_id": "new-1", "email": "a@x.test"},
                {"external_id": "old", "first_name": "Renamed"},
                {"external_id": "bad", "email": "nope"},
                {"email": "no-id@x.test"},
                {"external_id": "new-2", "attributes": {"score": 1}},
            ]
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["created"], body["updated"]) == (2, 1)
    assert [e["index"] for e in body["errors"]] == [2, 3]
    assert "email" in body["errors"][0]["msg"]
    names = set(Person.objects.for_workspace(workspace).values_list("external_id", flat=True))
    assert names == {"new-1", "old", "new-2"}


def test_batch_over_1000_is_refused(api_client, workspace):
    people = [{"external_id": f"p{i}"} for i in range(1001)]
    r = api_client.post(
        "/api/v1/people/batch", content_type="application/json", data={"people": people}
    )
    assert r.status_code == 422
    assert not Person.objects.for_workspace(workspace).exists()


def test_batch_runs_a_constant_number_of_queries(
    api_client, workspace, django_assert_max_num_queries
):
    people = [
        {
            "external_id": f"p{i}",
            "email": f"p{i}@x.test",
            "company": f"C{i % 3}",
            "attributes": {"n": i},
        }
        for i in range(300)
    ]
    with django_assert_max_num_queries(30):
        r = api_client.post(
            "/api/v1/people/batch", content_type="application/json", data={"people": people}
        )
    assert r.json()["created"] == 300


def test_push_tokens_are_stored_and_replaced(api_client, workspace):
    put(api_client, "u-1", {"push_tokens": [{"platform": "ios", "token": "abc"}]})
    r = put(api_client, "u-1", {"push_tokens": [{"platform": "android", "token": "def"}]})
    assert r.json()["push_tokens"] == [{"platform": "android", "token": "def"}]
    assert PushToken.objects.for_workspace(workspace).count() == 1
    bad = put(api_client, "u-1", {"push_tokens": [{"platform": "blackberry", "token": "x"}]})
    assert bad.status_code == 422


def test_get_list_filters_and_search(api_client, workspace):
    a = PersonFactory(workspace=workspace, external_id="a", first_name="Zoe", email="zoe@x.test")
    PersonFactory(workspace=workspace, external_id="b", first_name="Max")
    api_client.post(
        "/api/v1/tags/VIP/people", content_type="application/json", data={"people": ["a"]}
    )
    assert [p["external_id"] for p in api_client.get("/api/v1/people?tag=vip").json()["items"]] == [
        "a"
    ]
    assert [
        p["external_id"] for p in api_client.get("/api/v1/people?q=zoe@x.test").json()["items"]
    ] == ["a"]
    assert [p["external_id"] for p in api_client.get("/api/v1/people?q=Zo").json()["items"]] == [
        "a"
    ]
    assert api_client.get("/api/v1/people/a").json()["tags"] == ["VIP"]
    assert a.pk == api_client.get("/api/v1/people/a").json()["id"]


def test_delete_erases_the_person_but_keeps_do_not_contact(api_client, workspace):
    put(api_client, "u-1", {"email": "gone@x.test"})
    api_client.post(
        "/api/v1/events",
        content_type="application/json",
        data={"events": [{"person": "u-1", "name": "App Launch"}]},
    )
    dnc_add(workspace=workspace, channel="email", address="gone@x.test")
    assert api_client.delete("/api/v1/people/u-1").status_code == 204
    assert api_client.get("/api/v1/people/u-1").status_code == 404
    assert api_client.get("/api/v1/dnc/check?channel=email&address=gone@x.test").json() == {
        "blocked": True
    }
    assert api_client.delete("/api/v1/people/u-1").status_code == 404


def test_erasing_a_person_takes_them_out_of_their_audiences_counts(api_client, workspace):
    from audiences.models import AudienceMember, TargetAudience
    from audiences.services import audience_add_people, audience_create

    put(api_client, "u-1", {"email": "one@x.test"})
    put(api_client, "u-2", {"email": "two@x.test"})
    both = audience_create(workspace=workspace, name="Both")
    other = audience_create(workspace=workspace, name="Only two")
    audience_add_people(audience=both, people=Person.objects.for_workspace(workspace))
    audience_add_people(
        audience=other, people=Person.objects.for_workspace(workspace).filter(external_id="u-2")
    )

    assert api_client.delete("/api/v1/people/u-1").status_code == 204

    counts = dict(TargetAudience.objects.values_list("name", "people_count"))
    assert counts == {"Both": 1, "Only two": 1}
    assert AudienceMember.objects.filter(audience=both).count() == 1


def test_malformed_json_is_422(api_client, workspace):
    r = api_client.put("/api/v1/people/u-1", data="{nope", content_type="application/json")
    assert r.status_code == 422

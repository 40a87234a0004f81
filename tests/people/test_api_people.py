"""People endpoints of shared/API.md: upsert, batch, read, list, erase; typed attributes."""

import json

import pytest

from accounts.audit import Actor
from people.models import AttributeDefinition, Person, PushToken
from people.services.dnc import dnc_add
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
    dnc_add(
        workspace=workspace, channel="email", address="gone@x.test", actor=Actor(system="tests")
    )
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
    both = audience_create(workspace=workspace, name="Both", actor=Actor(system="tests"))
    other = audience_create(workspace=workspace, name="Only two", actor=Actor(system="tests"))
    audience_add_people(
        audience=both, people=Person.objects.for_workspace(workspace), actor=Actor(system="tests")
    )
    audience_add_people(
        audience=other,
        people=Person.objects.for_workspace(workspace).filter(external_id="u-2"),
        actor=Actor(system="tests"),
    )

    assert api_client.delete("/api/v1/people/u-1").status_code == 204

    counts = dict(TargetAudience.objects.values_list("name", "people_count"))
    assert counts == {"Both": 1, "Only two": 1}
    assert AudienceMember.objects.filter(audience=both).count() == 1


def test_erasing_a_person_takes_them_out_of_their_stored_segments_counts(api_client, workspace):
    from segments.models import Segment
    from segments.services import segment_create

    put(api_client, "u-1", {"email": "one@x.test", "city": "Oslo"})
    put(api_client, "u-2", {"email": "two@x.test", "city": "Oslo"})
    put(api_client, "u-3", {"email": "three@x.test", "city": "Rome"})
    rules = {"attribute": "city", "op": "is", "value": "Oslo"}
    for kind in ("realtime", "query"):
        segment_create(
            workspace=workspace, name=kind, kind=kind, rules=rules, actor=Actor(system="tests"),
            refresh_every_minutes=60 if kind == "query" else None,
        )  # fmt: skip

    assert api_client.delete("/api/v1/people/u-1").status_code == 204
    assert api_client.delete("/api/v1/people/u-3").status_code == 204

    counts = dict(Segment.objects.filter(predefined="").values_list("name", "people_count"))
    assert counts == {"realtime": 1, "query": 1}


def test_malformed_json_is_422(api_client, workspace):
    r = api_client.put("/api/v1/people/u-1", data="{nope", content_type="application/json")
    assert r.status_code == 422


def put_raw(client, external_id, text):
    """A body as sent: Python's json (and so the API) reads NaN and Infinity."""
    return client.put(f"/api/v1/people/{external_id}", data=text, content_type="application/json")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_number_json_cannot_hold_is_a_422_naming_the_attribute(api_client, workspace, literal):
    r = put_raw(api_client, "u-1", f'{{"attributes": {{"plan": "pro", "score": {literal}}}}}')
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "attributes", "score"]
    assert "score" in r.json()["detail"]
    assert not Person.objects.for_workspace(workspace).exists()
    assert not AttributeDefinition.objects.for_workspace(workspace).exists()
    # once the attribute is a number, too
    assert put(api_client, "u-1", {"attributes": {"score": 1}}).status_code == 201
    r = put_raw(api_client, "u-1", f'{{"attributes": {{"score": {literal}}}}}')
    assert r.status_code == 422
    assert Person.objects.for_workspace(workspace).get().attributes == {"score": 1}
    # in a batch: that person is refused by index, the others applied
    r = api_client.post(
        "/api/v1/people/batch",
        data=(
            f'{{"people": [{{"external_id": "a", "attributes": {{"score": {literal}}}}},'
            ' {"external_id": "b", "attributes": {"score": 2}}]}'
        ),
        content_type="application/json",
    )
    assert r.status_code == 200
    assert r.json()["created"] == 1
    [error] = r.json()["errors"]
    assert error["index"] == 0 and "attributes.score" in error["msg"]


@pytest.mark.parametrize(
    "key", ["k" * 101, "", "  ", "1st_order", "a/b", "naïve", "tab\there", "nul\x00", "\ud800"]
)
def test_a_bad_attribute_key_is_a_422_and_nothing_is_written(api_client, workspace, key):
    r = api_client.put(
        "/api/v1/people/u-1",
        # ensure_ascii: a lone surrogate travels as the \ud800 escape a client would send
        data=json.dumps({"first_name": "Ada", "attributes": {"plan": "pro", key: 1}}),
        content_type="application/json",
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][:2] == ["body", "attributes"]
    if "\x00" in key or "\ud800" in key:  # refused for every operation (config.api)
        assert "NUL character or a lone surrogate" in r.json()["detail"]
    else:
        assert repr(key) in r.json()["detail"]
    assert not Person.objects.for_workspace(workspace).exists()
    assert not AttributeDefinition.objects.for_workspace(workspace).exists()


def test_a_key_already_in_the_catalogue_stays_writable(api_client, workspace):
    AttributeDefinition.objects.create(workspace=workspace, key="ünïcode", label="u", type="string")
    r = put(api_client, "u-1", {"attributes": {"ünïcode": "kept"}})
    assert r.status_code == 201 and r.json()["attributes"] == {"ünïcode": "kept"}


def test_a_refused_person_types_no_new_attribute(api_client, workspace):
    put(api_client, "u-1", {"attributes": {"seats": 3}})
    r = put(api_client, "u-2", {"attributes": {"fresh": "new", "seats": "three"}})
    assert r.status_code == 422
    keys = set(AttributeDefinition.objects.for_workspace(workspace).values_list("key", flat=True))
    assert keys == {"seats"}


@pytest.mark.parametrize(
    "body",
    [
        '{"first_name": "A\\u0000da"}',
        '{"first_name": "A\\ud800da"}',
        '{"company": "Acme\\u0000"}',
        '{"attributes": {"plan": "pro\\u0000"}}',
        '{"attributes": {"langs": ["en", "f\\u0000r"]}}',
        '{"push_tokens": [{"platform": "ios", "token": "tok\\u0000en"}]}',
    ],
)
def test_text_postgresql_cannot_store_is_a_422_naming_the_field(api_client, workspace, body):
    r = put_raw(api_client, "u-1", body)
    assert r.status_code == 422
    field = next(iter(json.loads(body)))
    assert r.json()["errors"][0]["loc"][:2] == ["body", field]
    assert not Person.objects.for_workspace(workspace).exists()
    assert not AttributeDefinition.objects.for_workspace(workspace).exists()


def test_an_external_id_postgresql_cannot_store_refuses_the_batch_naming_it(api_client, workspace):
    r = api_client.post(
        "/api/v1/people/batch",
        data='{"people": [{"external_id": "ok"}, {"external_id": "x\\u0000"}]}',
        content_type="application/json",
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "people", "1", "external_id"]
    assert not Person.objects.for_workspace(workspace).exists()

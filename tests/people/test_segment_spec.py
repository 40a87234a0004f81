"""The Segment HTTP tracking API at /v1/: segment-analytics-python, pointed at Herald by
its host, identifies and tracks; bad messages are reported by index and the rest applied;
a message sent twice counts once."""

import base64
import gzip
import json

import pytest
from django.test import Client
from segment.analytics import Client as SegmentClient

from accounts.audit import Actor
from accounts.models import ApiKeyKind
from accounts.services import api_key_create
from people.models import Event, Person, PersonChange
from people.services.people import person_upsert
from tests.factories import WorkspaceFactory

ACTOR = Actor(system="tests")


@pytest.fixture
def write_key(workspace):
    return api_key_create(workspace=workspace, name="site", kind=ApiKeyKind.WRITE, actor=ACTOR)[1]


def basic(key):
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def post(path, body, key, **headers):
    return Client().post(
        path, json.dumps(body), content_type="application/json", headers={**basic(key), **headers}
    )


@pytest.mark.django_db(transaction=True)
def test_segment_analytics_python_sends_to_herald_by_changing_its_host(
    live_server, workspace, write_key
):
    errors = []
    analytics = SegmentClient(
        write_key, host=live_server.url, sync_mode=True, on_error=lambda e, batch: errors.append(e)
    )
    analytics.identify(
        "user-42",
        {"email": "Ada@Example.com", "firstName": "Ada", "lastName": "Lovelace",
         "address": {"city": "London", "country": "United Kingdom"},
         "company": {"name": "Analytical Engines"}, "plan": "pro", "seats": 12},
    )  # fmt: skip
    analytics.track("user-42", "Order Completed", {"total": 99.5, "currency": "GBP"})
    analytics.page("user-42", category="Docs", name="Pricing", properties={"path": "/pricing"})
    analytics.screen("user-42", name="Home")
    analytics.flush()
    assert errors == []
    ada = Person.objects.get(workspace=workspace, external_id="user-42")
    assert (ada.email, ada.first_name, ada.last_name, ada.city, ada.country) == (
        "ada@example.com", "Ada", "Lovelace", "London", "United Kingdom",
    )  # fmt: skip
    assert ada.company.name == "Analytical Engines"
    assert ada.attributes == {"plan": "pro", "seats": 12}
    events = {e.name: e.properties for e in Event.objects.filter(person=ada)}
    assert events["Order Completed"] == {"total": 99.5, "currency": "GBP"}
    assert (
        events["Page Viewed"]["name"] == "Pricing" and events["Page Viewed"]["path"] == "/pricing"
    )
    assert events["Screen Viewed"]["name"] == "Home"
    # every write went through the real-time outbox
    assert PersonChange.objects.filter(workspace=workspace).exists()


def test_a_message_sent_twice_counts_once(workspace, write_key):
    message = {"type": "track", "userId": "u1", "event": "Signup", "messageId": "m-1"}
    for _ in range(2):
        response = post("/v1/batch", {"batch": [message, message]}, write_key)
        assert response.status_code == 200 and response.json() == {"success": True, "errors": []}
    assert Event.objects.filter(workspace=workspace, name="Signup").count() == 1
    # another workspace has its own messageIds
    other = WorkspaceFactory()
    other_key = api_key_create(workspace=other, name="w", kind=ApiKeyKind.WRITE, actor=ACTOR)[1]
    post("/v1/track", message, other_key)
    assert Event.objects.filter(workspace=other, name="Signup").count() == 1


def test_bad_messages_are_reported_by_index_and_the_rest_applied(workspace, write_key):
    batch = [
        {"type": "track", "event": "No user"},
        {"type": "track", "userId": "u1", "event": 42},
        {"type": "track", "userId": "u1", "event": "Late", "timestamp": "yesterday-ish"},
        {"type": "track", "userId": "u1", "event": "Bad number", "properties": {"x": float("nan")}},
        {"type": "identify", "userId": "u1", "traits": {"email": "not an email"}},
        {"type": "alias", "userId": "u1"},
        {"type": "track", "userId": "u1", "event": "Fine"},
    ]
    body = json.dumps({"batch": batch})  # NaN written as JSON's NaN, as some SDKs do
    assert "NaN" in body
    response = Client().post(
        "/v1/batch", body, content_type="application/json", headers=basic(write_key)
    )
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert [e["index"] for e in errors] == [0, 1, 2, 3, 4, 5]
    assert "userId is required" in errors[0]["msg"] and "event" in errors[1]["msg"]
    assert "timestamp" in errors[2]["msg"] and "NaN" in errors[3]["msg"]
    assert "email" in errors[4]["msg"].lower() and "type" in errors[5]["msg"]
    assert list(Event.objects.filter(workspace=workspace).values_list("name", flat=True)) == [
        "Fine"
    ]


def test_keys_bodies_and_the_short_aliases(workspace, write_key, api_key):
    message = {"userId": "u9", "event": "Opened"}
    assert post("/v1/track", message, "hk_unknown").status_code == 401
    # a full API key is not a write key, and a write key opens nothing of /api/v1/
    assert post("/v1/track", message, api_key).status_code == 401
    assert (
        Client().get("/api/v1/people", headers={"Authorization": f"Bearer {write_key}"}).status_code
        == 403
    )
    bad = Client().post(
        "/v1/track", "{not json", content_type="application/json", headers=basic(write_key)
    )
    assert bad.status_code == 400 and "JSON" in bad.json()["detail"]
    big = {
        "batch": [
            {"type": "track", "userId": "u", "event": "E", "properties": {"p": "x" * 600_000}}
        ]
    }
    assert post("/v1/batch", big, write_key).status_code == 413
    # analytics.js: text/plain to /v1/t with the key in the body
    sent = Client().post(
        "/v1/t", json.dumps({**message, "writeKey": write_key}), content_type="text/plain"
    )
    assert sent.status_code == 200
    zipped = gzip.compress(
        json.dumps({"batch": [{**message, "type": "track", "event": "Zipped"}]}).encode()
    )
    gz = Client().post(
        "/v1/b",
        zipped,
        content_type="application/json",
        headers={**basic(write_key), "Content-Encoding": "gzip"},
    )
    assert gz.status_code == 200
    assert set(Event.objects.filter(workspace=workspace).values_list("name", flat=True)) == {
        "Opened",
        "Zipped",
    }
    assert Client().get("/v1/track").status_code == 405


def test_identify_updates_an_existing_person_and_keeps_what_is_not_sent(workspace, write_key):
    person_upsert(
        workspace=workspace,
        external_id="u5",
        data={"city": "Paris", "first_name": "Zoe"},
        actor=ACTOR,
    )
    post(
        "/v1/identify",
        {"userId": "u5", "traits": {"name": "Zoe Martin", "email": "zoe@x.test"}},
        write_key,
    )
    zoe = Person.objects.get(workspace=workspace, external_id="u5")
    assert (zoe.city, zoe.email, zoe.first_name) == ("Paris", "zoe@x.test", "Zoe")
    assert zoe.last_name == "Martin"  # the "name" trait, split when no first or last is sent


def test_guessing_write_keys_from_one_address_is_answered_429(workspace, write_key, settings):
    settings.API_AUTH_FAILURE_LIMIT = "3/m"
    message = {"userId": "u1", "event": "E"}
    assert [post("/v1/track", message, "hk_guess").status_code for _ in range(3)] == [401] * 3
    blocked = post("/v1/track", message, write_key)  # even the right key, from there
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) >= 1


def test_old_message_ids_expire(workspace, write_key):
    from datetime import timedelta

    from django.utils import timezone

    from people.models import TrackedMessage
    from people.tasks import tracked_messages_expire_task

    post("/v1/track", {"userId": "u1", "event": "E", "messageId": "old"}, write_key)
    post("/v1/track", {"userId": "u1", "event": "E", "messageId": "new"}, write_key)
    TrackedMessage.objects.filter(message_id="old").update(
        received_at=timezone.now() - timedelta(days=31)
    )
    assert tracked_messages_expire_task() == 1
    assert list(TrackedMessage.objects.values_list("message_id", flat=True)) == ["new"]

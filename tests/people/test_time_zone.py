"""The person's built-in time_zone (shared/API.md, People): an IANA name stored in its
canonical spelling, "" for the workspace's; set by the People API, the contact import and
the Segment `identify` trait `timezone`; a built-in attribute of segment rules; shown on
the profile with the person's local time."""

import base64
import json
from datetime import UTC, datetime
from html import unescape

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.audit import Actor
from accounts.jobs import media_path
from accounts.models import ApiKeyKind
from accounts.services import api_key_create
from people.attributes import BUILTIN_ATTRIBUTES, BUILTIN_LABELS
from people.imports import services as import_services
from people.imports.rows import FIELD_LABELS
from people.models import BUILTIN_FIELDS, AttributeType, ContactImport, Person
from people.normalize import InvalidTimeZone, normalize_time_zone
from people.services.people import person_upsert
from segments.rules import compile_rules, parse_rules
from tests.factories import PersonFactory

ACTOR = Actor(system="tests")
NOW = datetime(2026, 11, 25, 14, 3, tzinfo=UTC)


def put(client, external_id, body):
    return client.put(f"/api/v1/people/{external_id}", data=body, content_type="application/json")


def zone_of(workspace, external_id) -> str:
    return Person.objects.for_workspace(workspace).get(external_id=external_id).time_zone


# --- normalizing ----------------------------------------------------------------------------


def test_names_are_canonicalized_case_insensitively_and_unknown_ones_refused():
    assert normalize_time_zone("europe/paris") == "Europe/Paris"
    assert normalize_time_zone("  AMERICA/NEW_YORK ") == "America/New_York"
    assert normalize_time_zone("utc") == "UTC"
    assert normalize_time_zone("") == "" and normalize_time_zone("  ") == ""
    for bad in ("Mars/Base", "Europe", "+01:00", "localtime", "Europe/Paris/x"):
        with pytest.raises(InvalidTimeZone, match="not a known time zone"):
            normalize_time_zone(bad)


# --- People API -----------------------------------------------------------------------------


def test_put_stores_the_canonical_name_and_returns_it(api_client, workspace):
    r = put(api_client, "u-1", {"email": "u1@x.test", "time_zone": "europe/paris"})
    assert r.status_code == 201 and r.json()["time_zone"] == "Europe/Paris"
    assert zone_of(workspace, "u-1") == "Europe/Paris"
    # not sent: kept; "" or null: back to the workspace's
    assert put(api_client, "u-1", {"first_name": "Ann"}).json()["time_zone"] == "Europe/Paris"
    assert put(api_client, "u-1", {"time_zone": ""}).json()["time_zone"] == ""
    put(api_client, "u-1", {"time_zone": "Asia/Tokyo"})
    assert put(api_client, "u-1", {"time_zone": None}).json()["time_zone"] == ""
    assert api_client.get("/api/v1/people/u-1").json()["time_zone"] == ""


def test_an_unknown_zone_is_a_422_naming_the_field_and_changes_nothing(api_client, workspace):
    put(api_client, "u-1", {"time_zone": "Asia/Tokyo", "city": "Tokyo"})
    r = put(api_client, "u-1", {"time_zone": "Mars/Base", "city": "Olympus"})
    assert r.status_code == 422
    body = r.json()
    assert body["errors"][0]["loc"] == ["body", "time_zone"]
    assert "Mars/Base" in body["errors"][0]["msg"] and "time_zone" in body["detail"]
    person = Person.objects.for_workspace(workspace).get(external_id="u-1")
    assert (person.time_zone, person.city) == ("Asia/Tokyo", "Tokyo")
    # a new person with a bad zone is not created; a non-string is refused by its type
    assert put(api_client, "u-2", {"time_zone": "Mars/Base"}).status_code == 422
    assert not Person.objects.for_workspace(workspace).filter(external_id="u-2").exists()
    wrong_type = put(api_client, "u-2", {"time_zone": 5})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["loc"][:2] == ["body", "time_zone"]


def test_batch_reports_bad_zones_per_item_and_applies_the_rest(api_client, workspace):
    PersonFactory(workspace=workspace, external_id="b", time_zone="Asia/Tokyo")
    r = api_client.post(
        "/api/v1/people/batch",
        data={
            "people": [
                {"external_id": "a", "time_zone": "america/sao_paulo"},
                {"external_id": "b", "time_zone": "Mars/Base"},
                {"external_id": "c", "time_zone": 3},
                {"external_id": "d", "email": "d@x.test"},
                {"external_id": "e", "time_zone": "Europe/Paris"},
            ]
        },
        content_type="application/json",
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["created"], body["updated"]) == (3, 0)
    assert [e["index"] for e in body["errors"]] == [1, 2]
    assert (
        body["errors"][0]["msg"].startswith("time_zone: ")
        and "Mars/Base" in body["errors"][0]["msg"]
    )
    assert body["errors"][1]["msg"] == "time_zone: time_zone must be a string"
    zones = dict(Person.objects.for_workspace(workspace).values_list("external_id", "time_zone"))
    assert zones == {"a": "America/Sao_Paulo", "b": "Asia/Tokyo", "d": "", "e": "Europe/Paris"}


def test_the_field_is_a_builtin_attribute_of_rules_and_the_import(api_client, workspace):
    assert BUILTIN_FIELDS.index("time_zone") == len(BUILTIN_FIELDS) - 2  # company stays last
    assert BUILTIN_ATTRIBUTES["time_zone"] == AttributeType.STRING
    assert BUILTIN_LABELS["time_zone"] == FIELD_LABELS["time_zone"] == "Time zone"
    body = put(api_client, "u-1", {"time_zone": "Europe/Paris"}).json()
    assert body["attributes"] == {}


# --- Contact import -------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _import(workspace, text: str, **confirm) -> ContactImport:
    job = import_services.contact_import_create(
        workspace=workspace, uploaded_by=None, file=SimpleUploadedFile("p.csv", text.encode()),
        actor=ACTOR,
    )  # fmt: skip
    job = import_services.contact_import_analyze(contact_import=job, now=NOW)
    assert job.stage == ContactImport.Stage.ANALYZED, job.detail
    job = import_services.contact_import_confirm(contact_import=job, options=confirm, actor=ACTOR)
    return import_services.contact_import_run(import_id=job.id, now=NOW)


@pytest.mark.parametrize("header", ["time_zone", "Time zone", "Timezone", "TZ", "Time-Zone"])
def test_import_recognises_the_column_under_its_usual_names(workspace, media, header):
    job = import_services.contact_import_analyze(
        contact_import=import_services.contact_import_create(
            workspace=workspace, uploaded_by=None, actor=ACTOR,
            file=SimpleUploadedFile("p.csv", f"id,{header}\n1,Europe/Paris\n".encode()),
        ),
        now=NOW,
    )  # fmt: skip
    assert [m["target"] for m in job.options["mapping"]] == ["external_id", "time_zone"]


def test_import_canonicalizes_zones_and_reports_unknown_ones_by_line(workspace, media):
    PersonFactory(workspace=workspace, external_id="3", time_zone="Asia/Tokyo")
    text = (
        "id,Email,Time zone\n"
        "1,one@x.test,europe/paris\n"
        "2,two@x.test,Mars/Base\n"
        "3,three@x.test,\n"  # an empty cell never clears a value
        "4,four@x.test,America/New_York\n"
    )
    job = _import(workspace, text, policy=ContactImport.Policy.OVERWRITE)
    assert job.error_count == 1
    first = job.analysis["result"]["first_errors"]
    assert [(e["line"], e["reason"]) for e in first] == [
        (3, "Time zone: “Mars/Base” is not a known time zone: write an IANA name such as "
            "Europe/Paris or America/New_York."),
    ]  # fmt: skip
    assert "Mars/Base" in media_path(job.error_report).read_text()
    zones = dict(Person.objects.for_workspace(workspace).values_list("external_id", "time_zone"))
    assert zones == {"1": "Europe/Paris", "3": "Asia/Tokyo", "4": "America/New_York"}
    # overwrite replaces a zone, fill_empty only fills an empty one
    _import(workspace, "id,tz\n3,Europe/Rome\n4,\n", policy=ContactImport.Policy.OVERWRITE)
    _import(workspace, "id,tz\n1,Asia/Tokyo\n5,Europe/Lisbon\n",
            policy=ContactImport.Policy.FILL_EMPTY)  # fmt: skip
    zones = dict(Person.objects.for_workspace(workspace).values_list("external_id", "time_zone"))
    assert zones == {
        "1": "Europe/Paris", "3": "Europe/Rome", "4": "America/New_York", "5": "Europe/Lisbon",
    }  # fmt: skip


def test_the_export_has_the_zone_and_the_import_reads_it_back(workspace, ops_user, media):
    PersonFactory(workspace=workspace, external_id="x1", time_zone="Europe/Paris")
    client = Client()
    client.force_login(ops_user)
    response = client.post("/people/export/", {"all_matching": "1"})
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode().lstrip("\ufeff")
    header, row = text.splitlines()[:2]
    assert "time_zone" in header.split(",")
    assert dict(zip(header.split(","), row.split(","), strict=False))["time_zone"] == "Europe/Paris"
    job = import_services.contact_import_analyze(
        contact_import=import_services.contact_import_create(
            workspace=workspace, uploaded_by=None, actor=ACTOR,
            file=SimpleUploadedFile("export.csv", text.encode()),
        ),
        now=NOW,
    )  # fmt: skip
    mapping = {m["header"]: m["target"] for m in job.options["mapping"]}
    assert mapping["time_zone"] == "time_zone"


# --- Segment identify -----------------------------------------------------------------------


@pytest.fixture
def write_key(workspace):
    return api_key_create(workspace=workspace, name="site", kind=ApiKeyKind.WRITE, actor=ACTOR)[1]


def identify(key, body):
    return Client().post(
        "/v1/batch" if "batch" in body else "/v1/identify",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()},
    )


def test_the_identify_trait_timezone_sets_the_zone(workspace, write_key):
    r = identify(
        write_key, {"userId": "u1", "traits": {"email": "a@x.test", "timezone": "europe/berlin"}}
    )
    assert r.status_code == 200 and r.json() == {"success": True, "errors": []}
    assert zone_of(workspace, "u1") == "Europe/Berlin"
    person = Person.objects.for_workspace(workspace).get(external_id="u1")
    assert person.attributes == {}  # a built-in field, not a custom attribute
    identify(write_key, {"userId": "u1", "traits": {"time_zone": "Asia/Tokyo"}})
    assert zone_of(workspace, "u1") == "Asia/Tokyo"


def test_an_unknown_timezone_trait_is_reported_and_the_rest_of_the_message_applied(
    workspace, write_key
):
    PersonFactory(workspace=workspace, external_id="u2", time_zone="Asia/Tokyo", city="")
    batch = [
        {"userId": "u1", "traits": {"email": "b@x.test", "timezone": "Mars/Base"}},
        {"userId": "u2", "traits": {"address": {"city": "Kyoto"}, "timezone": 9}},
        {"userId": "u3", "traits": {"timezone": "Europe/Paris"}},
    ]
    r = identify(write_key, {"batch": [{"type": "identify", **m} for m in batch]})
    assert r.status_code == 200
    errors = r.json()["errors"]
    assert [e["index"] for e in errors] == [0, 1]
    assert "traits.timezone" in errors[0]["msg"] and "Mars/Base" in errors[0]["msg"]
    assert "rest of the message was applied" in errors[0]["msg"]
    assert "must be text" in errors[1]["msg"]
    people = {p.external_id: p for p in Person.objects.for_workspace(workspace)}
    assert (people["u1"].email, people["u1"].time_zone) == ("b@x.test", "")
    assert (people["u2"].city, people["u2"].time_zone) == ("Kyoto", "Asia/Tokyo")
    assert people["u3"].time_zone == "Europe/Paris"


# --- Segment rules --------------------------------------------------------------------------


def matching(workspace, rules) -> set[str]:
    tree = parse_rules(rules, workspace=workspace)
    people = Person.objects.for_workspace(workspace).filter(
        compile_rules(tree, workspace=workspace, now=NOW)
    )
    return set(people.values_list("external_id", flat=True))


def test_rules_use_time_zone_as_a_builtin_string_attribute(workspace, other_workspace):
    for key, zone in (("paris", "Europe/Paris"), ("tokyo", "Asia/Tokyo"), ("none", "")):
        PersonFactory(workspace=workspace, external_id=key, time_zone=zone)
    PersonFactory(workspace=other_workspace, external_id="elsewhere", time_zone="Europe/Paris")
    rule = {"attribute": "time_zone", "op": "is", "value": "Europe/Paris"}
    assert matching(workspace, rule) == {"paris"}
    assert matching(workspace, {**rule, "op": "is_not"}) == {"tokyo", "none"}
    assert matching(
        workspace, {"attribute": "time_zone", "op": "in", "value": ["Asia/Tokyo", "Europe/Paris"]}
    ) == {"paris", "tokyo"}
    assert matching(workspace, {"attribute": "time_zone", "op": "is_empty"}) == {"none"}
    assert matching(
        workspace, {"attribute": "time_zone", "op": "starts_with", "value": "europe/"}
    ) == {"paris"}


def test_segment_preview_api_filters_on_time_zone(api_client, workspace):
    PersonFactory(workspace=workspace, external_id="paris", time_zone="Europe/Paris")
    PersonFactory(workspace=workspace, external_id="utc")
    r = api_client.post(
        "/api/v1/segments/preview",
        data={"rules": {"attribute": "time_zone", "op": "is", "value": "Europe/Paris"}},
        content_type="application/json",
    )
    assert r.status_code == 200 and r.json()["count"] == 1
    assert r.json()["sample"][0]["time_zone"] == "Europe/Paris"


# --- Profile --------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_the_profile_shows_the_zone_and_the_local_time(client, ops_user, workspace):
    client.force_login(ops_user)
    workspace.time_zone = "America/New_York"
    workspace.save()
    own, _ = person_upsert(
        workspace=workspace, external_id="p1", data={"time_zone": "Asia/Tokyo"}, actor=ACTOR
    )
    page = unescape(client.get(f"/people/{own.pk}/").content.decode())
    assert "Asia/Tokyo" in page and "Wed 25 Nov, 23:03" in page  # 14:03 UTC is 23:03 there
    assert 'datetime="2026-11-25T23:03:00+09:00"' in page
    fallback, _ = person_upsert(workspace=workspace, external_id="p2", data={}, actor=ACTOR)
    page = unescape(client.get(f"/people/{fallback.pk}/").content.decode())
    assert "the workspace's (America/New_York)" in page and "Wed 25 Nov, 09:03" in page
    # a zone the server no longer knows (written around the checks) falls back, said so
    Person.objects.for_workspace(workspace).filter(pk=fallback.pk).update(time_zone="Old/Zone")
    page = unescape(client.get(f"/people/{fallback.pk}/").content.decode())
    assert "“Old/Zone” is unknown here" in page and "09:03" in page


def test_another_workspaces_person_is_404(client, ops_user, other_workspace):
    client.force_login(ops_user)
    stranger = PersonFactory(workspace=other_workspace, time_zone="Europe/Paris")
    assert client.get(f"/people/{stranger.pk}/").status_code == 404


@pytest.mark.parametrize("key", ["time_zone", "city", "email"])
def test_a_custom_attribute_named_like_a_built_in_field_is_refused(api_client, workspace, key):
    r = put(api_client, "u-9", {"attributes": {key: "Europe/Paris"}})
    assert r.status_code == 422
    assert "built-in field" in r.content.decode()
    assert not Person.objects.for_workspace(workspace).filter(external_id="u-9").exists()

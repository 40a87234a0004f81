"""/api/v1/channels/{channel}/segments and /audiences (shared/API.md "Channel audiences"):
each channel's own list of segments (a Herald segment added, a CSV uploaded as a static
segment), its audiences of include and exclude segments counted live (and how many are
reachable on the channel, not on Do Not Contact), clones, refusals that name what is in
the way; channels apart, workspaces apart."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.audit import Actor
from people.models import Person
from people.services.dnc import dnc_add
from segments.models import Segment
from segments.services import segment_create, static_members_change
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
BASE = "/api/v1/channels"


def static(workspace, name, people):
    segment = segment_create(workspace=workspace, name=name, kind="static", actor=ACTOR)
    static_members_change(
        segment=segment, people=Person.objects.filter(pk__in=[p.pk for p in people]), add=True,
        actor=ACTOR,
    )  # fmt: skip
    return segment


def post(client, path, body):
    return client.post(f"{BASE}{path}", body, content_type="application/json")


def patch(client, path, body):
    return client.patch(f"{BASE}{path}", body, content_type="application/json")


@pytest.fixture
def people(workspace):
    ann = PersonFactory(workspace=workspace, email="ann@example.com", phone="+14155550101")
    bob = PersonFactory(workspace=workspace, email="bob@example.com", phone="")
    cy = PersonFactory(workspace=workspace, email="", phone="+14155550103")
    dee = PersonFactory(workspace=workspace, email="dee@example.com", phone="")
    return ann, bob, cy, dee


def test_a_segment_in_a_channel_list_is_searched_edited_and_kept_per_channel(
    api_client, workspace, other_workspace, people
):
    vip = static(workspace, "VIP", people[:2])
    added = post(api_client, "/email/segments", {"segment": vip.pk})
    assert added.status_code == 201, added.content
    entry = added.json()
    assert entry | {"id": 0} == {
        "id": 0, "segment": vip.pk, "external_id": "", "name": "VIP", "link": "",
        "source": "herald", "active": True, "people_count": 2,
    }  # fmt: skip
    assert post(api_client, "/email/segments", {"segment": vip.pk}).status_code == 409
    assert api_client.get(f"{BASE}/sms/segments").json()["items"] == []  # channels apart
    theirs = static(other_workspace, "Theirs", [])
    assert post(api_client, "/email/segments", {"segment": theirs.pk}).status_code == 404

    changed = patch(api_client, f"/email/segments/{entry['id']}",
                    {"name": "VIP customers", "external_id": "KL-42",
                     "link": "https://www.klaviyo.com/list/KL-42", "active": False})  # fmt: skip
    assert changed.status_code == 200, changed.content
    assert changed.json()["name"] == "VIP customers" and changed.json()["active"] is False
    assert Segment.objects.get(pk=vip.pk).name == "VIP"  # the Herald segment keeps its name
    by_id = api_client.get(f"{BASE}/email/segments", {"q": "kl-4"}).json()["items"]
    assert [e["id"] for e in by_id] == [entry["id"]]
    assert api_client.get(f"{BASE}/email/segments", {"active": "true"}).json()["items"] == []
    bad = patch(api_client, f"/email/segments/{entry['id']}", {"link": "javascript:alert(1)"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "link"
    assert api_client.delete(f"{BASE}/email/segments/{entry['id']}").status_code == 204
    assert api_client.get(f"{BASE}/email/segments").json()["items"] == []
    assert Segment.objects.filter(pk=vip.pk).exists()


def test_an_audience_is_counted_live_with_its_reachable_people(api_client, workspace, people):
    ann, bob, cy, dee = people
    buyers = static(workspace, "Buyers", [ann, bob, cy])
    newsletter = static(workspace, "Newsletter", [dee])
    churned = static(workspace, "Churned", [bob])
    ids = {s.name: post(api_client, "/email/segments", {"segment": s.pk}).json()["id"]
           for s in (buyers, newsletter, churned)}  # fmt: skip
    dnc_add(workspace=workspace, channel="email", address="dee@example.com", actor=ACTOR)
    created = post(api_client, "/email/audiences", {
        "name": "Spring sale", "estimated_volume": 5000,
        "include": [ids["Buyers"], ids["Newsletter"]], "exclude": [ids["Churned"]],
    })  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    # ann, cy, dee are in (bob excluded); reachable by email: ann (cy has no email, dee DNC)
    assert (body["people_count"], body["reachable_count"]) == (3, 1)
    assert body["estimated_volume"] == 5000
    assert body["definition"] == "People in “Buyers” or “Newsletter”, and not in “Churned”."

    # the same people on SMS: another list, another audience, other reachable people
    sms_buyers = post(api_client, "/sms/segments", {"segment": buyers.pk}).json()["id"]
    sms = post(api_client, "/sms/audiences", {"name": "Spring sale", "include": [sms_buyers]})
    assert sms.status_code == 201
    assert (sms.json()["people_count"], sms.json()["reachable_count"]) == (3, 2)  # ann, cy
    # an email entry cannot be used by an SMS audience
    wrong = post(api_client, "/sms/audiences", {"name": "Mixed", "include": [ids["Buyers"]]})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["loc"][-1] == "include"

    # live: a new buyer counts at once
    static_members_change(segment=buyers, people=Person.objects.filter(pk=PersonFactory(
        workspace=workspace, email="eve@example.com").pk), add=True, actor=ACTOR)  # fmt: skip
    got = api_client.get(f"{BASE}/email/audiences/{body['id']}").json()
    assert (got["people_count"], got["reachable_count"]) == (4, 2)


def test_bad_definitions_are_refused_naming_the_field(api_client, workspace, people):
    vip = post(api_client, "/email/segments",
               {"segment": static(workspace, "VIP", people).pk}).json()["id"]  # fmt: skip
    both = post(api_client, "/email/audiences", {"name": "Odd", "include": [vip], "exclude": [vip]})
    assert both.status_code == 422
    assert both.json()["errors"][0]["loc"][-1] == "exclude"
    assert "both included and excluded" in both.json()["detail"]
    unknown = post(api_client, "/email/audiences", {"name": "Odd", "include": [999999]})
    assert unknown.status_code == 422
    assert (
        post(api_client, "/email/audiences", {"name": "VIP", "include": [vip]}).status_code == 201
    )
    again = post(api_client, "/email/audiences", {"name": "vip", "include": [vip]})
    assert again.status_code == 422 and again.json()["errors"][0]["loc"][-1] == "name"
    assert post(api_client, "/email/audiences", {"name": "", "include": []}).status_code == 422


def test_clone_then_vary_and_delete(api_client, workspace, people):
    a = post(api_client, "/email/segments",
             {"segment": static(workspace, "A", people[:2]).pk}).json()["id"]  # fmt: skip
    b = post(api_client, "/email/segments",
             {"segment": static(workspace, "B", people[1:2]).pk}).json()["id"]  # fmt: skip
    original = post(api_client, "/email/audiences",
                    {"name": "Base", "include": [a], "estimated_volume": 10}).json()  # fmt: skip
    copy = post(api_client, f"/email/audiences/{original['id']}/clone", {"name": "Base minus B"})
    assert copy.status_code == 201
    varied = patch(api_client, f"/email/audiences/{copy.json()['id']}", {"exclude": [b]})
    assert varied.status_code == 200
    assert (varied.json()["people_count"], varied.json()["estimated_volume"]) == (1, 10)
    assert api_client.get(f"{BASE}/email/audiences/{original['id']}").json()["people_count"] == 2
    # an entry an audience uses stays until the audience lets it go
    used = api_client.delete(f"{BASE}/email/segments/{b}")
    assert used.status_code == 409 and "Base minus B" in used.json()["detail"]
    assert api_client.delete(f"{BASE}/email/audiences/{copy.json()['id']}").status_code == 204
    assert api_client.delete(f"{BASE}/email/segments/{b}").status_code == 204
    listed = api_client.get(f"{BASE}/email/audiences").json()["items"]
    assert [x["name"] for x in listed] == ["Base"]


def test_a_csv_upload_becomes_a_static_segment_of_the_channel(
    api_client, workspace, people, run_jobs
):
    ann, bob, *_ = people
    csv = SimpleUploadedFile("vip.csv", b"email\nann@example.com\nbob@example.com\nnobody@x.io\n")
    with run_jobs():
        answer = api_client.post(
            f"{BASE}/sms/segments/upload",
            {"file": csv, "name": "VIP import", "identifier": "email"},
        )
    assert answer.status_code == 202, answer.content
    job = api_client.get(f"/api/v1/audiences/imports/{answer.json()['id']}").json()
    assert job["status"] == "done" and (job["matched"], job["unmatched"]) == (2, 1)
    (entry,) = api_client.get(f"{BASE}/sms/segments").json()["items"]
    assert (entry["name"], entry["source"], entry["people_count"]) == ("VIP import", "csv", 2)
    segment = Segment.objects.get(pk=entry["segment"])
    assert segment.kind == "static"
    assert set(segment.memberships.filter(exited_at__isnull=True).values_list(
        "person_id", flat=True)) == {ann.pk, bob.pk}  # fmt: skip
    not_text = SimpleUploadedFile("x.csv", b"\x00\x01\x02binary" * 100)
    refused = api_client.post(
        f"{BASE}/sms/segments/upload", {"file": not_text, "name": "Junk", "identifier": "email"}
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"][-1] == "file"
    assert len(api_client.get(f"{BASE}/sms/segments").json()["items"]) == 1  # nothing made


def test_the_segment_source_keeps_its_key_secret_and_syncs_need_one(api_client):
    assert api_client.get(f"{BASE}/email/source").status_code == 404
    assert post(api_client, "/email/sync", {}).status_code == 409
    put = api_client.put(f"{BASE}/email/source",
                         {"kind": "klaviyo", "settings": {"schedule_minutes": 60},
                          "secrets": {"api_key": "pk_live_secret"}},
                         content_type="application/json")  # fmt: skip
    assert put.status_code == 200, put.content
    assert put.json()["secrets_set"] == ["api_key"] and "pk_live_secret" not in put.content.decode()
    bad = api_client.put(f"{BASE}/email/source",
                         {"kind": "klaviyo", "settings": {"schedule_minutes": 1}},
                         content_type="application/json")  # fmt: skip
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "schedule_minutes"


def test_a_meta_export_needs_an_audience_id_and_an_account(api_client, workspace, people):
    entry = post(api_client, "/meta/segments",
                 {"segment": static(workspace, "VIP", people).pk}).json()["id"]  # fmt: skip
    audience = post(api_client, "/meta/audiences", {"name": "Lookalike seed", "include": [entry]})
    audience_id = audience.json()["id"]
    assert post(api_client, f"/meta/audiences/{audience_id}/export", {}).status_code == 409
    patched = patch(api_client, f"/meta/audiences/{audience_id}",
                    {"meta_audience_id": "23851234567890"})  # fmt: skip
    assert patched.json()["meta_audience_id"] == "23851234567890"
    no_account = post(api_client, f"/meta/audiences/{audience_id}/export", {})
    assert no_account.status_code == 409 and "Meta ad account" in no_account.json()["detail"]
    email = post(api_client, "/email/audiences", {"name": "E", "include": []}).json()["id"]
    assert post(api_client, f"/meta/audiences/{email}/export", {}).status_code == 404

"""/api/v1/campaigns (shared/API.md "Campaigns"): drafts with the audience's lists copied
in and changed without touching the audience, the live estimate with each skip reason,
test sends through the real transport outside the stats, launch as a job (202) to sent,
the lifecycle with 409s, the per-recipient log, a person's messages; bad input 422s,
workspaces apart."""

import pytest

from accounts.audit import Actor
from campaigns.dispatch.send import dispatch
from campaigns.models import Campaign, Delivery
from channels.list_services import channel_audience_create, channel_segment_add
from channels.models import SandboxMessage
from channels.services import provider_set
from people.models import Person
from people.services.dnc import dnc_add
from segments.services import segment_create, static_members_change
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
BASE = "/api/v1/campaigns"
EMAIL = {"subject": "Hi {{ person.first_name | default: 'there' }}", "text": "Sale",
         "html": "<p>Sale</p>"}  # fmt: skip


def static(workspace, name, people, **extra):
    segment = segment_create(workspace=workspace, name=name, kind="static", actor=ACTOR)
    static_members_change(segment=segment, people=Person.objects.filter(
        pk__in=[p.pk for p in people]), add=True, actor=ACTOR)  # fmt: skip
    if extra:
        type(segment).objects.filter(pk=segment.pk).update(**extra)
    return segment


def post(client, path, body=None):
    return client.post(f"{BASE}{path}", body or {}, content_type="application/json")


def patch(client, path, body):
    return client.patch(f"{BASE}{path}", body, content_type="application/json")


@pytest.fixture
def people(workspace):
    return [
        PersonFactory(workspace=workspace, external_id="ann", first_name="Ann",
                      email="ann@example.com"),
        PersonFactory(workspace=workspace, external_id="bob", first_name="Bob",
                      email="bob@example.com"),
        PersonFactory(workspace=workspace, external_id="cy", first_name="Cy", email=""),
        PersonFactory(workspace=workspace, external_id="dee", first_name="",
                      email="dee@example.com"),
        PersonFactory(workspace=workspace, external_id="dup", first_name="Dup",
                      email="ann@example.com"),
    ]  # fmt: skip


@pytest.fixture
def sandbox(workspace):
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={}, secrets={},
                 actor=ACTOR)  # fmt: skip


def test_a_draft_copies_the_audience_lists_and_changes_them_without_the_audience(
    api_client, workspace, people
):
    customers = static(workspace, "Customers", people)
    churned = static(workspace, "Churned", people[1:2])
    vip = static(workspace, "VIP", people[:1])
    include_entry = channel_segment_add(workspace=workspace, channel="email", segment=customers,
                                        actor=ACTOR)  # fmt: skip
    exclude_entry = channel_segment_add(workspace=workspace, channel="email", segment=churned,
                                        actor=ACTOR)  # fmt: skip
    audience = channel_audience_create(workspace=workspace, channel="email", data={
        "name": "Newsletter", "include": [include_entry.pk], "exclude": [exclude_entry.pk]},
        actor=ACTOR)  # fmt: skip
    answer = post(api_client, "", {"name": "Spring", "channel": "email", "audience": audience.pk,
                                   "content": EMAIL})  # fmt: skip
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["status"], body["include"], body["exclude"]) == ("draft", [customers.pk],
                                                                  [churned.pk])  # fmt: skip
    assert body["audience_changes"] == {"include_added": [], "include_removed": [],
                                        "exclude_added": [], "exclude_removed": []}  # fmt: skip
    changed = patch(api_client, f"/{body['id']}", {"include": [customers.pk, vip.pk],
                                                   "exclude": []})  # fmt: skip
    assert changed.status_code == 200, changed.content
    assert changed.json()["audience_changes"] == {
        "include_added": [vip.pk], "include_removed": [], "exclude_added": [],
        "exclude_removed": [churned.pk],
    }  # fmt: skip
    audience.refresh_from_db()
    assert [e.segment_id for e in audience.exclude.all()] == [churned.pk]  # unchanged
    # an audience of another channel is refused
    sms_audience = channel_audience_create(workspace=workspace, channel="sms",
                                           data={"name": "Texts"}, actor=ACTOR)  # fmt: skip
    wrong = patch(api_client, f"/{body['id']}", {"audience": sms_audience.pk})
    assert wrong.status_code == 422 and "email channel" in wrong.json()["detail"]


def test_estimate_test_send_launch_and_the_log(api_client, workspace, people, sandbox,
                                               run_jobs):  # fmt: skip
    everyone = static(workspace, "All", people)
    staff = static(workspace, "Staff", people[:2], internal=True)
    dnc_add(workspace=workspace, channel="email", address="bob@example.com", actor=ACTOR)
    created = post(api_client, "", {"name": "Spring", "channel": "email", "include": [everyone.pk],
                                    "content": EMAIL})  # fmt: skip
    campaign_id = created.json()["id"]
    estimate = api_client.get(f"{BASE}/{campaign_id}/estimate").json()
    assert estimate["recipients"] == 2  # ann, dee
    assert {k: v for k, v in estimate["skipped"].items() if v} == {
        "dnc": 1,
        "no_address": 1,
        "duplicate_address": 1,
    }

    test = post(api_client, f"/{campaign_id}/test", {"segment": staff.pk})
    assert test.status_code == 200, test.content
    assert test.json() == {"sent": 1, "skipped": [{"person": "bob", "reason": "dnc"}], "failed": []}
    assert SandboxMessage.objects.filter(address="ann@example.com").count() == 1
    assert api_client.get(f"{BASE}/{campaign_id}").json()["stats"]["sent"] == 0  # tests apart

    with run_jobs():
        launched = post(api_client, f"/{campaign_id}/launch")
    assert launched.status_code == 202, launched.content
    assert launched.json()["status"] == "sending"
    dispatch(campaign_id)  # what the senders started by the launch job did (eager above)
    body = api_client.get(f"{BASE}/{campaign_id}").json()
    assert body["status"] == "sent"
    assert body["launch"]["status"] == "done" and body["launch"]["queued"] == 2
    assert body["stats"]["recipients"] == 2 and body["stats"]["sent"] == 2
    assert {k: v for k, v in body["stats"]["skipped"].items() if v} == {
        "dnc": 1,
        "no_address": 1,
        "duplicate_address": 1,
    }
    # each address once, the template rendered per person (Dee has no first name)
    subjects = sorted(SandboxMessage.objects.values_list("address", "subject"))
    assert subjects == [("ann@example.com", "Hi Ann"), ("ann@example.com", "Hi Ann"),
                        ("dee@example.com", "Hi there")]  # fmt: skip

    log = api_client.get(f"{BASE}/{campaign_id}/deliveries?limit=2").json()
    rest = api_client.get(f"{BASE}/{campaign_id}/deliveries?cursor={log['next_cursor']}").json()
    pages = [[d["person"] for d in page["items"]] for page in (log, rest)]
    assert len(pages[0]) == 2 and sorted(pages[0] + pages[1]) == ["ann", "bob", "cy", "dee", "dup"]
    assert rest["next_cursor"] is None
    skipped = api_client.get(f"{BASE}/{campaign_id}/deliveries?status=skipped").json()["items"]
    assert {(d["person"], d["reason"]) for d in skipped} == {
        ("bob", "dnc"),
        ("cy", "no_address"),
        ("dup", "duplicate_address"),
    }

    messages = api_client.get("/api/v1/people/ann/messages").json()["items"]
    assert [(m["campaign"], m["status"], m["is_test"]) for m in messages] == [
        (campaign_id, "sent", False),
        (campaign_id, "sent", True),
    ]
    # finished: no changes, no second launch, no delete
    assert patch(api_client, f"/{campaign_id}", {"name": "Other"}).status_code == 409
    assert post(api_client, f"/{campaign_id}/launch").status_code == 409
    assert api_client.delete(f"{BASE}/{campaign_id}").status_code == 409
    assert post(api_client, f"/{campaign_id}/pause").status_code == 409


def test_schedule_pause_resume_cancel(api_client, workspace, people, sandbox):
    everyone = static(workspace, "All", people)
    campaign_id = post(
        api_client,
        "",
        {"name": "Later", "channel": "email", "include": [everyone.pk], "content": EMAIL},
    ).json()["id"]
    scheduled = post(api_client, f"/{campaign_id}/launch", {"send_at": "2099-01-01T10:00:00Z"})
    assert scheduled.status_code == 202
    assert (scheduled.json()["status"], scheduled.json()["send_at"]) == (
        "scheduled",
        "2099-01-01T10:00:00Z",
    )
    # a scheduled campaign still changes; then cancelled
    assert patch(api_client, f"/{campaign_id}", {"name": "Later on"}).status_code == 200
    assert post(api_client, f"/{campaign_id}/resume").status_code == 409
    cancelled = post(api_client, f"/{campaign_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert Delivery.objects.filter(campaign_id=campaign_id).count() == 0

    second = post(api_client, "", {"name": "Now", "channel": "email", "include": [everyone.pk],
                                   "content": EMAIL}).json()["id"]  # fmt: skip
    post(api_client, f"/{second}/launch")
    assert post(api_client, f"/{second}/pause").json()["status"] == "paused"
    assert post(api_client, f"/{second}/resume").json()["status"] == "sending"


def test_bad_input_is_a_422_naming_the_field(api_client, workspace, other_workspace, people):
    foreign = static(other_workspace, "Theirs", [])
    broken = post(
        api_client,
        "",
        {
            "name": "Bad",
            "channel": "email",
            "content": {"subject": "Hi {{ person.first_name ", "text": "x"},
        },
    )
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["loc"] == ["body", "subject"]
    assert "line 1" in broken.json()["errors"][0]["msg"]
    assert (
        post(api_client, "", {"name": "X", "channel": "email", "include": [foreign.pk]}).status_code
        == 422
    )
    assert post(api_client, "", {"name": "X", "channel": "fax"}).status_code == 422
    unknown = post(api_client, "", {"name": "X", "channel": "email", "people": ["nobody"]})
    assert unknown.status_code == 422 and "'nobody'" in unknown.json()["detail"]
    # no recipients chosen: launching is a 422, nothing changes
    draft = post(api_client, "", {"name": "Empty", "channel": "email", "content": EMAIL}).json()
    refused = post(api_client, f"/{draft['id']}/launch")
    assert refused.status_code == 422 and "No recipients chosen" in refused.json()["detail"]
    assert Campaign.objects.get(pk=draft["id"]).status == "draft"
    assert api_client.get(f"{BASE}/{draft['id']}/estimate").status_code == 422
    # a draft may be incomplete; a launch of it names what is missing
    everyone = static(workspace, "All", people)
    incomplete = post(
        api_client,
        "",
        {"name": "Half", "channel": "email", "include": [everyone.pk], "content": {"text": "x"}},
    ).json()
    missing = post(api_client, f"/{incomplete['id']}/launch")
    assert missing.status_code == 422 and "subject" in missing.json()["detail"]
    # a test send without a provider says so
    no_provider = post(api_client, f"/{draft['id']}/test", {"people": ["ann"]})
    assert no_provider.status_code == 422 and "provider" in no_provider.json()["detail"].lower()


def test_people_become_the_campaigns_own_static_segment(api_client, workspace, people, sandbox,
                                                        run_jobs):  # fmt: skip
    created = post(
        api_client,
        "",
        {"name": "Broadcast", "channel": "email", "people": ["ann", "dee"], "content": EMAIL},
    ).json()
    assert (created["people"], created["people_count"]) == (["ann", "dee"], 2)
    with run_jobs():
        post(api_client, f"/{created['id']}/launch")
    dispatch(created["id"])
    assert sorted(SandboxMessage.objects.values_list("address", flat=True)) == [
        "ann@example.com",
        "dee@example.com",
    ]
    # deleting a draft takes its recipients' segment with it
    draft = post(api_client, "", {"name": "Gone", "channel": "email", "people": ["bob"]}).json()
    segment_id = Campaign.objects.get(pk=draft["id"]).people_segment_id
    assert api_client.delete(f"{BASE}/{draft['id']}").status_code == 204
    from segments.models import Segment

    assert not Segment.objects.filter(pk=segment_id).exists()


def test_another_workspaces_campaign_answers_404_everywhere(api_client, other_workspace):
    theirs = Campaign.objects.create(workspace=other_workspace, name="Theirs", channel="email")
    for method, path in [("get", ""), ("get", "/estimate"), ("get", "/deliveries"),
                         ("patch", ""), ("delete", ""), ("post", "/test"), ("post", "/launch"),
                         ("post", "/pause"), ("post", "/resume"), ("post", "/cancel")]:  # fmt: skip
        call = getattr(api_client, method)
        answer = call(f"{BASE}/{theirs.pk}{path}", {}, content_type="application/json")
        assert answer.status_code == 404, (method, path, answer.status_code)
    assert api_client.get(BASE).json()["items"] == []

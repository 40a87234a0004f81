"""The People page over the send ledger: the quick filters "Contacted" and "Reached on"
(message conditions), "Add to communication -> Broadcast" from the selection, and the
profile's Messages card."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEntry
from campaigns.models import Campaign, Delivery
from segments.models import Segment
from tests.factories import PersonFactory


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


def _sent(campaign, person, *, days_ago, status="sent", is_test=False):
    return Delivery.objects.create(
        workspace=campaign.workspace, campaign=campaign, person=person, status=status,
        is_test=is_test, sent_at=timezone.now() - timedelta(days=days_ago),
    )  # fmt: skip


@pytest.fixture
def ledger(workspace):
    """ann: an email 2 days ago; bob: an email 40 days ago; cat: an SMS yesterday; dan:
    only a test email; eve: nothing."""
    email = Campaign.objects.create(workspace=workspace, name="Spring", channel="email",
                                    status="sent")  # fmt: skip
    sms = Campaign.objects.create(workspace=workspace, name="Texts", channel="sms",
                                  status="sent")  # fmt: skip
    people = {k: PersonFactory(workspace=workspace, external_id=k, city="London")
              for k in ("ann", "bob", "cat", "dan", "eve")}  # fmt: skip
    _sent(email, people["ann"], days_ago=2)
    _sent(email, people["bob"], days_ago=40)
    _sent(sms, people["cat"], days_ago=1)
    _sent(email, people["dan"], days_ago=1, is_test=True)
    return {"email": email, "sms": sms, "people": people}


def _shown(client, **params) -> set[str]:
    page = client.get("/people/", params)
    assert page.status_code == 200
    return {p.external_id for p in page.context["rows"]}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"contacted": "7"}, {"ann", "cat"}),
        ({"contacted": "90"}, {"ann", "bob", "cat"}),
        ({"contacted": "not-30"}, {"bob", "dan", "eve"}),
        ({"contacted": "never"}, {"dan", "eve"}),
        ({"reached": "email"}, {"ann", "bob"}),
        ({"reached": "sms", "contacted": "7"}, {"cat"}),
        ({"reached": "email", "contacted": "7"}, {"ann"}),
        ({"reached": "email", "contacted": "never"}, {"cat", "dan", "eve"}),
    ],
)
def test_contacted_and_reached_filter_the_people(marketer_client, ledger, params, expected):
    assert _shown(marketer_client, **params) == expected


def test_an_unknown_choice_is_a_filter_error_never_everyone(marketer_client, ledger):
    page = marketer_client.get("/people/", {"contacted": "forever"})
    assert page.status_code == 200
    assert page.context["rows"] == []
    assert "Contacted" in page.context["view"].filter_error


def test_the_filters_save_as_a_segment_rule(marketer_client, ledger):
    page = marketer_client.get("/people/", {"reached": "email", "contacted": "7", "city": "x"})
    rules = page.context["view"].segment_rules
    assert {"message": {"channel": "email"}, "op": "received",
            "time": {"op": "within_last", "unit": "days", "amount": 7}} in rules["all"]  # fmt: skip


def test_broadcast_creates_a_draft_with_the_selection(marketer_client, workspace, ledger):
    people = ledger["people"]
    answer = marketer_client.post(
        "/people/bulk/broadcast/",
        {"person": [people["ann"].pk, people["bob"].pk], "channel": "sms",
         "broadcast_name": "  Flash   sale "},
    )  # fmt: skip
    campaign = Campaign.objects.for_workspace(workspace).get(name="Flash sale")
    assert answer.status_code == 302 and str(campaign.pk) in answer.url
    assert campaign.status == "draft" and campaign.channel == "sms"
    members = Segment.objects.get(pk=campaign.people_segment_id).memberships.values_list(
        "person__external_id", flat=True
    )
    assert set(members) == {"ann", "bob"}
    assert AuditEntry.objects.filter(workspace=workspace, action="campaign.create").exists()


def test_broadcast_to_all_matching_follows_the_filters(marketer_client, workspace, ledger):
    marketer_client.post(
        "/people/bulk/broadcast/",
        {"all_matching": "1", "contacted": "never", "channel": "email", "broadcast_name": "Win"},
    )
    campaign = Campaign.objects.for_workspace(workspace).get(name="Win")
    members = Segment.objects.get(pk=campaign.people_segment_id).memberships.values_list(
        "person__external_id", flat=True
    )
    assert set(members) == {"dan", "eve"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"channel": "fax", "all_matching": "1"}, "Choose the channel"),
        ({"channel": "email", "contacted": "1", "reached": "push", "all_matching": "1"},
         "Select the people"),
    ],
)  # fmt: skip
def test_a_bad_broadcast_is_refused_and_creates_nothing(marketer_client, workspace, ledger,
                                                        data, message):  # fmt: skip
    before = Campaign.objects.for_workspace(workspace).count()
    answer = marketer_client.post("/people/bulk/broadcast/", data, follow=True)
    assert answer.status_code == 200
    assert message in answer.content.decode()
    assert Campaign.objects.for_workspace(workspace).count() == before


def test_a_viewer_cannot_broadcast(client, viewer, workspace, ledger):
    client.force_login(viewer)
    answer = client.post("/people/bulk/broadcast/", {"all_matching": "1", "channel": "email"})
    assert answer.status_code == 403
    assert Campaign.objects.for_workspace(workspace).count() == 2


def test_the_profile_lists_the_messages_sent(marketer_client, ledger):
    dan = ledger["people"]["dan"]
    _sent(ledger["sms"], dan, days_ago=0, status="failed")
    Delivery.objects.filter(person=dan, status="failed").update(error="Unreachable handset")
    page = marketer_client.get(f"/people/{dan.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="messages"' in html
    assert "Texts" in html and "Spring" in html
    assert "Unreachable handset" in html
    assert ">test</span>" in html
    eve = ledger["people"]["eve"]
    assert "No messages sent yet." in marketer_client.get(f"/people/{eve.pk}/").content.decode()

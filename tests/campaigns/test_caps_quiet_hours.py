"""Frequency caps: a workspace's rules ("email 1 per 16h", "any 3 per 7d") counted from
the ledger's sent messages, applied at launch (skipped `frequency_cap`, set-based in the
freeze) and re-checked at send per batch; transactional campaigns neither held nor
counted; bad rules are a form error naming the line. Time pinned (now=)."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.urls import reverse

from accounts.audit import Actor
from accounts.forms import WorkspaceForm
from accounts.models import format_frequency_caps, parse_frequency_caps
from accounts.services import workspace_update
from campaigns.dispatch.send import dispatch
from campaigns.models import Campaign, Delivery
from campaigns.selectors import campaign_estimate
from campaigns.services import (
    campaign_create,
    campaign_launch,
    campaign_launch_run,
    campaigns_launch_due,
)
from channels.models import SandboxMessage
from channels.services import provider_set
from people.models import Person
from segments.services import segment_create, static_members_change
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CONTENT = {
    "email": {"subject": "Hi", "text": "Sale on", "html": "<p>Sale on</p>"},
    "sms": {"body": "Sale on"},
}


_names = iter(range(1_000_000))


def _segment(workspace, people):
    segment = segment_create(workspace=workspace, name=f"S{next(_names)}",
                             kind="static", actor=ACTOR)  # fmt: skip
    static_members_change(segment=segment, people=Person.objects.filter(
        pk__in=[p.pk for p in people]), add=True, actor=ACTOR)  # fmt: skip
    return segment


def _campaign(workspace, people, channel="email", **fields):
    campaign = campaign_create(workspace=workspace, name="C", channel=channel,
                               content=CONTENT[channel], include=[_segment(workspace, people)],
                               actor=ACTOR)  # fmt: skip
    if fields:
        Campaign.objects.for_workspace(workspace).filter(pk=campaign.pk).update(**fields)
        campaign.refresh_from_db()
    return campaign


def _launch(campaign, now=NOW):
    campaign = campaign_launch(campaign=campaign, actor=ACTOR, now=now)
    assert campaign_launch_run(launch_id=campaign.launches.get().pk, now=now).status == "done"
    return campaign


def _history(workspace, person, channel, sent_at, *, status="sent", transactional=False):
    """A message of another campaign already in the ledger."""
    old = _campaign(workspace, [person], channel, status="sent", transactional=transactional)
    Delivery.objects.create(workspace=workspace, campaign=old, person=person,
                            address=person.email or person.phone, status=status,
                            sent_at=sent_at)  # fmt: skip


def _reasons(campaign):
    return dict(Delivery.objects.filter(campaign=campaign, is_test=False).values_list(
        "person__first_name", "reason"))  # fmt: skip


def _caps(workspace, text):
    workspace.frequency_caps = parse_frequency_caps(text)
    workspace.save(update_fields=["frequency_caps"])


@pytest.fixture
def sandbox(workspace):
    for channel in ("email", "sms"):
        provider_set(workspace=workspace, channel=channel, kind="sandbox", settings={},
                     secrets={}, actor=ACTOR)  # fmt: skip


@pytest.fixture
def people(db, workspace):
    return {
        name: PersonFactory(workspace=workspace, first_name=name, email=f"{name}@example.com",
                            phone=f"+1555000{i:04d}")
        for i, name in enumerate(["Ann", "Bob", "Cy", "Dee", "Eve"])
    }  # fmt: skip


def test_caps_skip_exactly_the_capped_people_at_launch(workspace, people, sandbox):
    _caps(workspace, "email 1 per 16h\nany 3 per 7d")
    p = people
    _history(workspace, p["Ann"], "email", NOW - timedelta(hours=15))  # in 16 h: capped
    _history(workspace, p["Bob"], "email", NOW - timedelta(hours=17))  # out of 16 h: free
    for hours in (30, 60, 90):  # 3 messages across channels in the week: capped
        _history(workspace, p["Cy"], "sms", NOW - timedelta(hours=hours))
    for hours in (30, 60):  # 2 in the week: free
        _history(workspace, p["Dee"], "sms", NOW - timedelta(hours=hours))
    _history(workspace, p["Dee"], "sms", NOW - timedelta(hours=200))  # out of the week
    # not counted: a test send, a failed message, a transactional receipt
    _history(workspace, p["Eve"], "email", NOW - timedelta(hours=1), status="failed")
    _history(workspace, p["Eve"], "email", NOW - timedelta(hours=1), transactional=True)
    Delivery.objects.create(workspace=workspace, campaign=_campaign(workspace, [p["Eve"]]),
                            person=p["Eve"], is_test=True, status="sent",
                            sent_at=NOW - timedelta(hours=1))  # fmt: skip
    draft = _campaign(workspace, list(p.values()))
    # the live estimate counts the same people as capped before anything is sent
    estimate = campaign_estimate(draft, now=NOW)
    assert estimate["skipped"]["frequency_cap"] == 2 and estimate["recipients"] == 3
    campaign = _launch(draft)
    assert _reasons(campaign) == {"Ann": "frequency_cap", "Bob": "", "Cy": "frequency_cap",
                                  "Dee": "", "Eve": ""}  # fmt: skip
    # an SMS campaign: the email rule does not apply, the "any" rule does
    sms = _launch(_campaign(workspace, list(p.values()), "sms"))
    assert _reasons(sms) == {"Ann": "", "Bob": "", "Cy": "frequency_cap", "Dee": "", "Eve": ""}


def test_transactional_campaign_is_exempt(workspace, people, sandbox):
    _caps(workspace, "email 1 per 16h")
    _history(workspace, people["Ann"], "email", NOW - timedelta(hours=1))
    campaign = _launch(_campaign(workspace, [people["Ann"]], transactional=True))
    assert _reasons(campaign) == {"Ann": ""}
    dispatch(campaign.pk, now=NOW)
    assert Delivery.objects.get(campaign=campaign).status == "sent"


def test_cap_rechecked_at_send(workspace, people, sandbox):
    """Two campaigns launched together both queue Ann; the first sent takes her cap, so
    the second skips her at send time (frequency_cap), and Bob gets both: no cap on sms."""
    _caps(workspace, "email 1 per 16h")
    first = _launch(_campaign(workspace, [people["Ann"], people["Bob"]]))
    second = _launch(_campaign(workspace, [people["Ann"]]))
    assert _reasons(second) == {"Ann": ""}
    dispatch(first.pk, now=NOW + timedelta(minutes=1))
    assert set(Delivery.objects.filter(campaign=first).values_list("status", flat=True)) == {
        "sent"}  # fmt: skip
    result = dispatch(second.pk, now=NOW + timedelta(minutes=2))
    ann = Delivery.objects.get(campaign=second)
    assert (ann.status, ann.reason, result.skipped, result.sent) == ("skipped", "frequency_cap",
                                                                     1, 0)  # fmt: skip
    assert SandboxMessage.objects.for_workspace(workspace).count() == 2
    second.refresh_from_db()
    assert second.status == "sent"


def test_cap_rules_parse_and_bad_ones_name_the_line():
    assert parse_frequency_caps("email 1 per 16h\n\n ANY 3 per 1w \nsms 2 per 2d") == [
        {"channel": "email", "max": 1, "period": 16},
        {"channel": "any", "max": 3, "period": 168},
        {"channel": "sms", "max": 2, "period": 48},
    ]
    assert format_frequency_caps([{"channel": "any", "max": 3, "period": 168}]) == (
        "any 3 per 168h"
    )
    from django.core.exceptions import ValidationError

    for text, said in [("email 1 per 16h\nemail 0 per 16h", "Line 2: a cap is at least 1"),
                       ("fax 1 per 1h", "Line 1: “fax” is not a channel"),
                       ("email once a day", "Line 1 (“email once a day”)"),
                       ("email 1 per 0h", "Line 1: the period")]:  # fmt: skip
        with pytest.raises(ValidationError) as e:
            parse_frequency_caps(text)
        assert said in " ".join(e.value.messages)


def test_settings_page_saves_caps_and_shows_errors(workspace, owner_client):
    url = reverse("settings_workspace")
    data = {"name": workspace.name, "time_zone": "UTC", "sms_opt_out_line": ""}
    response = owner_client.post(url, {**data, "frequency_caps": "email 0 per 16h"})
    assert response.status_code == 200
    assert "Line 1: a cap is at least 1" in response.content.decode()
    workspace.refresh_from_db()
    assert workspace.frequency_caps == []
    response = owner_client.post(url, {**data, "frequency_caps": "email 1 per 16h\nany 3 per 7d"})
    assert response.status_code == 302
    workspace.refresh_from_db()
    assert workspace.frequency_caps == [{"channel": "email", "max": 1, "period": 16},
                                        {"channel": "any", "max": 3, "period": 168}]  # fmt: skip
    page = owner_client.get(url).content.decode()
    assert "email 1 per 16h\nany 3 per 168h" in page
    form = WorkspaceForm(instance=workspace)
    assert form.initial["frequency_caps"] == "email 1 per 16h\nany 3 per 168h"


def test_workspace_update_refuses_bad_stored_rules(workspace):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as e:
        workspace_update(workspace=workspace, name=workspace.name, time_zone="UTC",
                         frequency_caps=[{"channel": "email", "max": 0, "period": 16}],
                         actor=ACTOR)  # fmt: skip
    assert "frequency_caps" in e.value.message_dict


def test_api_transactional_flag(workspace, api_client):
    response = api_client.post("/api/v1/campaigns", {"name": "Receipt", "channel": "email",
                               "transactional": True}, content_type="application/json")  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["transactional"] is True
    pk = response.json()["id"]
    response = api_client.patch(f"/api/v1/campaigns/{pk}", {"transactional": False},
                                content_type="application/json")  # fmt: skip
    assert response.status_code == 200 and response.json()["transactional"] is False


# --- quiet hours ------------------------------------------------------------------------

ZONES = {"Ann": "", "Bob": "Europe/London", "Cy": "America/New_York",
         "Dee": "Pacific/Auckland", "Eve": "Asia/Kolkata"}  # fmt: skip


@pytest.fixture
def zoned(workspace, people):
    """The workspace in Tokyo with quiet hours 21:00-08:00; at NOW (12:00 UTC) it is 21:00
    in Tokyo (Ann, and Fay whose stored zone is unknown: quiet, from the start), 13:00 in
    London, 08:00 in New York (the end: not quiet), 00:00 in Auckland (quiet, past
    midnight), 17:30 in Kolkata."""
    workspace.time_zone = "Asia/Tokyo"
    workspace.quiet_hours_start, workspace.quiet_hours_end = time(21), time(8)
    workspace.save()
    for name, zone in ZONES.items():
        Person.objects.for_workspace(workspace).filter(pk=people[name].pk).update(time_zone=zone)
    fay = PersonFactory(workspace=workspace, first_name="Fay", email="fay@example.com")
    Person.objects.for_workspace(workspace).filter(pk=fay.pk).update(time_zone="Mars/Olympus")
    return [*people.values(), fay]


def _next(campaign):
    return dict(Delivery.objects.filter(campaign=campaign).values_list(
        "person__first_name", "next_attempt_at"))  # fmt: skip


def test_quiet_hours_wait_until_they_end_in_each_zone(workspace, zoned, sandbox):
    campaign = _launch(_campaign(workspace, zoned))
    assert set(_reasons(campaign).values()) == {""}
    assert campaign.launches.get().detail == (
        "6 queued, 0 skipped. 1 with a time zone not known: the workspace's was used."
    )
    assert _next(campaign) == {
        "Ann": datetime(2026, 6, 1, 23, tzinfo=UTC),  # 08:00 in Tokyo
        "Fay": datetime(2026, 6, 1, 23, tzinfo=UTC),  # unknown zone: the workspace's
        "Dee": datetime(2026, 6, 1, 20, tzinfo=UTC),  # 08:00 in Auckland
        "Bob": None, "Cy": None, "Eve": None,
    }  # fmt: skip
    sent = dispatch(campaign.pk, now=NOW).sent
    assert sent == 3
    campaign.refresh_from_db()
    assert campaign.status == "sending"  # the rest wait
    assert dispatch(campaign.pk, now=datetime(2026, 6, 1, 19, 59, tzinfo=UTC)).sent == 0
    assert dispatch(campaign.pk, now=datetime(2026, 6, 1, 20, tzinfo=UTC)).sent == 1
    assert dispatch(campaign.pk, now=datetime(2026, 6, 1, 23, tzinfo=UTC)).sent == 2
    campaign.refresh_from_db()
    assert campaign.status == "sent"


def test_quiet_hours_skip(workspace, zoned, sandbox):
    draft = _campaign(workspace, zoned, quiet_hours="skip")
    # the live estimate predicts the same skips for a launch now
    estimate = campaign_estimate(draft, now=NOW)
    assert (estimate["recipients"], estimate["skipped"]["quiet_hours"]) == (3, 3)
    # a campaign that waits skips nobody: they are sent later
    waiting = campaign_estimate(_campaign(workspace, zoned), now=NOW)
    assert (waiting["recipients"], waiting["skipped"]["quiet_hours"]) == (6, 0)
    campaign = _launch(draft)
    assert _reasons(campaign) == {"Ann": "quiet_hours", "Fay": "quiet_hours",
                                  "Dee": "quiet_hours", "Bob": "", "Cy": "", "Eve": ""}  # fmt: skip
    assert set(_next(campaign).values()) == {None}


def test_quiet_hours_do_not_hold_transactional(workspace, zoned, sandbox):
    campaign = _launch(_campaign(workspace, zoned, transactional=True))
    assert set(_next(campaign).values()) == {None}
    assert dispatch(campaign.pk, now=NOW).sent == 6


def test_quiet_hours_rechecked_for_rows_claimed_late(workspace, zoned, sandbox):
    """Eve is out of her quiet hours at launch (17:30 in Kolkata); the worker reaches her
    four hours later (21:30 there): she waits until 08:00 in Kolkata, or is skipped."""
    eve = [p for p in zoned if p.first_name == "Eve"]
    campaign = _launch(_campaign(workspace, eve))
    late = NOW + timedelta(hours=4)
    result = dispatch(campaign.pk, now=late)
    row = Delivery.objects.get(campaign=campaign)
    assert (result.sent, row.status, row.attempts) == (0, "queued", 0)
    assert row.next_attempt_at == datetime(2026, 6, 2, 2, 30, tzinfo=UTC)
    assert dispatch(campaign.pk, now=datetime(2026, 6, 2, 2, 30, tzinfo=UTC)).sent == 1
    skip = _launch(_campaign(workspace, eve, quiet_hours="skip"))
    dispatch(skip.pk, now=late)
    row = Delivery.objects.get(campaign=skip)
    assert (row.status, row.reason) == ("skipped", "quiet_hours")


def test_quiet_hours_not_wrapping_midnight(workspace, people, sandbox):
    workspace.quiet_hours_start, workspace.quiet_hours_end = time(12), time(14)
    workspace.save()
    campaign = _launch(_campaign(workspace, [people["Ann"]]))
    assert _next(campaign) == {"Ann": datetime(2026, 6, 1, 14, tzinfo=UTC)}


def test_bad_quiet_hours_are_form_errors(workspace, owner_client):
    url = reverse("settings_workspace")
    data = {"name": workspace.name, "time_zone": "UTC", "sms_opt_out_line": ""}
    page = owner_client.post(url, {**data, "quiet_hours_start": "21:00",
                                   "quiet_hours_end": "21:00"})  # fmt: skip
    assert page.status_code == 200 and "cover the whole day" in page.content.decode()
    assert page.context["form"].errors["quiet_hours_end"]
    page = owner_client.post(url, {**data, "quiet_hours_start": "21:00"})
    assert page.context["form"].errors["quiet_hours_end"]
    page = owner_client.post(url, {**data, "time_zone": "Mars/Olympus"})
    assert page.context["form"].errors["time_zone"]
    page = owner_client.post(url, {**data, "quiet_hours_start": "21:00",
                                   "quiet_hours_end": "08:00"})  # fmt: skip
    assert page.status_code == 302
    workspace.refresh_from_db()
    assert (workspace.quiet_hours_start, workspace.quiet_hours_end) == (time(21), time(8))


# --- in each recipient's time zone -------------------------------------------------------


def test_send_at_local_time_in_each_recipients_zone(workspace, people, sandbox):
    """10:00 on 2 June in each zone, the workspace in Berlin (10:00 there is 08:00 UTC):
    launched when Kiritimati (UTC+14) reaches it, sending until Honolulu (UTC-10) does."""
    workspace.time_zone = "Europe/Berlin"
    workspace.save()
    zones = {"Ann": "", "Bob": "Pacific/Kiritimati", "Cy": "America/New_York",
             "Dee": "Pacific/Honolulu", "Eve": "Nowhere/Atlantis"}  # fmt: skip
    for name, zone in zones.items():
        Person.objects.for_workspace(workspace).filter(pk=people[name].pk).update(time_zone=zone)
    campaign = _campaign(workspace, list(people.values()), in_recipient_time_zone=True)
    send_at = datetime(2026, 6, 2, 8, tzinfo=UTC)
    campaign = campaign_launch(campaign=campaign, actor=ACTOR, send_at=send_at, now=NOW)
    assert campaign.status == "scheduled"
    assert campaigns_launch_due(now=datetime(2026, 6, 1, 19, 59, tzinfo=UTC)) == 0
    first = datetime(2026, 6, 1, 20, tzinfo=UTC)  # 10:00 on 2 June in Kiritimati
    assert campaigns_launch_due(now=first) == 1
    campaign.refresh_from_db()
    assert campaign.status == "sending" and campaign.send_at == send_at
    assert campaign_launch_run(launch_id=campaign.launches.get().pk, now=first).status == "done"
    assert _next(campaign) == {
        "Bob": first,
        "Ann": send_at, "Eve": send_at,  # the workspace's zone (Eve's is unknown)
        "Cy": datetime(2026, 6, 2, 14, tzinfo=UTC),
        "Dee": datetime(2026, 6, 2, 20, tzinfo=UTC),
    }  # fmt: skip
    sent = []
    for moment in (first, send_at, datetime(2026, 6, 2, 14, tzinfo=UTC),
                   datetime(2026, 6, 2, 19, 59, tzinfo=UTC)):  # fmt: skip
        sent.append(dispatch(campaign.pk, now=moment).sent)
        campaign.refresh_from_db()
        assert campaign.status == "sending"
    assert sent == [1, 2, 1, 0]
    assert dispatch(campaign.pk, now=datetime(2026, 6, 2, 20, tzinfo=UTC)).sent == 1
    campaign.refresh_from_db()
    assert campaign.status == "sent"


def test_recipient_time_zone_needs_a_send_time(workspace, people, api_client):
    from django.core.exceptions import ValidationError

    campaign = _campaign(workspace, [people["Ann"]], in_recipient_time_zone=True)
    with pytest.raises(ValidationError) as e:
        campaign_launch(campaign=campaign, actor=ACTOR, now=NOW)
    assert "in_recipient_time_zone" in e.value.message_dict
    response = api_client.post("/api/v1/campaigns", {"name": "Local", "channel": "email",
                               "in_recipient_time_zone": True, "quiet_hours": "skip"},
                               content_type="application/json")  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["in_recipient_time_zone"] is True and body["quiet_hours"] == "skip"
    response = api_client.patch(f"/api/v1/campaigns/{body['id']}", {"quiet_hours": "later"},
                                content_type="application/json")  # fmt: skip
    assert response.status_code == 422 and "quiet_hours" in response.content.decode()

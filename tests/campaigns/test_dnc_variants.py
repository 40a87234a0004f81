"""10,000 Do Not Contact entries written in case and format variants (upper case, spaces,
00 instead of +, separators in phone numbers): nobody on them is sent anything on any
path: launch, test-send, broadcast, and resume after the list grew during a pause."""

import io

import pytest

from accounts.audit import Actor
from campaigns.dispatch.send import dispatch
from campaigns.models import Delivery
from campaigns.services import (
    campaign_broadcast,
    campaign_create,
    campaign_launch,
    campaign_launch_run,
    campaign_pause,
    campaign_resume,
    campaign_test_send,
)
from channels.models import SandboxMessage
from channels.services import provider_set
from people.models import DoNotContact, Person
from people.services.dnc import dnc_import
from people.services.people import person_upsert_batch
from segments.services import segment_create, static_members_change

ACTOR = Actor.of_system("tests")
BLOCKED = 5_000  # per channel: 10,000 entries in all
CLEAN = 50  # per channel: people who must still get the message (the path works)


def _email_variant(i: int, address: str) -> str:
    match i % 4:
        case 0:
            return address.upper()
        case 1:
            return f"  {address.title()}  "
        case 2:
            return f"\t{address.replace('example', 'EXAMPLE')}"
    return address


def _phone(i: int) -> str:
    return f"+4479{i:08d}"  # UK mobiles: +44 79xx xxxxxx


def _phone_variant(i: int, e164: str) -> str:
    national = e164[3:]  # 79xxxxxxxx
    match i % 4:
        case 0:
            return f"+44 {national[:4]} {national[4:]}"
        case 1:
            return f"0044 {national}"
        case 2:
            return f"+44-{national[:4]}-{national[4:7]}-{national[7:]}"
    return f" +44 ({national[:2]}) {national[2:]} "


@pytest.fixture
def crowd(db, workspace):
    """BLOCKED + CLEAN people per channel; every blocked address on Do Not Contact,
    imported in a variant spelling. People are written through the API's batch service
    (which normalizes their addresses), some with their own variant spellings too."""
    items = []
    for i in range(BLOCKED + CLEAN):
        email = f"mail{i}@example.com"
        items.append({"external_id": f"e{i}", "email": email.upper() if i % 3 == 0 else email})
        phone = _phone(i)
        items.append({"external_id": f"s{i}", "phone": f"+44 {phone[3:]}" if i % 3 else phone})
    for start in range(0, len(items), 1000):
        result = person_upsert_batch(workspace=workspace, items=items[start:start + 1000],
                                     actor=ACTOR)  # fmt: skip
        assert not result.errors, result.errors[:3]
    emails = "\n".join(_email_variant(i, f"mail{i}@example.com") for i in range(BLOCKED))
    phones = "\n".join(_phone_variant(i, _phone(i)) for i in range(BLOCKED))
    for channel, text in (("email", emails), ("sms", phones)):
        result = dnc_import(workspace=workspace, channel=channel, stream=io.StringIO(text),
                            actor=ACTOR)  # fmt: skip
        assert result.added == BLOCKED, (channel, result)
    assert DoNotContact.objects.for_workspace(workspace).count() == 2 * BLOCKED
    for channel in ("email", "sms"):
        provider_set(workspace=workspace, channel=channel, kind="sandbox", settings={},
                     secrets={}, actor=ACTOR)  # fmt: skip
    return workspace


def _blocked_addresses(workspace) -> set[str]:
    return set(DoNotContact.objects.for_workspace(workspace).values_list("address", flat=True))


def _sent_to(workspace) -> list[str]:
    return list(SandboxMessage.objects.for_workspace(workspace).values_list("address", flat=True))


def _segment(workspace, name, people):
    segment = segment_create(workspace=workspace, name=name, kind="static", actor=ACTOR)
    static_members_change(segment=segment, people=people, add=True, actor=ACTOR)
    return segment


def _channel_people(workspace, channel):
    prefix = "e" if channel == "email" else "s"
    return Person.objects.for_workspace(workspace).filter(external_id__startswith=prefix)


CONTENT = {"email": {"subject": "Hi", "text": "Sale"}, "sms": {"body": "Sale today"}}


def _send(campaign):
    launch = campaign_launch(campaign=campaign, actor=ACTOR).launches.get()
    assert campaign_launch_run(launch_id=launch.pk).status == "done"
    dispatch(campaign.pk)


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_launch_sends_nothing_to_any_variant(crowd, channel):
    everyone = _segment(crowd, "All", _channel_people(crowd, channel))
    campaign = campaign_create(workspace=crowd, name="Launch", channel=channel,
                               content=CONTENT[channel], include=[everyone],
                               actor=ACTOR)  # fmt: skip
    _send(campaign)
    sent = _sent_to(crowd)
    assert len(sent) == CLEAN
    assert not set(sent) & _blocked_addresses(crowd)
    skipped = Delivery.objects.filter(campaign=campaign, status="skipped", reason="dnc")
    assert skipped.count() == BLOCKED


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_test_send_and_broadcast_send_nothing_to_any_variant(crowd, channel):
    people = _channel_people(crowd, channel)
    campaign = campaign_create(workspace=crowd, name="Tested", channel=channel,
                               content=CONTENT[channel], everyone=True,
                               actor=ACTOR)  # fmt: skip
    sample = people.order_by("id")[:990]  # blocked ones and the first clean ones
    staff = _segment(crowd, "Staff", people.filter(pk__in=sample.values("pk")))
    answer = campaign_test_send(campaign=campaign, segment=staff, actor=ACTOR)
    blocked_in_sample = sum(1 for p in sample if int(p.external_id[1:]) < BLOCKED)
    assert len(answer["skipped"]) == blocked_in_sample
    broadcast = campaign_broadcast(workspace=crowd, channel=channel, people=people,
                                   actor=ACTOR, name="Broadcast")  # fmt: skip
    broadcast.content = CONTENT[channel]
    broadcast.save(update_fields=["content"])
    _send(broadcast)
    sent = _sent_to(crowd)
    assert not set(sent) & _blocked_addresses(crowd)
    assert len(sent) == (990 - blocked_in_sample) + CLEAN


def test_resume_rechecks_the_list_that_grew_during_a_pause(crowd):
    people = _channel_people(crowd, "email")
    DoNotContact.objects.for_workspace(crowd).filter(channel="email").delete()
    everyone = _segment(crowd, "All", people)
    campaign = campaign_create(workspace=crowd, name="Paused", channel="email",
                               content=CONTENT["email"], include=[everyone],
                               actor=ACTOR)  # fmt: skip
    launch = campaign_launch(campaign=campaign, actor=ACTOR).launches.get()
    campaign_launch_run(launch_id=launch.pk)
    campaign_pause(campaign=campaign, actor=ACTOR)
    # everyone was queued; then the list came back, in its variant spellings
    assert Delivery.objects.filter(campaign=campaign, status="queued").count() == BLOCKED + CLEAN
    emails = "\n".join(_email_variant(i, f"mail{i}@example.com") for i in range(BLOCKED))
    dnc_import(workspace=crowd, channel="email", stream=io.StringIO(emails), actor=ACTOR)
    campaign.refresh_from_db()
    campaign_resume(campaign=campaign, actor=ACTOR)
    dispatch(campaign.pk)
    sent = _sent_to(crowd)
    assert len(sent) == CLEAN
    assert not set(sent) & _blocked_addresses(crowd)
    assert Delivery.objects.filter(campaign=campaign, reason="dnc").count() == BLOCKED

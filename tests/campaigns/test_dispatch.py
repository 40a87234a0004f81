"""The send ledger: launch freezes recipients with their skip reasons, workers send
through the real transport (the Sandbox, aiosmtpd over SMTP), Do Not Contact is
re-checked at send time, nobody gets a campaign twice, a dead worker's deliveries are
reclaimed (never handed: sent; handed without an answer: unknown, never re-sent)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.audit import Actor
from campaigns.dispatch.send import dispatch, reclaim
from campaigns.models import Campaign, Delivery
from campaigns.services import (
    campaign_create,
    campaign_launch,
    campaign_launch_run,
    campaign_test_send,
)
from channels.models import SandboxMessage
from channels.services import provider_set
from people.models import Person
from people.services.dnc import dnc_add
from segments.services import segment_create, static_members_change
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
EMAIL = {"subject": "Hi {{ person.first_name | default: 'there' }}", "text": "Sale on",
         "html": "<p>Sale on</p>"}  # fmt: skip


def _segment(workspace, name, people):
    segment = segment_create(workspace=workspace, name=name, kind="static", actor=ACTOR)
    static_members_change(segment=segment, people=Person.objects.filter(
        pk__in=[p.pk for p in people]), add=True, actor=ACTOR)  # fmt: skip
    return segment


@pytest.fixture
def people(db, workspace):
    return [
        PersonFactory(workspace=workspace, first_name="Ann", email="ann@example.com"),
        PersonFactory(workspace=workspace, first_name="Bob", email="bob@example.com"),
        PersonFactory(workspace=workspace, first_name="Cy", email=""),
        PersonFactory(workspace=workspace, first_name="Dee", email="dee@example.com"),
        PersonFactory(workspace=workspace, first_name="Dup", email="ann@example.com"),
    ]


def _launch(workspace, people, **content):
    everyone = _segment(workspace, "All", people)
    campaign = campaign_create(workspace=workspace, name="Spring", channel="email",
                               content={**EMAIL, **content}, include=[everyone],
                               actor=ACTOR)  # fmt: skip
    campaign = campaign_launch(campaign=campaign, actor=ACTOR)
    assert campaign.status == "sending"
    launch = campaign.launches.get()
    assert campaign_launch_run(launch_id=launch.pk).status == "done"
    return campaign


def _statuses(campaign):
    return dict(
        Delivery.objects.filter(campaign=campaign, is_test=False).values_list(
            "person__first_name", "status"
        )
    )


def test_launch_freezes_skips_and_send_rechecks_do_not_contact(workspace, people):
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={},
                 secrets={}, actor=ACTOR)  # fmt: skip
    dnc_add(workspace=workspace, channel="email", address=" Bob@Example.COM ", actor=ACTOR)
    campaign = _launch(workspace, people)
    reasons = dict(Delivery.objects.filter(campaign=campaign).values_list(
        "person__first_name", "reason"))  # fmt: skip
    assert reasons == {"Ann": "", "Bob": "dnc", "Cy": "no_address", "Dee": "",
                       "Dup": "duplicate_address"}  # fmt: skip
    # Dee unsubscribes after the launch, before a worker reaches her: nothing goes
    dnc_add(workspace=workspace, channel="email", address="dee@example.com", actor=ACTOR)
    dispatch(campaign.pk)
    assert _statuses(campaign)["Ann"] == "sent" and _statuses(campaign)["Dee"] == "skipped"
    sent = SandboxMessage.objects.for_workspace(workspace)
    assert [(m.address, m.subject) for m in sent] == [("ann@example.com", "Hi Ann")]
    campaign.refresh_from_db()
    assert campaign.status == "sent"
    # a second worker, a resume, a re-launch: nobody gets it twice
    dispatch(campaign.pk)
    assert SandboxMessage.objects.for_workspace(workspace).count() == 1


def test_email_goes_over_smtp_and_a_refused_mailbox_goes_on_do_not_contact(
    workspace, people, smtp_server
):
    provider_set(workspace=workspace, channel="email", kind="smtp",
                 settings={"host": "127.0.0.1", "port": smtp_server.port, "security": "none",
                           "from_email": "news@acme.test"}, secrets={}, actor=ACTOR)  # fmt: skip
    nobody = PersonFactory(workspace=workspace, first_name="Nobody", email="nobody@example.com")
    campaign = _launch(workspace, [*people, nobody])
    dispatch(campaign.pk)
    statuses = _statuses(campaign)
    assert statuses["Ann"] == statuses["Bob"] == statuses["Dee"] == "sent"
    assert statuses["Nobody"] == "bounced"  # 550 5.1.1 from the server
    assert sorted(to for (to,), _ in smtp_server.received) == [
        "ann@example.com", "bob@example.com", "dee@example.com"
    ]  # fmt: skip
    from people.models import DoNotContact

    assert DoNotContact.objects.for_workspace(workspace).filter(
        address="nobody@example.com", source="bounce").exists()  # fmt: skip


def test_a_template_broken_for_one_person_fails_only_theirs(workspace, people):
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={},
                 secrets={}, actor=ACTOR)  # fmt: skip
    Person.objects.for_workspace(workspace).update(attributes={"n": 1})
    Person.objects.filter(pk=people[0].pk).update(attributes={"n": 0})  # Ann's breaks it
    campaign = _launch(workspace, people, text="{{ 10 | divided_by: person.attributes.n }}")
    dispatch(campaign.pk)
    statuses = _statuses(campaign)
    assert statuses["Ann"] == "failed" and statuses["Dee"] == "sent"


def test_a_dead_workers_deliveries_are_reclaimed_without_duplicates(workspace, people):
    provider_set(workspace=workspace, channel="email", kind="smtp",
                 settings={"host": "127.0.0.1", "port": 2525, "security": "none",
                           "from_email": "news@acme.test"}, secrets={}, actor=ACTOR)  # fmt: skip
    campaign = _launch(workspace, people)
    ann, dee = (Delivery.objects.get(campaign=campaign, person=p) for p in (people[0], people[3]))
    past = timezone.now() - timedelta(minutes=1)
    # the worker died: Ann was handed to the provider (no answer recorded), Dee was not
    Delivery.objects.filter(pk=ann.pk).update(status="sending", lease_until=past, handed_at=past)
    Delivery.objects.filter(pk=dee.pk).update(status="sending", lease_until=past)
    reclaim()
    ann.refresh_from_db()
    dee.refresh_from_db()
    assert (ann.status, dee.status) == ("unknown", "queued")


def test_a_test_send_uses_the_ledger_and_honours_do_not_contact(workspace, people):
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={},
                 secrets={}, actor=ACTOR)  # fmt: skip
    dnc_add(workspace=workspace, channel="email", address="bob@example.com", actor=ACTOR)
    everyone = _segment(workspace, "All", people)
    campaign = campaign_create(workspace=workspace, name="Draft", channel="email",
                               content=EMAIL, include=[everyone], actor=ACTOR)  # fmt: skip
    staff = _segment(workspace, "Staff", people[:2])
    answer = campaign_test_send(campaign=campaign, segment=staff, actor=ACTOR)
    assert answer["sent"] == 1
    assert [p for p, _ in answer["skipped"]] == [people[1].external_id]
    assert Delivery.objects.filter(campaign=campaign, is_test=True).count() == 2
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_the_sent_message_reads_the_persons_time_zone_else_the_workspaces(workspace):
    """What the preview shows is what is sent: {{ person.time_zone }} is the person's zone,
    or the workspace's when they have none."""
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={},
                 secrets={}, actor=ACTOR)  # fmt: skip
    type(workspace).objects.filter(pk=workspace.pk).update(time_zone="Europe/London")
    zoned = PersonFactory(workspace=workspace, email="z@example.com", time_zone="Asia/Tokyo")
    plain = PersonFactory(workspace=workspace, email="p@example.com")
    campaign = _launch(workspace, [zoned, plain], text="Zone: {{ person.time_zone }}")
    dispatch(campaign.pk)
    sent = dict(SandboxMessage.objects.for_workspace(workspace).values_list("address", "text"))
    assert sent == {"z@example.com": "Zone: Asia/Tokyo", "p@example.com": "Zone: Europe/London"}
